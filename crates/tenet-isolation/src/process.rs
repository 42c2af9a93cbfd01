//! One worker process as the supervisor sees it: started from a command,
//! greeted (protocol version checked), then a channel where each request
//! gets an id and its answer is matched by a reader task. When the process
//! exits, every request waiting on it fails at once with the reason (exit
//! code or signal) and [`WorkerProcess::exited`] resolves. States,
//! restarts and policy belong to the supervisor, not here.

use crate::protocol::{check_hello, Frame, Hello, Kind, ProtocolError, MAX_TO_HOST};
use std::collections::{HashMap, HashSet};
use std::os::unix::process::ExitStatusExt;
use std::path::PathBuf;
use std::process::Stdio;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::process::{ChildStdin, ChildStdout, Command};
use tokio::sync::{oneshot, watch};

/// How to start a worker.
#[derive(Debug, Clone)]
pub struct WorkerCommand {
    /// The executable (`tenet`, or the `tenet-worker` binary).
    pub program: PathBuf,
    /// Its arguments before the worker's own (`["worker"]` for `tenet`).
    pub args: Vec<String>,
    /// Evaluation threads per worker.
    pub threads: usize,
    /// Stack of each evaluation thread.
    pub stack_bytes: usize,
    /// Address-space limit per worker, bytes (0: none).
    pub max_memory_bytes: u64,
    /// CPU-time limit per worker, seconds (0: none).
    pub max_cpu_seconds: u64,
}

/// Why a request to a worker has no answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Unanswered {
    /// The process is gone (the reason names its exit).
    Gone(String),
    /// No answer within the time allowed.
    TimedOut,
    /// Not sent: this many requests were already waiting (the bound).
    Busy(usize),
}

type Waiter = oneshot::Sender<Result<Frame, String>>;

/// A running worker and its channel.
pub(crate) struct WorkerProcess {
    pub(crate) pid: u32,
    pub(crate) started: Instant,
    writer: tokio::sync::Mutex<ChildStdin>,
    pending: Mutex<HashMap<u64, Waiter>>,
    next_id: AtomicU64,
    alive: AtomicBool,
    /// `Some(reason)` once the process has exited.
    exit: watch::Receiver<Option<String>>,
    /// Digests of the policies loaded in this process.
    pub(crate) loaded: Mutex<HashSet<String>>,
    /// One load at a time per process, so concurrent first decisions of a
    /// revision send it once.
    pub(crate) loading: tokio::sync::Mutex<()>,
}

