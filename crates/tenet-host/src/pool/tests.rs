//! The pool's lanes, shares, bounds and threads, with real threads.
#![allow(clippy::unwrap_used, clippy::expect_used)]
use super::*;
use std::sync::mpsc;

fn pool(threads: usize, shares: Shares) -> Arc<EvalPool> {
    Arc::new(EvalPool::new(threads, 1 << 20, shares))
}

#[tokio::test]
async fn runs_jobs_off_the_caller_thread() {
    let pool = pool(2, Shares::default());
    let caller = std::thread::current().id();
    let (name, id) = pool
        .run(&Lane::new(1), || {
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
    let pool = pool(2, Shares::default());
    let (release, blocked) = mpsc::channel::<()>();
    let lane = Lane::new(1);
    let slow = {
        let (pool, lane) = (pool.clone(), lane.clone());
        tokio::spawn(async move { pool.run(&lane, move || blocked.recv().is_ok()).await })
    };
    // The other thread still answers while the first is held.
    let quick = tokio::time::timeout(Duration::from_secs(10), pool.run(&lane, || 7))
        .await
        .expect("second thread answers")
        .unwrap();
    assert_eq!(quick, 7);
    release.send(()).unwrap();
    assert!(slow.await.unwrap().unwrap());
}

#[tokio::test(flavor = "current_thread")]
async fn without_threads_jobs_run_on_the_caller() {
    let pool = pool(0, Shares::default());
    let caller = std::thread::current().id();
    let lane = Lane::new(1);
    let id = pool.run(&lane, move || std::thread::current().id()).await;
    assert_eq!(id.unwrap(), caller);
}

#[tokio::test(flavor = "current_thread")]
async fn a_dropped_caller_skips_its_job() {
    // One thread and no background thread: the held job's lane (heavy
    // once it has run a millisecond) cannot go elsewhere.
    let pool = pool(
        1,
        Shares {
            max_running: 1,
            ..Shares::default()
        },
    );
    let lane = Lane::new(1);
    let (release, blocked) = mpsc::channel::<()>();
    let ran = Arc::new(AtomicUsize::new(0));
    // Occupy the only thread, queue a job, drop its caller, then free
    // the thread: the queued job must not run.
    let hold = pool.run(&lane, move || blocked.recv().is_ok());
    let mut hold = Box::pin(hold);
    assert!(
        tokio::time::timeout(Duration::from_millis(20), &mut hold)
            .await
            .is_err(),
        "held job is still running"
    );
    {
        let ran = ran.clone();
        let queued = pool.run(&lane, move || ran.fetch_add(1, Ordering::SeqCst));
        let mut queued = Box::pin(queued);
        assert!(tokio::time::timeout(Duration::from_millis(20), &mut queued)
            .await
            .is_err());
        assert_eq!(pool.queued(), 1);
    }
    release.send(()).unwrap();
    assert!(hold.await.unwrap());
    // A later job runs after the skipped one, so the skip has happened.
    assert_eq!(pool.run(&lane, || 1).await.unwrap(), 1);
    assert_eq!(ran.load(Ordering::SeqCst), 0);
    assert_eq!(pool.queued(), 0);
    assert_eq!(lane.pending(), 0);
}

/// Queues `n` jobs in `lane` that record `tag` in `order` when they
/// run, returning their handles.
fn queue_tagged(
    pool: &Arc<EvalPool>,
    lane: &Arc<Lane>,
    n: usize,
    tag: char,
    order: &Arc<Mutex<String>>,
) -> Vec<tokio::task::JoinHandle<Result<(), RunError>>> {
    (0..n)
        .map(|_| {
            let (pool, lane, order) = (pool.clone(), lane.clone(), order.clone());
            tokio::spawn(async move {
                pool.run(&lane, move || order.lock().unwrap().push(tag))
                    .await
            })
        })
        .collect()
}

/// Holds the pool's only thread until the returned sender is used.
async fn hold_thread(pool: &Arc<EvalPool>) -> (mpsc::Sender<()>, tokio::task::JoinHandle<()>) {
    let (release, blocked) = mpsc::channel::<()>();
    let (started, running) = tokio::sync::oneshot::channel();
    let pool2 = pool.clone();
    let held = tokio::spawn(async move {
        let _ = pool2
            .run(&Lane::new(1), move || {
                let _ = started.send(());
                let _ = blocked.recv();
            })
            .await;
    });
    running.await.unwrap();
    (release, held)
}

/// Ten jobs of lane A queued before two of lane B: B's run second and
/// fourth (round robin), not after all of A's (arrival order); with
/// weight 2, lane C takes two turns in a row.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lanes_take_turns_by_weight() {
    for (fair, weight_c, expected) in [
        (true, 1, "ABCABCAAAAAAAA"),
        (true, 2, "ABCCABAAAAAAAA"),
        (false, 1, "AAAAAAAAAABBCC"),
    ] {
        let pool = pool(
            1,
            Shares {
                fair,
                ..Shares::default()
            },
        );
        let (release, held) = hold_thread(&pool).await;
        let order = Arc::new(Mutex::new(String::new()));
        let mut handles = Vec::new();
        for (lane, n, tag) in [
            (Lane::new(1), 10, 'A'),
            (Lane::new(1), 2, 'B'),
            (Lane::new(weight_c), 2, 'C'),
        ] {
            let before = pool.queued();
            handles.extend(queue_tagged(&pool, &lane, n, tag, &order));
            // Queued in this order: wait until they all are.
            while pool.queued() < before + n {
                tokio::task::yield_now().await;
            }
        }
        release.send(()).unwrap();
        held.await.unwrap();
        for h in handles {
            h.await.unwrap().unwrap();
        }
        assert_eq!(*order.lock().unwrap(), expected, "fair: {fair}");
    }
}

/// A lane past `max_pending` is refused at once, and takes jobs again
/// once its queue drains.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lane_past_its_pending_bound_is_refused() {
    let pool = pool(
        1,
        Shares {
            max_pending: 3,
            ..Shares::default()
        },
    );
    let (release, held) = hold_thread(&pool).await;
    let lane = Lane::new(1);
    let order = Arc::new(Mutex::new(String::new()));
    let handles = queue_tagged(&pool, &lane, 3, 'x', &order);
    while lane.pending() < 3 {
        tokio::task::yield_now().await;
    }
    assert_eq!(
        pool.run(&lane, || ()).await,
        Err(RunError::Busy { pending: 3 })
    );
    // Another lane is not affected.
    let other = Lane::new(1);
    let other_job = {
        let (pool, other) = (pool.clone(), other.clone());
        tokio::spawn(async move { pool.run(&other, || 5).await })
    };
    release.send(()).unwrap();
    held.await.unwrap();
    assert_eq!(other_job.await.unwrap(), Ok(5));
    for h in handles {
        h.await.unwrap().unwrap();
    }
    assert_eq!(pool.run(&lane, || 1).await, Ok(1));
}

