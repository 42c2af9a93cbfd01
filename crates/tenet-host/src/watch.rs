//! File watching for local bundle sources: one OS watcher (`notify`) per
//! host, on its own thread. An instance whose source has a
//! [`watch_path`](tenet_bundle::BundleSource::watch_path) is registered when
//! it is created and unregistered when it is collected; a change under that
//! path, once events have been quiet for the debounce time, asks the
//! scheduler to poll the tenant now. The fetch that follows validates the
//! bundle as any fetch does, so a half-written file is rejected (and the
//! last good revision kept) and the next event retries it.
//!
//! For each path the watcher watches its nearest existing parent directory
//! (so a file or directory that does not exist yet, or that an editor
//! replaces by a rename, is seen) and, when the path is a directory, the
//! directory itself recursively. Watches are shared and counted: 10,000
//! tenants in one directory cost one watch on it plus one per tenant
//! directory.
//!
//! This module never fetches and never decides anything about a bundle.
//! When a watch cannot be set up (no OS support, a watch limit), it logs
//! and leaves the tenant to periodic polling.

use crate::instance::Instance;
use crate::schedule::Scheduler;
use notify::event::{AccessKind, AccessMode, MetadataKind, ModifyKind};
use notify::{Event, EventKind, RecommendedWatcher, RecursiveMode, Watcher};
use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::{mpsc, Arc, Weak};
use std::time::{Duration, Instant};

enum Message {
    Register {
        instance: Weak<Instance>,
        path: PathBuf,
    },
    Unregister(u64),
    Changed(Vec<PathBuf>),
    /// The OS dropped events: every tenant may have changed.
    Rescan,
    Failed(String),
    Stop,
}

/// The host's file watcher. Dropping it stops its thread.
pub(crate) struct Watch {
    tx: mpsc::Sender<Message>,
}

impl Watch {
    /// Starts the watcher thread; `None` (logged) if no thread could start.
    pub(crate) fn start(scheduler: Scheduler, debounce: Duration) -> Option<Self> {
        let (tx, rx) = mpsc::channel();
        let events = tx.clone();
        let spawned = std::thread::Builder::new()
            .name("tenet-watch".into())
            .spawn(move || State::new(scheduler, debounce, events).run(rx));
        match spawned {
            Ok(_) => Some(Self { tx }),
            Err(e) => {
                tracing::warn!(error = %e, "cannot start the file watcher; local sources are only polled");
                None
            }
        }
    }

    /// Watches `path` for `instance`, whose first load the scheduler runs
    /// meanwhile (waiting for the watches would add a hand-off to the
    /// watcher thread and the OS watcher's own thread to every tenant's
    /// cold start). Once armed, the instance is polled again if its fetch
    /// had already begun, so a change made after the first load read the
    /// files is always seen: the loader sets `fetch_started` before it
    /// reads, the watcher reads it after arming (both `SeqCst`), so either
    /// the read began after the watches were armed or the watcher sees it
    /// began and polls again.
    pub(crate) fn register(&self, instance: &Arc<Instance>, path: PathBuf) {
        let _ = self.tx.send(Message::Register {
            instance: Arc::downgrade(instance),
            path,
        });
    }

    /// Stops watching for instance `id`.
    pub(crate) fn unregister(&self, id: u64) {
        let _ = self.tx.send(Message::Unregister(id));
    }
}

impl Drop for Watch {
    fn drop(&mut self) {
        let _ = self.tx.send(Message::Stop);
    }
}

/// Events that can mean the bundle changed. Reads (our own fetches open
/// and read the files) and access-time updates are not changes.
fn is_change(kind: &EventKind) -> bool {
    match kind {
        EventKind::Access(AccessKind::Close(AccessMode::Write)) => true,
        EventKind::Access(_) => false,
        EventKind::Modify(ModifyKind::Metadata(MetadataKind::AccessTime)) => false,
        _ => true,
    }
}

/// One registered instance.
struct Armed {
    /// The source's path, made absolute.
    path: PathBuf,
    /// `path` under its parent's canonical form: how events name it.
    key: Option<PathBuf>,
    /// The non-recursive watch this instance holds (nearest existing parent).
    shallow: Option<PathBuf>,
    /// The recursive watch it holds (the path itself, when a directory).
    deep: Option<PathBuf>,
}

