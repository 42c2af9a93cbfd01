//! Resource limits of a worker process, applied by the worker to itself
//! before it reads a request: address space (`RLIMIT_AS`) and CPU time
//! (`RLIMIT_CPU`) through setrlimit; dying with the parent
//! (`PR_SET_PDEATHSIG`, then a check that the parent is still the host,
//! which closes the race with a parent that died before the call). Linux
//! through rustix, since the workspace forbids unsafe code.
//!
//! cgroup v2 limits (`memory.max`, `cpu.max`) need a delegated cgroup
//! subtree the host may write; [`cgroup_v2_delegation`] says whether this
//! machine has one. [`set_transparent_huge_pages`] turns transparent huge
//! pages off (or back on) for the host process and the workers it starts.
//! Nothing here decides policy or talks to the host.

use crate::worker::WorkerArgs;
use rustix::process::{getppid, setrlimit, Resource, Rlimit};

/// Applies `args`' limits to this process.
pub(crate) fn apply(args: &WorkerArgs) -> Result<(), String> {
    let set = |resource, value: u64, hard: u64, what: &str| {
        setrlimit(
            resource,
            Rlimit {
                current: Some(value),
                maximum: Some(hard),
            },
        )
        .map_err(|e| format!("{what} limit of {value}: {e}"))
    };
    if args.max_memory_bytes > 0 {
        let limit = args.max_memory_bytes;
        set(Resource::As, limit, limit, "address-space")?;
    }
    if args.max_cpu_seconds > 0 {
        // SIGXCPU at the soft limit (the exit then names it); SIGKILL a
        // second later at the hard one, should it be caught.
        let limit = args.max_cpu_seconds;
        set(Resource::Cpu, limit, limit.saturating_add(1), "CPU-time")?;
    }
    Ok(())
}

/// Asks the kernel to kill this process when its parent dies, and checks
/// that the parent is still `expected` (it may have died before the call).
pub(crate) fn die_with_parent(expected: u32) -> Result<(), ()> {
    rustix::process::set_parent_process_death_signal(Some(rustix::process::Signal::KILL))
        .map_err(|_| ())?;
    match getppid() {
        Some(parent) if parent.as_raw_nonzero().get() as u32 == expected => Ok(()),
        _ => Err(()),
    }
}

/// Turns transparent huge pages on or off for this process and the
/// processes it starts from now on (`PR_SET_THP_DISABLE`, inherited across
/// fork and exec, so by workers too). The allocator asks for huge pages
/// for its large regions; with them on, a fresh region's first touch
/// clears a whole 2 MiB page: measured (BENCHMARKS.md), a worker's start
/// to first decision took 33 ms with them and 6.5 ms without, a tenant's
/// cold start 1.88 ms and 1.77 ms, and a small busy tenant held 33 KiB
/// and 30 KiB; evaluation speed was the same. Errors where the kernel has
/// no such switch.
pub fn set_transparent_huge_pages(enabled: bool) -> std::io::Result<()> {
    rustix::thread::disable_transparent_huge_pages(!enabled).map_err(std::io::Error::from)
}

/// Whether transparent huge pages are on for this process.
pub fn transparent_huge_pages() -> std::io::Result<bool> {
    rustix::thread::transparent_huge_pages_are_disabled()
        .map(|disabled| !disabled)
        .map_err(std::io::Error::from)
}

/// This process's resident memory in bytes, from `/proc/self/statm`
/// (0 where it cannot be read).
pub fn rss_bytes() -> u64 {
    std::fs::read_to_string("/proc/self/statm")
        .ok()
        .and_then(|s| s.split_whitespace().nth(1)?.parse::<u64>().ok())
        .map_or(0, |pages| pages * 4096)
}

/// Whether cgroup v2 limits can be set for workers here: `Ok(dir)` names
/// the writable cgroup directory of this process with the `memory` and
/// `cpu` controllers enabled for its children; `Err` says why not.
pub fn cgroup_v2_delegation() -> Result<std::path::PathBuf, String> {
    let own = std::fs::read_to_string("/proc/self/cgroup")
        .map_err(|e| format!("cannot read /proc/self/cgroup: {e}"))?;
    let path = own
        .lines()
        .find_map(|l| l.strip_prefix("0::"))
        .ok_or("this process is in no cgroup v2 hierarchy")?;
    let mounts = std::fs::read_to_string("/proc/self/mountinfo")
        .map_err(|e| format!("cannot read /proc/self/mountinfo: {e}"))?;
    let root = mounts
        .lines()
        .find(|l| l.contains(" - cgroup2 "))
        .and_then(|l| l.split_whitespace().nth(4))
        .ok_or("no cgroup2 file system is mounted")?;
    let dir = std::path::Path::new(root).join(path.trim_start_matches('/'));
    let controllers = std::fs::read_to_string(dir.join("cgroup.subtree_control"))
        .map_err(|e| format!("{}: {e}", dir.display()))?;
    for needed in ["memory", "cpu"] {
        if !controllers.split_whitespace().any(|c| c == needed) {
            return Err(format!(
                "the {needed} controller is not delegated to {} (cgroup.subtree_control: {:?})",
                dir.display(),
                controllers.trim()
            ));
        }
    }
    Ok(dir)
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod tests {
    use super::*;

    #[test]
    fn rss_is_read() {
        assert!(rss_bytes() > 0);
    }

    #[test]
    fn cgroup_delegation_is_answered_either_way() {
        // Which answer depends on the machine; neither may panic, and a
        // refusal says why.
        match cgroup_v2_delegation() {
            Ok(dir) => assert!(dir.is_dir()),
            Err(why) => assert!(!why.is_empty()),
        }
    }

    #[test]
    fn huge_pages_switch_off_and_on_for_this_process() {
        // A process-wide switch no other test here depends on; left as it
        // was found.
        let before = transparent_huge_pages().unwrap();
        set_transparent_huge_pages(false).unwrap();
        assert!(!transparent_huge_pages().unwrap());
        set_transparent_huge_pages(true).unwrap();
        assert!(transparent_huge_pages().unwrap());
        set_transparent_huge_pages(before).unwrap();
    }
}