/// Jobs of `lane` that block until released, recording the name and
/// nice value of the thread each ran on; returns their handles.
fn blocking_jobs(
    pool: &Arc<EvalPool>,
    lane: &Arc<Lane>,
    n: usize,
    blocked: &Arc<Mutex<mpsc::Receiver<()>>>,
    running: &Arc<AtomicUsize>,
) -> Vec<tokio::task::JoinHandle<Result<(String, i32), RunError>>> {
    (0..n)
        .map(|_| {
            let (pool, lane) = (pool.clone(), lane.clone());
            let (blocked, running) = (blocked.clone(), running.clone());
            tokio::spawn(async move {
                pool.run(&lane, move || {
                    running.fetch_add(1, Ordering::SeqCst);
                    let t = std::thread::current();
                    #[cfg(target_os = "linux")]
                    let nice = priority();
                    #[cfg(not(target_os = "linux"))]
                    let nice = 0;
                    let _ = blocked.lock().unwrap().recv();
                    (t.name().unwrap_or_default().to_string(), nice)
                })
                .await
            })
        })
        .collect()
}

/// A lane whose jobs took 20 ms (past `heavy`) with a 2-thread pool.
async fn heavy_lane(pool: &Arc<EvalPool>) -> Arc<Lane> {
    let heavy = Lane::new(1);
    for _ in 0..8 {
        pool.run(&heavy, || std::thread::sleep(Duration::from_millis(20)))
            .await
            .unwrap();
    }
    assert!(
        heavy.cost() >= Duration::from_millis(5),
        "{:?}",
        heavy.cost()
    );
    heavy
}

