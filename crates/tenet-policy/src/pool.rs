//! A bounded pool of idle evaluators (VMs or engine clones) for one prepared
//! query, which grows on demand and can be emptied when the policy goes idle.
//!
//! Written by hand instead of `crossbeam_queue::ArrayQueue` because an
//! `ArrayQueue` allocates its whole capacity up front: `capacity ×
//! size_of::<RegoVM>()` (~840 bytes) per prepared query and per tenant, and
//! the capacity follows the core count (128 slots on a 64-core host). A
//! mutex held for one `push` or `pop` costs far less than the evaluation
//! around it. This module must not create evaluators: callers build one
//! when the pool is empty.

use std::sync::{Mutex, OnceLock};

/// The most idle evaluators a prepared query keeps: twice the cores, at
/// least 4. Read once per process: `available_parallelism` reads cgroup
/// files on every call (tens of µs, a fifth of preparing a query).
pub(crate) fn default_capacity() -> usize {
    static CAPACITY: OnceLock<usize> = OnceLock::new();
    *CAPACITY.get_or_init(|| {
        std::thread::available_parallelism()
            .map_or(4, |n| n.get() * 2)
            .max(4)
    })
}

/// Idle evaluators, at most `capacity` of them.
pub(crate) struct Pool<T> {
    idle: Mutex<Vec<T>>,
    capacity: usize,
}

impl<T> Pool<T> {
    /// An empty pool; nothing is allocated until the first `push`.
    pub(crate) fn new(capacity: usize) -> Self {
        Self {
            idle: Mutex::new(Vec::new()),
            capacity,
        }
    }

    /// An idle evaluator, if there is one.
    pub(crate) fn pop(&self) -> Option<T> {
        self.lock().pop()
    }

    /// Keeps `item` for the next caller; drops it when the pool is full.
    pub(crate) fn push(&self, item: T) {
        let mut idle = self.lock();
        if idle.len() < self.capacity {
            idle.push(item);
        }
    }

    /// Drops every idle evaluator and the pool's storage.
    pub(crate) fn clear(&self) {
        let drained = std::mem::take(&mut *self.lock());
        // Dropped outside the lock.
        drop(drained);
    }

    /// How many evaluators are idle.
    pub(crate) fn len(&self) -> usize {
        self.lock().len()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Vec<T>> {
        // A panic while the lock is held can only come from `Vec` itself;
        // the vector is still valid, so a poisoned lock is used as is.
        self.idle
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

#[cfg(test)]
mod tests {
    use super::Pool;

    #[test]
    fn the_pool_keeps_at_most_its_capacity_and_clears() {
        let pool = Pool::new(2);
        assert_eq!(pool.pop(), None::<u32>);
        for i in 0..3 {
            pool.push(i);
        }
        assert_eq!(pool.len(), 2);
        assert_eq!(pool.pop(), Some(1));
        pool.clear();
        assert_eq!((pool.len(), pool.pop()), (0, None));
        pool.push(7);
        assert_eq!(pool.pop(), Some(7));
    }

    #[test]
    fn the_default_capacity_is_twice_the_cores_and_at_least_four() {
        let cores = std::thread::available_parallelism().map_or(2, |n| n.get());
        assert_eq!(super::default_capacity(), (cores * 2).max(4));
    }
}
