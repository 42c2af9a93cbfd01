//! Concurrent map benchmark for the host's tenant → instance table. The
//! decision path's lookup is `get(&str)` plus a clone of the `Arc` value;
//! this measures it over 10,000 tenants (`tenant-{i}`, values `Arc<u64>`)
//! for papaya (what the host uses, pinned per lookup; also with
//! `ResizeMode::Blocking`), `RwLock<HashMap>`, `DashMap` and
//! `ArcSwap<HashMap>` (copy on write, `load()` then get):
//! - `lookup`: one thread, plain `iter`;
//! - `lookup_threads`: one and two threads, each doing `iters` lookups over
//!   a pseudo-random tenant sequence computed before timing; the time given
//!   is wall time per lookup across all threads, so perfect scaling halves
//!   it;
//! - `lookup_churn`: the two-thread case while a third thread inserts and
//!   removes a tenant about once a microsecond (for `ArcSwap` each change
//!   clones and swaps the whole map); the churn rate reached is printed;
//! - `insert_remove`: one insert plus one remove with 10,000 tenants present,
//!   of the same key each time (papaya never reuses a tombstone, so this
//!   walks the key's probe chain to its limit and forces a table copy every
//!   few dozen pairs) and of keys rotating over 1,024 names.
//!
//! The machine has two cores: the churn case runs three threads on them.
//!
//! Run: `cargo bench -p tenet-host --bench map`.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use arc_swap::ArcSwap;
use criterion::measurement::WallTime;
use criterion::{criterion_group, criterion_main, BenchmarkGroup, Criterion};
use dashmap::DashMap;
use std::collections::HashMap;
use std::hint::black_box;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Barrier, RwLock};
use std::time::{Duration, Instant};

/// Tenants in every map.
const TENANTS: usize = 10_000;
/// Length of the precomputed lookup sequence (a power of two).
const SEQ: usize = 1 << 16;
/// Keys the churn thread cycles through; about half are present at a time.
const CHURN_KEYS: usize = 1024;

type Value = Arc<u64>;

/// The operations the host needs from its instance table.
trait Map: Send + Sync {
    const NAME: &'static str;
    fn build(keys: &[Arc<str>]) -> Self;
    fn lookup(&self, tenant: &str) -> Option<Value>;
    fn insert(&self, tenant: Arc<str>, value: Value);
    fn remove(&self, tenant: &str);
}

struct Papaya(papaya::HashMap<Arc<str>, Value>);

impl Map for Papaya {
    const NAME: &'static str = "papaya";
    fn build(keys: &[Arc<str>]) -> Self {
        let map = papaya::HashMap::new();
        {
            let pin = map.pin();
            for (i, k) in keys.iter().enumerate() {
                pin.insert(k.clone(), Arc::new(i as u64));
            }
        }
        Self(map)
    }
    fn lookup(&self, tenant: &str) -> Option<Value> {
        self.0.pin().get(tenant).cloned()
    }
    fn insert(&self, tenant: Arc<str>, value: Value) {
        self.0.pin().insert(tenant, value);
    }
    fn remove(&self, tenant: &str) {
        self.0.pin().remove(tenant);
    }
}

struct PapayaBlocking(papaya::HashMap<Arc<str>, Value>);

impl Map for PapayaBlocking {
    const NAME: &'static str = "papaya-blocking";
    fn build(keys: &[Arc<str>]) -> Self {
        let map = papaya::HashMap::builder()
            .resize_mode(papaya::ResizeMode::Blocking)
            .build();
        {
            let pin = map.pin();
            for (i, k) in keys.iter().enumerate() {
                pin.insert(k.clone(), Arc::new(i as u64));
            }
        }
        Self(map)
    }
    fn lookup(&self, tenant: &str) -> Option<Value> {
        self.0.pin().get(tenant).cloned()
    }
    fn insert(&self, tenant: Arc<str>, value: Value) {
        self.0.pin().insert(tenant, value);
    }
    fn remove(&self, tenant: &str) {
        self.0.pin().remove(tenant);
    }
}

struct Locked(RwLock<HashMap<Arc<str>, Value>>);

impl Map for Locked {
    const NAME: &'static str = "rwlock";
    fn build(keys: &[Arc<str>]) -> Self {
        Self(RwLock::new(std_map(keys)))
    }
    fn lookup(&self, tenant: &str) -> Option<Value> {
        self.0.read().unwrap().get(tenant).cloned()
    }
    fn insert(&self, tenant: Arc<str>, value: Value) {
        self.0.write().unwrap().insert(tenant, value);
    }
    fn remove(&self, tenant: &str) {
        self.0.write().unwrap().remove(tenant);
    }
}