async fn until(counter: &AtomicUsize, n: usize) {
    tokio::time::timeout(Duration::from_secs(10), async {
        while counter.load(Ordering::SeqCst) < n {
            tokio::task::yield_now().await;
        }
    })
    .await
    .expect("jobs started");
}

/// Once a lane is heavy (its jobs take longer than `heavy`), it runs on
/// the background threads only (all threads but a quarter of them: one
/// of two), at a lower priority, and every normal thread stays free for
/// other lanes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_heavy_lane_runs_on_background_threads_only() {
    let pool = pool(
        2,
        Shares {
            heavy: Duration::from_millis(5),
            ..Shares::default()
        },
    );
    let heavy = heavy_lane(&pool).await;
    let (release, blocked) = mpsc::channel::<()>();
    let blocked = Arc::new(Mutex::new(blocked));
    let running = Arc::new(AtomicUsize::new(0));
    let mut handles = blocking_jobs(&pool, &heavy, 4, &blocked, &running);
    until(&running, 1).await;
    // Two jobs of a cheap lane run at once beside it: both normal
    // threads are free.
    handles.extend(blocking_jobs(&pool, &Lane::new(1), 2, &blocked, &running));
    until(&running, 3).await;
    tokio::time::sleep(Duration::from_millis(50)).await;
    assert_eq!(running.load(Ordering::SeqCst), 3, "one heavy job at a time");
    for _ in 0..6 {
        release.send(()).unwrap();
    }
    let mut threads = Vec::new();
    for h in handles {
        threads.push(h.await.unwrap().unwrap());
    }
    for (name, nice) in &threads[..4] {
        assert_eq!(name, "tenet-eval-bg-0");
        #[cfg(target_os = "linux")]
        assert_eq!(*nice, BACKGROUND_NICE);
        let _ = nice;
    }
    for (name, nice) in &threads[4..] {
        assert!(
            name.starts_with("tenet-eval-") && !name.contains("bg"),
            "{name}"
        );
        assert_ne!(*nice, BACKGROUND_NICE);
    }
}

/// With a fixed `max_running`, there are no background threads: every
/// lane runs on the normal threads, at most that many jobs at once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_fixed_bound_holds_every_lane_on_the_normal_threads() {
    let pool = pool(
        2,
        Shares {
            max_running: 1,
            ..Shares::default()
        },
    );
    let (release, blocked) = mpsc::channel::<()>();
    let blocked = Arc::new(Mutex::new(blocked));
    let running = Arc::new(AtomicUsize::new(0));
    let lane = Lane::new(1);
    let mut handles = blocking_jobs(&pool, &lane, 3, &blocked, &running);
    until(&running, 1).await;
    handles.extend(blocking_jobs(&pool, &Lane::new(1), 1, &blocked, &running));
    until(&running, 2).await;
    tokio::time::sleep(Duration::from_millis(50)).await;
    assert_eq!(
        running.load(Ordering::SeqCst),
        2,
        "one job per lane at a time"
    );
    for _ in 0..4 {
        release.send(()).unwrap();
    }
    for h in handles {
        let (name, _) = h.await.unwrap().unwrap();
        assert!(!name.contains("bg"), "{name}");
    }
}