struct State {
    scheduler: Scheduler,
    debounce: Duration,
    events: mpsc::Sender<Message>,
    watcher: Option<RecommendedWatcher>,
    /// The OS watcher could not be created; nothing is watched.
    unavailable: bool,
    armed: HashMap<u64, Armed>,
    routes: BTreeMap<PathBuf, BTreeSet<u64>>,
    shallow: HashMap<PathBuf, usize>,
    deep: HashMap<PathBuf, usize>,
    pending: HashSet<u64>,
    rearm: HashSet<u64>,
    first_event: Option<Instant>,
    last_event: Option<Instant>,
}

impl State {
    fn new(scheduler: Scheduler, debounce: Duration, events: mpsc::Sender<Message>) -> Self {
        Self {
            scheduler,
            debounce,
            events,
            watcher: None,
            unavailable: false,
            armed: HashMap::new(),
            routes: BTreeMap::new(),
            shallow: HashMap::new(),
            deep: HashMap::new(),
            pending: HashSet::new(),
            rearm: HashSet::new(),
            first_event: None,
            last_event: None,
        }
    }

    fn run(mut self, rx: mpsc::Receiver<Message>) {
        loop {
            let message = match self.flush_at() {
                Some(at) => match rx.recv_timeout(at.saturating_duration_since(Instant::now())) {
                    Ok(m) => Some(m),
                    Err(mpsc::RecvTimeoutError::Timeout) => None,
                    Err(mpsc::RecvTimeoutError::Disconnected) => return,
                },
                None => match rx.recv() {
                    Ok(m) => Some(m),
                    Err(_) => return,
                },
            };
            match message {
                Some(Message::Stop) => return,
                Some(m) => self.handle(m),
                None => {}
            }
            if self.flush_at().is_some_and(|at| at <= Instant::now()) {
                self.flush();
            }
        }
    }

    /// When pending events are handed on: after `debounce` without events,
    /// or at most four debounce times after the first (a file written
    /// continuously is still picked up).
    fn flush_at(&self) -> Option<Instant> {
        let (first, last) = (self.first_event?, self.last_event?);
        Some((last + self.debounce).min(first + self.debounce * 4))
    }

    fn handle(&mut self, message: Message) {
        match message {
            Message::Register { instance, path } => {
                let Some(instance) = instance.upgrade() else {
                    return;
                };
                let id = instance.id;
                let path = std::path::absolute(&path).unwrap_or(path);
                self.armed.insert(
                    id,
                    Armed {
                        path,
                        key: None,
                        shallow: None,
                        deep: None,
                    },
                );
                self.arm(id);
                if instance
                    .fetch_started
                    .load(std::sync::atomic::Ordering::SeqCst)
                {
                    self.scheduler.poll_now(id);
                }
            }
            Message::Unregister(id) => {
                self.disarm(id);
                self.armed.remove(&id);
                self.pending.remove(&id);
                self.rearm.remove(&id);
            }
            Message::Changed(paths) => {
                for path in paths {
                    self.route(&path);
                }
            }
            Message::Rescan => {
                let all: Vec<u64> = self.armed.keys().copied().collect();
                self.pending.extend(all.iter().copied());
                self.rearm.extend(all);
                self.touch();
            }
            Message::Failed(error) => {
                tracing::warn!(%error, "file watcher error; polling continues");
            }
            Message::Stop => {}
        }
    }

    fn touch(&mut self) {
        let now = Instant::now();
        self.first_event.get_or_insert(now);
        self.last_event = Some(now);
    }

    /// Finds the instances an event path concerns: those whose path is the
    /// event's path or one of its parents (a change inside a bundle), and
    /// those below it (a parent of theirs appeared, moved or went).
    fn route(&mut self, path: &Path) {
        let mut hit = false;
        for ancestor in path.ancestors() {
            if let Some(ids) = self.routes.get(ancestor) {
                self.pending.extend(ids.iter().copied());
                if ancestor == path {
                    // The bundle's own entry changed (created, replaced,
                    // removed): its watches may be stale.
                    self.rearm.extend(ids.iter().copied());
                }
                hit = true;
            }
        }
        let below: Vec<u64> = self
            .routes
            .range(path.to_path_buf()..)
            .take_while(|(key, _)| key.starts_with(path))
            .filter(|(key, _)| key.as_path() != path)
            .flat_map(|(_, ids)| ids.iter().copied())
            .collect();
        hit |= !below.is_empty();
        self.pending.extend(below.iter().copied());
        self.rearm.extend(below);
        if hit {
            self.touch();
        }
    }