struct Dash(DashMap<Arc<str>, Value>);

impl Map for Dash {
    const NAME: &'static str = "dashmap";
    fn build(keys: &[Arc<str>]) -> Self {
        let map = DashMap::new();
        for (i, k) in keys.iter().enumerate() {
            map.insert(k.clone(), Arc::new(i as u64));
        }
        Self(map)
    }
    fn lookup(&self, tenant: &str) -> Option<Value> {
        self.0.get(tenant).map(|r| r.value().clone())
    }
    fn insert(&self, tenant: Arc<str>, value: Value) {
        self.0.insert(tenant, value);
    }
    fn remove(&self, tenant: &str) {
        self.0.remove(tenant);
    }
}

/// Copy on write: every change clones the whole map and swaps it in.
struct Cow(ArcSwap<HashMap<Arc<str>, Value>>);

impl Map for Cow {
    const NAME: &'static str = "arcswap";
    fn build(keys: &[Arc<str>]) -> Self {
        Self(ArcSwap::from_pointee(std_map(keys)))
    }
    fn lookup(&self, tenant: &str) -> Option<Value> {
        self.0.load().get(tenant).cloned()
    }
    fn insert(&self, tenant: Arc<str>, value: Value) {
        self.0.rcu(|map| {
            let mut map = HashMap::clone(map);
            map.insert(tenant.clone(), value.clone());
            map
        });
    }
    fn remove(&self, tenant: &str) {
        self.0.rcu(|map| {
            let mut map = HashMap::clone(map);
            map.remove(tenant);
            map
        });
    }
}

fn std_map(keys: &[Arc<str>]) -> HashMap<Arc<str>, Value> {
    keys.iter()
        .enumerate()
        .map(|(i, k)| (k.clone(), Arc::new(i as u64)))
        .collect()
}

/// The tenant names, and a pseudo-random lookup sequence over them as
/// separately allocated strings (as a request's tenant would be).
struct Fixture {
    keys: Vec<Arc<str>>,
    seq: Vec<String>,
    churn: Vec<Arc<str>>,
}

impl Fixture {
    fn new() -> Self {
        let keys: Vec<Arc<str>> = (0..TENANTS)
            .map(|i| Arc::from(format!("tenant-{i}")))
            .collect();
        let mut rng = fastrand::Rng::with_seed(0x7e4e7);
        let seq = (0..SEQ)
            .map(|_| format!("tenant-{}", rng.usize(..TENANTS)))
            .collect();
        let churn = (0..CHURN_KEYS)
            .map(|i| Arc::from(format!("churn-{i}")))
            .collect();
        Self { keys, seq, churn }
    }

    fn build<M: Map>(&self) -> M {
        let map = M::build(&self.keys);
        for k in &self.seq[..64] {
            assert!(map.lookup(k).is_some(), "{} lacks {k}", M::NAME);
        }
        map
    }
}

/// `n` lookups from position `start` of the sequence.
fn lookups<M: Map>(map: &M, seq: &[String], start: usize, n: u64) {
    let mut i = start;
    for _ in 0..n {
        black_box(map.lookup(black_box(&seq[i & (SEQ - 1)])));
        i = i.wrapping_add(1);
    }
}

/// `threads` threads each doing `iters` lookups, released together; returns
/// wall time divided by the thread count (time per lookup × `iters`).
fn run_threads<M: Map>(map: &M, seq: &[String], threads: usize, iters: u64) -> Duration {
    let barrier = Barrier::new(threads + 1);
    std::thread::scope(|s| {
        let handles: Vec<_> = (0..threads)
            .map(|t| {
                let barrier = &barrier;
                s.spawn(move || {
                    barrier.wait();
                    lookups(map, seq, t * SEQ / threads, iters);
                })
            })
            .collect();
        barrier.wait();
        let start = Instant::now();
        for h in handles {
            h.join().unwrap();
        }
        start.elapsed() / threads as u32
    })
}