/// A lane is heavy as soon as one of its jobs has run past 4 × `heavy`, not
/// only once that job has finished: its next jobs go to the background
/// threads while the first still holds a normal thread.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_job_running_past_heavy_makes_its_lane_heavy_at_once() {
    let pool = pool(
        2,
        Shares {
            heavy: Duration::from_millis(5),
            ..Shares::default()
        },
    );
    let (release, blocked) = mpsc::channel::<()>();
    let blocked = Arc::new(Mutex::new(blocked));
    let running = Arc::new(AtomicUsize::new(0));
    let lane = Lane::new(1);
    let mut handles = blocking_jobs(&pool, &lane, 1, &blocked, &running);
    until(&running, 1).await;
    tokio::time::sleep(Duration::from_millis(60)).await;
    handles.extend(blocking_jobs(&pool, &lane, 1, &blocked, &running));
    until(&running, 2).await;
    release.send(()).unwrap();
    release.send(()).unwrap();
    let first = handles.remove(0).await.unwrap().unwrap().0;
    let second = handles.remove(0).await.unwrap().unwrap().0;
    assert!(!first.contains("bg"), "{first}");
    assert_eq!(second, "tenet-eval-bg-0");
}

fn inline_shares(max_inline: usize) -> Shares {
    Shares {
        max_inline,
        ..Shares::default()
    }
}

/// Runs `n` jobs of `took` each through the pool, so the lane has a history.
async fn warm(pool: &EvalPool, lane: &Arc<Lane>, n: usize, took: Duration) {
    for _ in 0..n {
        pool.run(lane, move || std::thread::sleep(took))
            .await
            .unwrap();
    }
}

#[tokio::test(flavor = "current_thread")]
async fn a_cheap_lane_takes_inline_turns_after_a_few_jobs() {
    let pool = pool(1, inline_shares(1));
    let lane = Lane::new(1);
    // A lane with no history runs on the pool.
    assert!(pool.inline_turn(&lane).is_none());
    warm(&pool, &lane, INLINE_AFTER_JOBS as usize, Duration::ZERO).await;
    let turn = pool.inline_turn(&lane).expect("a cheap lane takes a turn");
    assert_eq!(lane.pending(), 1, "an inline job counts as pending");
    // At most max_inline at once, whatever the lane.
    let other = Lane::new(1);
    warm(&pool, &other, INLINE_AFTER_JOBS as usize, Duration::ZERO).await;
    assert!(pool.inline_turn(&other).is_none());
    drop(turn);
    assert_eq!(lane.pending(), 0);
    assert!(pool.inline_turn(&other).is_some());
    assert_eq!(pool.inline_turns(), 2);
}

#[tokio::test(flavor = "current_thread")]
async fn a_lane_that_is_not_cheap_takes_no_inline_turn() {
    let pool = pool(1, inline_shares(1));
    // Its average (an eighth of the way per job) is past heavy / 8.
    let lane = Lane::new(1);
    warm(&pool, &lane, 8, Duration::from_millis(2)).await;
    assert!(lane.cost() >= Duration::from_micros(125));
    assert!(pool.inline_turn(&lane).is_none());
}

#[tokio::test(flavor = "current_thread")]
async fn an_overrun_turn_sends_the_lane_to_the_pool_for_the_cooldown() {
    let pool = pool(1, inline_shares(1));
    let lane = Lane::new(1);
    warm(&pool, &lane, INLINE_AFTER_JOBS as usize, Duration::ZERO).await;
    pool.inline_turn(&lane).expect("cheap").overran();
    assert_eq!(lane.pending(), 0);
    assert_eq!(pool.inline_overruns(), 1);
    assert!(pool.inline_turn(&lane).is_none(), "cooling down");
    // Other lanes keep theirs.
    let other = Lane::new(1);
    warm(&pool, &other, INLINE_AFTER_JOBS as usize, Duration::ZERO).await;
    assert!(pool.inline_turn(&other).is_some());
}

#[test]
fn inline_turns_are_off_without_max_inline_with_a_fixed_bound_or_unfair() {
    for shares in [
        inline_shares(0),
        Shares {
            max_running: 2,
            ..inline_shares(1)
        },
        Shares {
            fair: false,
            ..inline_shares(1)
        },
    ] {
        let pool = EvalPool::new(1, 1 << 20, shares.clone());
        let lane = Lane::new(1);
        for _ in 0..INLINE_AFTER_JOBS {
            lane.record(Duration::ZERO);
        }
        assert!(pool.inline_turn(&lane).is_none(), "{shares:?}");
    }
}
