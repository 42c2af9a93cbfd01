//! The evaluation pool: dedicated threads that run policy evaluations, so a
//! tenant whose policy runs to its deadline occupies one of these threads
//! and never a tokio worker (the accept loop and every other request keep
//! their threads).
//!
//! Hand-written rather than `rayon` or `tokio::task::spawn_blocking`:
//! `spawn_blocking` grows to 512 threads under load (no bound on concurrent
//! evaluations) and rayon's work-stealing gives no FIFO order; this pool is a
//! bounded set of threads with a larger stack than tokio's 2 MiB, fed by one
//! MPMC channel (crossbeam), answering through a oneshot. A job whose caller
//! has gone away (client disconnected) is skipped, not evaluated.
//!
//! This module knows nothing of tenants or policies: it runs closures.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use tokio::sync::oneshot;

type Job = Box<dyn FnOnce() + Send + 'static>;

/// A fixed set of evaluation threads.
pub(crate) struct EvalPool {
    jobs: crossbeam_channel::Sender<Job>,
    queued: Arc<AtomicUsize>,
    threads: usize,
}

/// The pool is gone (only while the process shuts down).
#[derive(Debug)]
pub(crate) struct PoolClosed;

impl EvalPool {
    /// Starts `threads` threads with `stack_bytes` of stack each. The
    /// threads end when the pool is dropped. With none (zero asked for, or
    /// the OS refused every one, which is logged), jobs run on the caller's
    /// thread.
    pub(crate) fn new(threads: usize, stack_bytes: usize) -> Self {
        let (jobs, rx) = crossbeam_channel::unbounded::<Job>();
        let queued = Arc::new(AtomicUsize::new(0));
        let mut started = 0;
        for i in 0..threads {
            let rx = rx.clone();
            let queued = queued.clone();
            let spawned = std::thread::Builder::new()
                .name(format!("tenet-eval-{i}"))
                .stack_size(stack_bytes)
                .spawn(move || {
                    while let Ok(job) = rx.recv() {
                        queued.fetch_sub(1, Ordering::Relaxed);
                        job();
                    }
                });
            match spawned {
                Ok(_) => started += 1,
                Err(e) => tracing::error!(error = %e, "cannot start an evaluation thread"),
            }
        }
        Self {
            jobs,
            queued,
            threads: started,
        }
    }

    /// Runs `f` on a pool thread and waits for its answer. If the returned
    /// future is dropped before a thread takes the job, `f` never runs.
    pub(crate) async fn run<T, F>(&self, f: F) -> Result<T, PoolClosed>
    where
        T: Send + 'static,
        F: FnOnce() -> T + Send + 'static,
    {
        if self.threads == 0 {
            return Ok(f());
        }
        let (tx, rx) = oneshot::channel();
        let job: Job = Box::new(move || {
            if tx.is_closed() {
                return;
            }
            let _ = tx.send(f());
        });
        self.queued.fetch_add(1, Ordering::Relaxed);
        if self.jobs.send(job).is_err() {
            self.queued.fetch_sub(1, Ordering::Relaxed);
            return Err(PoolClosed);
        }
        rx.await.map_err(|_| PoolClosed)
    }

    /// Jobs waiting for a thread.
    pub(crate) fn queued(&self) -> usize {
        self.queued.load(Ordering::Relaxed)
    }

    /// How many threads evaluate.
    pub(crate) fn threads(&self) -> usize {
        self.threads
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[tokio::test]
    async fn runs_jobs_off_the_caller_thread() {
        let pool = EvalPool::new(2, 1 << 20);
        let caller = std::thread::current().id();
        let (name, id) = pool
            .run(|| {
                let t = std::thread::current();
                (t.name().map(String::from), t.id())
            })
            .await
            .unwrap();
        assert!(name.unwrap().starts_with("tenet-eval-"));
        assert_ne!(id, caller);
        assert_eq!(pool.threads(), 2);
    }

    #[tokio::test(flavor = "current_thread")]
    async fn a_busy_thread_does_not_block_the_other() {
        let pool = Arc::new(EvalPool::new(2, 1 << 20));
        let (release, blocked) = std::sync::mpsc::channel::<()>();
        let slow = {
            let pool = pool.clone();
            tokio::spawn(async move { pool.run(move || blocked.recv().is_ok()).await })
        };
        // The other thread still answers while the first is held.
        let quick = tokio::time::timeout(Duration::from_secs(10), pool.run(|| 7))
            .await
            .expect("second thread answers")
            .unwrap();
        assert_eq!(quick, 7);
        release.send(()).unwrap();
        assert!(slow.await.unwrap().unwrap());
    }

    #[tokio::test(flavor = "current_thread")]
    async fn without_threads_jobs_run_on_the_caller() {
        let pool = EvalPool::new(0, 1 << 20);
        let caller = std::thread::current().id();
        assert_eq!(
            pool.run(move || std::thread::current().id()).await.unwrap(),
            caller
        );
    }

    #[tokio::test(flavor = "current_thread")]
    async fn a_dropped_caller_skips_its_job() {
        let pool = EvalPool::new(1, 1 << 20);
        let (release, blocked) = std::sync::mpsc::channel::<()>();
        let ran = Arc::new(AtomicUsize::new(0));
        // Occupy the only thread, queue a job, drop its caller, then free
        // the thread: the queued job must not run.
        let hold = pool.run(move || blocked.recv().is_ok());
        let mut hold = Box::pin(hold);
        assert!(
            tokio::time::timeout(Duration::from_millis(20), &mut hold)
                .await
                .is_err(),
            "held job is still running"
        );
        {
            let ran = ran.clone();
            let queued = pool.run(move || ran.fetch_add(1, Ordering::SeqCst));
            let mut queued = Box::pin(queued);
            assert!(tokio::time::timeout(Duration::from_millis(20), &mut queued)
                .await
                .is_err());
            assert_eq!(pool.queued(), 1);
        }
        release.send(()).unwrap();
        assert!(hold.await.unwrap());
        // A later job runs after the skipped one, so the skip has happened.
        assert_eq!(pool.run(|| 1).await.unwrap(), 1);
        assert_eq!(ran.load(Ordering::SeqCst), 0);
        assert_eq!(pool.queued(), 0);
    }
}