impl std::fmt::Debug for WorkerProcess {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WorkerProcess")
            .field("pid", &self.pid)
            .field("alive", &self.is_alive())
            .finish_non_exhaustive()
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl WorkerProcess {
    /// Starts a worker and exchanges hellos within `timeout`.
    pub(crate) async fn start(
        command: &WorkerCommand,
        timeout: Duration,
    ) -> Result<Arc<Self>, String> {
        let mut child = Command::new(&command.program);
        if command.max_memory_bytes > 0 {
            // mimalloc (regorus's allocator, the worker's global one)
            // reserves 1 GiB of address space up front by default, which an
            // address-space limit counts; smaller arenas let a worker start
            // under a limit of a few hundred MiB.
            child.env("MIMALLOC_ARENA_RESERVE", "32M");
        }
        let mut child = child
            .args(&command.args)
            .args([
                "--threads".to_string(),
                command.threads.max(1).to_string(),
                "--stack-bytes".to_string(),
                command.stack_bytes.to_string(),
                "--max-memory-bytes".to_string(),
                command.max_memory_bytes.to_string(),
                "--max-cpu-seconds".to_string(),
                command.max_cpu_seconds.to_string(),
                "--parent-pid".to_string(),
                std::process::id().to_string(),
            ])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .kill_on_drop(true)
            .spawn()
            .map_err(|e| format!("starting {}: {e}", command.program.display()))?;
        let pid = child.id().unwrap_or(0);
        let (Some(mut stdin), Some(stdout)) = (child.stdin.take(), child.stdout.take()) else {
            return Err("the worker's pipes were not opened".into());
        };
        let mut stdout = BufReader::new(stdout);
        let greeting = async {
            let hello = read_frame(&mut stdout).await?;
            check_hello(&hello)?;
            let ours = Frame::new(Kind::Hello, 0, &Hello::ours(), Vec::new()).encode()?;
            stdin.write_all(&ours).await?;
            stdin.flush().await?;
            Ok::<_, ProtocolError>(())
        };
        match tokio::time::timeout(timeout, greeting).await {
            Ok(Ok(())) => {}
            Ok(Err(e)) => {
                let _ = child.start_kill();
                return Err(format!("worker {pid} refused: {e}"));
            }
            Err(_) => {
                let _ = child.start_kill();
                return Err(format!("worker {pid} did not greet within {timeout:?}"));
            }
        }
        let (exit_tx, exit) = watch::channel(None);
        let process = Arc::new(Self {
            pid,
            started: Instant::now(),
            writer: tokio::sync::Mutex::new(stdin),
            pending: Mutex::new(HashMap::new()),
            next_id: AtomicU64::new(1),
            alive: AtomicBool::new(true),
            exit,
            loaded: Mutex::new(HashSet::new()),
            loading: tokio::sync::Mutex::new(()),
        });
        let reader = process.clone();
        tokio::spawn(async move {
            let why = reader.read_answers(stdout).await;
            reader.alive.store(false, Ordering::Release);
            // The channel is closed: the process is exiting or gone; wait
            // for it (kill it if it lingers) to name the reason.
            let status = match tokio::time::timeout(Duration::from_secs(2), child.wait()).await {
                Ok(status) => status,
                Err(_) => {
                    let _ = child.start_kill();
                    child.wait().await
                }
            };
            let reason = match status {
                Ok(status) => match (status.code(), status.signal()) {
                    (Some(code), _) => format!("worker {pid} exited with code {code} ({why})"),
                    (_, Some(9)) => format!("worker {pid} was killed (SIGKILL)"),
                    (_, Some(signal)) => format!("worker {pid} was killed by signal {signal}"),
                    _ => format!("worker {pid} exited ({why})"),
                },
                Err(e) => format!("worker {pid}: {e}"),
            };
            let waiting: Vec<Waiter> = lock(&reader.pending).drain().map(|(_, w)| w).collect();
            for waiter in waiting {
                let _ = waiter.send(Err(reason.clone()));
            }
            let _ = exit_tx.send(Some(reason));
        });
        Ok(process)
    }

    /// Reads answers until the channel ends; returns why it ended.
    async fn read_answers(&self, mut stdout: BufReader<ChildStdout>) -> String {
        loop {
            let frame = match read_frame(&mut stdout).await {
                Ok(frame) => frame,
                Err(ProtocolError::Io(e)) if e.kind() == std::io::ErrorKind::UnexpectedEof => {
                    return "channel closed".into()
                }
                Err(e) => return e.to_string(),
            };
            if let Some(waiter) = lock(&self.pending).remove(&frame.id) {
                let _ = waiter.send(Ok(frame));
            }
        }
    }

    /// True until the process's channel closes.
    pub(crate) fn is_alive(&self) -> bool {
        self.alive.load(Ordering::Acquire)
    }

    /// Requests waiting for an answer.
    pub(crate) fn in_flight(&self) -> usize {
        lock(&self.pending).len()
    }

    /// Resolves with the exit reason once the process is gone.
    pub(crate) async fn exited(&self) -> String {
        let mut exit = self.exit.clone();
        loop {
            if let Some(reason) = exit.borrow_and_update().clone() {
                return reason;
            }
            if exit.changed().await.is_err() {
                return format!("worker {} is gone", self.pid);
            }
        }
    }

    /// Sends a request built for a fresh id, unless `bound` requests are
    /// already waiting, and waits up to `timeout` for its answer.
    pub(crate) async fn request(
        &self,
        build: impl FnOnce(u64) -> Frame,
        timeout: Duration,
        bound: usize,
    ) -> Result<Frame, Unanswered> {
        if !self.is_alive() {
            return Err(Unanswered::Gone(format!("worker {} is gone", self.pid)));
        }
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let (tx, rx) = oneshot::channel();
        {
            let mut pending = lock(&self.pending);
            if pending.len() >= bound {
                return Err(Unanswered::Busy(pending.len()));
            }
            pending.insert(id, tx);
        }
        let bytes = match build(id).encode() {
            Ok(bytes) => bytes,
            Err(e) => {
                lock(&self.pending).remove(&id);
                return Err(Unanswered::Gone(e.to_string()));
            }
        };
        let sent = async {
            let mut writer = self.writer.lock().await;
            writer.write_all(&bytes).await?;
            writer.flush().await
        };
        if let Err(e) = sent.await {
            lock(&self.pending).remove(&id);
            return Err(Unanswered::Gone(format!("worker {}: {e}", self.pid)));
        }
        match tokio::time::timeout(timeout, rx).await {
            Ok(Ok(Ok(frame))) => Ok(frame),
            Ok(Ok(Err(reason))) => Err(Unanswered::Gone(reason)),
            Ok(Err(_)) => Err(Unanswered::Gone(format!("worker {} is gone", self.pid))),
            Err(_) => {
                lock(&self.pending).remove(&id);
                Err(Unanswered::TimedOut)
            }
        }
    }

    /// Asks the worker to finish and exit; kills it after `timeout`.
    pub(crate) async fn stop(&self, timeout: Duration) {
        if self.is_alive() {
            let frame = Frame::bare(Kind::Shutdown, 0).encode().unwrap_or_default();
            let mut writer = self.writer.lock().await;
            let _ = writer.write_all(&frame).await;
            let _ = writer.flush().await;
            drop(writer);
        }
        if tokio::time::timeout(timeout, self.exited()).await.is_err() {
            self.kill();
            self.exited().await;
        }
    }

    /// Kills the process now (SIGKILL).
    pub(crate) fn kill(&self) {
        if !self.is_alive() {
            return;
        }
        if let Some(pid) = i32::try_from(self.pid)
            .ok()
            .and_then(rustix::process::Pid::from_raw)
        {
            let _ = rustix::process::kill_process(pid, rustix::process::Signal::KILL);
        }
    }
}

/// Reads one frame from the worker, bounded by [`MAX_TO_HOST`].
async fn read_frame(from: &mut BufReader<ChildStdout>) -> Result<Frame, ProtocolError> {
    let mut prefix = [0u8; 4];
    from.read_exact(&mut prefix).await?;
    let size = Frame::length(prefix, MAX_TO_HOST)?;
    let mut bytes = vec![0u8; size];
    from.read_exact(&mut bytes).await?;
    Frame::decode(bytes)
}