/// Inserts one churn key and removes another about once a microsecond until
/// `stop`; publishes the number of pairs done in `done`.
fn churn<M: Map>(map: &M, keys: &[Arc<str>], stop: &AtomicBool, done: &AtomicU64) {
    let value = Arc::new(u64::MAX);
    let start = Instant::now();
    let mut ops = 0u64;
    while !stop.load(Ordering::Relaxed) {
        let j = ops as usize;
        map.insert(keys[j % CHURN_KEYS].clone(), value.clone());
        map.remove(&keys[(j + CHURN_KEYS / 2) % CHURN_KEYS]);
        ops += 1;
        done.store(ops, Ordering::Relaxed);
        // Sleep when ahead of one pair per microsecond; the timer's slack
        // makes this bursty but right on average.
        let target = start + Duration::from_micros(ops);
        let now = Instant::now();
        if target > now {
            std::thread::sleep(target - now);
        }
    }
}

fn lookup_one<M: Map>(g: &mut BenchmarkGroup<'_, WallTime>, f: &Fixture) {
    let map: M = f.build();
    let mut i = 0usize;
    g.bench_function(M::NAME, |b| {
        b.iter(|| {
            i = (i + 1) & (SEQ - 1);
            map.lookup(black_box(&f.seq[i]))
        })
    });
}

fn lookup_threads_one<M: Map>(g: &mut BenchmarkGroup<'_, WallTime>, f: &Fixture) {
    let map: M = f.build();
    for threads in [1, 2] {
        g.bench_function(format!("{}/{threads}t", M::NAME), |b| {
            b.iter_custom(|iters| run_threads(&map, &f.seq, threads, iters))
        });
    }
}

fn lookup_churn_one<M: Map>(g: &mut BenchmarkGroup<'_, WallTime>, f: &Fixture) {
    let map: M = f.build();
    let stop = AtomicBool::new(false);
    let done = AtomicU64::new(0);
    let mut pairs = 0u64;
    let mut timed = Duration::ZERO;
    std::thread::scope(|s| {
        s.spawn(|| churn(&map, &f.churn, &stop, &done));
        g.bench_function(format!("{}/2t+churn", M::NAME), |b| {
            b.iter_custom(|iters| {
                let before = done.load(Ordering::Relaxed);
                let wall = Instant::now();
                let per = run_threads(&map, &f.seq, 2, iters);
                timed += wall.elapsed();
                pairs += done.load(Ordering::Relaxed) - before;
                per
            })
        });
        stop.store(true, Ordering::Relaxed);
    });
    if !timed.is_zero() {
        println!(
            "{}: churn during timed lookups: {pairs} insert+remove pairs in {:.2?} ({:.3} pairs/µs)",
            M::NAME,
            timed,
            pairs as f64 / timed.as_secs_f64() / 1e6
        );
    }
}

fn insert_remove_one<M: Map>(g: &mut BenchmarkGroup<'_, WallTime>, f: &Fixture) {
    // The same key inserted and removed again and again.
    let map: M = f.build();
    let key: Arc<str> = Arc::from("tenant-new");
    let value = Arc::new(0u64);
    g.bench_function(format!("{}/same-key", M::NAME), |b| {
        b.iter(|| {
            map.insert(key.clone(), value.clone());
            map.remove(black_box(&key));
        })
    });
    // Rotating over the churn keys, as the churn thread does: insert one,
    // remove the one inserted `CHURN_KEYS / 2` pairs earlier.
    let map: M = f.build();
    let mut j = 0usize;
    g.bench_function(format!("{}/rotating", M::NAME), |b| {
        b.iter(|| {
            map.insert(f.churn[j % CHURN_KEYS].clone(), value.clone());
            map.remove(black_box(&f.churn[(j + CHURN_KEYS / 2) % CHURN_KEYS]));
            j = j.wrapping_add(1);
        })
    });
}

macro_rules! each_map {
    ($bench:ident, $g:expr, $f:expr) => {
        $bench::<Papaya>($g, $f);
        $bench::<PapayaBlocking>($g, $f);
        $bench::<Locked>($g, $f);
        $bench::<Dash>($g, $f);
        $bench::<Cow>($g, $f);
    };
}

fn maps(c: &mut Criterion) {
    let f = Fixture::new();

    let mut g = c.benchmark_group("lookup");
    each_map!(lookup_one, &mut g, &f);
    g.finish();

    let mut g = c.benchmark_group("lookup_threads");
    each_map!(lookup_threads_one, &mut g, &f);
    g.finish();

    let mut g = c.benchmark_group("lookup_churn");
    each_map!(lookup_churn_one, &mut g, &f);
    g.finish();

    let mut g = c.benchmark_group("insert_remove");
    each_map!(insert_remove_one, &mut g, &f);
    g.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default()
        .sample_size(20)
        .measurement_time(Duration::from_secs(2))
        .warm_up_time(Duration::from_millis(300));
    targets = maps
}
criterion_main!(benches);