    fn flush(&mut self) {
        self.first_event = None;
        self.last_event = None;
        for id in std::mem::take(&mut self.rearm) {
            self.disarm(id);
            self.arm(id);
        }
        for id in std::mem::take(&mut self.pending) {
            self.scheduler.poll_now(id);
        }
    }

    fn watcher(&mut self) -> Option<&mut RecommendedWatcher> {
        if self.watcher.is_none() && !self.unavailable {
            let events = self.events.clone();
            let created = notify::recommended_watcher(move |event: notify::Result<Event>| {
                let message = match event {
                    Ok(event) if event.need_rescan() => Message::Rescan,
                    Ok(event) if is_change(&event.kind) => Message::Changed(event.paths),
                    Ok(_) => return,
                    Err(e) => Message::Failed(e.to_string()),
                };
                let _ = events.send(message);
            });
            match created {
                Ok(w) => self.watcher = Some(w),
                Err(e) => {
                    self.unavailable = true;
                    tracing::warn!(error = %e, "file watching is unavailable; local sources are only polled");
                }
            }
        }
        self.watcher.as_mut()
    }

    /// Sets up the watches for instance `id` from what exists on disk now.
    fn arm(&mut self, id: u64) {
        let Some(path) = self.armed.get(&id).map(|a| a.path.clone()) else {
            return;
        };
        let Some(anchor) = path.ancestors().skip(1).find(|a| a.is_dir()) else {
            return;
        };
        let canonical = std::fs::canonicalize(anchor).unwrap_or_else(|_| anchor.to_path_buf());
        let key = match path.strip_prefix(anchor) {
            Ok(rest) => canonical.join(rest),
            Err(_) => path.clone(),
        };
        self.routes.entry(key.clone()).or_default().insert(id);
        let shallow = self
            .acquire(&canonical, RecursiveMode::NonRecursive)
            .then_some(canonical);
        let deep =
            (key.is_dir() && self.acquire(&key, RecursiveMode::Recursive)).then(|| key.clone());
        if let Some(armed) = self.armed.get_mut(&id) {
            armed.key = Some(key);
            armed.shallow = shallow;
            armed.deep = deep;
        }
    }

    /// Releases instance `id`'s watches and route.
    fn disarm(&mut self, id: u64) {
        let Some(armed) = self.armed.get_mut(&id) else {
            return;
        };
        let (key, shallow, deep) = (armed.key.take(), armed.shallow.take(), armed.deep.take());
        if let Some(key) = key {
            if let Some(ids) = self.routes.get_mut(&key) {
                ids.remove(&id);
                if ids.is_empty() {
                    self.routes.remove(&key);
                }
            }
        }
        if let Some(p) = shallow {
            self.release(&p, RecursiveMode::NonRecursive);
        }
        if let Some(p) = deep {
            self.release(&p, RecursiveMode::Recursive);
        }
    }

    /// Takes one count on a watch, setting it up on the first. A recursive
    /// watch is set up again even when counted: it is only re-acquired after
    /// its directory changed, when the OS watch may be gone.
    fn acquire(&mut self, path: &Path, mode: RecursiveMode) -> bool {
        let counted = match mode {
            RecursiveMode::Recursive => self.deep.get(path).copied().unwrap_or(0),
            RecursiveMode::NonRecursive => self.shallow.get(path).copied().unwrap_or(0),
        };
        if counted == 0 || mode == RecursiveMode::Recursive {
            let Some(watcher) = self.watcher() else {
                return false;
            };
            if counted > 0 {
                let _ = watcher.unwatch(path);
            }
            if let Err(e) = watcher.watch(path, mode) {
                tracing::warn!(path = %path.display(), error = %e, "cannot watch; polling continues");
                if counted > 0 {
                    // The old OS watch is gone too: forget the count.
                    self.deep.remove(path);
                }
                return false;
            }
        }
        let counts = match mode {
            RecursiveMode::Recursive => &mut self.deep,
            RecursiveMode::NonRecursive => &mut self.shallow,
        };
        *counts.entry(path.to_path_buf()).or_insert(0) += 1;
        true
    }

    fn release(&mut self, path: &Path, mode: RecursiveMode) {
        let counts = match mode {
            RecursiveMode::Recursive => &mut self.deep,
            RecursiveMode::NonRecursive => &mut self.shallow,
        };
        let Some(n) = counts.get_mut(path) else {
            return;
        };
        *n -= 1;
        if *n == 0 {
            counts.remove(path);
            if let Some(watcher) = self.watcher.as_mut() {
                let _ = watcher.unwatch(path);
            }
        }
    }
}
