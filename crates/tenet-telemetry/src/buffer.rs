//! The decision-log buffers: one bounded queue of serialized events per
//! tenant (events and bytes; the oldest is dropped first and counted), and
//! a byte cap over all tenants under which a tenant can only ever drop its
//! own events, never another tenant's. Recording takes one tenant's lock
//! for a queue operation; nothing here waits on I/O (uploads are
//! upload.rs).

use crate::DecisionEvent;
use std::collections::VecDeque;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

/// How much the decision-log buffers may hold.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DecisionLogConfig {
    /// Most events buffered per tenant (OPA's
    /// `reporting.buffer_size_limit_events`). Default 10,000.
    pub max_events: usize,
    /// Most bytes of events buffered per tenant (OPA's
    /// `reporting.buffer_size_limit_bytes`). Default 8 MiB.
    pub max_bytes: u64,
    /// Most bytes buffered over all tenants together. Default 256 MiB.
    pub max_total_bytes: u64,
}

impl Default for DecisionLogConfig {
    fn default() -> Self {
        Self {
            max_events: 10_000,
            max_bytes: 8 << 20,
            max_total_bytes: 256 << 20,
        }
    }
}

/// One tenant's decision-log state, as reported in metrics and status.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TenantLogStats {
    pub tenant: String,
    /// Events waiting for an upload.
    pub buffered_events: usize,
    /// Their bytes.
    pub buffered_bytes: u64,
    /// Events dropped so far (buffer full, too large, or the upload kept
    /// failing while new events came).
    pub dropped: u64,
    /// Events uploaded so far.
    pub uploaded: u64,
}

#[derive(Default)]
struct Queue {
    events: VecDeque<Vec<u8>>,
    bytes: u64,
}

#[derive(Default)]
pub(crate) struct TenantLog {
    queue: Mutex<Queue>,
    dropped: AtomicU64,
    pub(crate) uploaded: AtomicU64,
}

impl TenantLog {
    fn lock(&self) -> MutexGuard<'_, Queue> {
        self.queue.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// Every tenant's decision-log buffer. Cheap to clone; clones share the
/// buffers.
#[derive(Clone)]
pub struct DecisionLogs {
    pub(crate) inner: Arc<Inner>,
}

pub(crate) struct Inner {
    config: DecisionLogConfig,
    tenants: papaya::HashMap<Arc<str>, Arc<TenantLog>>,
    total: AtomicU64,
    /// Wakes the upload loop at once (shutdown, tests).
    pub(crate) flush: tokio::sync::Notify,
}

impl std::fmt::Debug for DecisionLogs {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DecisionLogs")
            .field("config", &self.inner.config)
            .field("total_bytes", &self.total_bytes())
            .finish()
    }
}

impl DecisionLogs {
    pub fn new(config: DecisionLogConfig) -> Self {
        Self {
            inner: Arc::new(Inner {
                config,
                tenants: papaya::HashMap::new(),
                total: AtomicU64::new(0),
                flush: tokio::sync::Notify::new(),
            }),
        }
    }

    /// Buffers `event` for `tenant`.
    pub fn record(&self, tenant: &str, event: &DecisionEvent) {
        self.record_json(tenant, event.to_json());
    }

    /// Buffers one serialized event for `tenant`: the tenant's oldest events
    /// make room for it (counted as dropped); an event larger than the
    /// tenant's byte limit, or one that does not fit under the total cap
    /// once the tenant's own events are gone, is dropped itself.
    pub fn record_json(&self, tenant: &str, json: Vec<u8>) {
        let log = self.tenant(tenant);
        let config = &self.inner.config;
        let len = json.len() as u64;
        if len > config.max_bytes || len > config.max_total_bytes || config.max_events == 0 {
            log.dropped.fetch_add(1, Ordering::Relaxed);
            return;
        }
        let mut queue = log.lock();
        while queue.events.len() >= config.max_events
            || queue.bytes + len > config.max_bytes
            || (self.total_bytes() + len > config.max_total_bytes && !queue.events.is_empty())
        {
            self.pop_oldest(&mut queue);
            log.dropped.fetch_add(1, Ordering::Relaxed);
        }
        if self.total_bytes() + len > config.max_total_bytes {
            log.dropped.fetch_add(1, Ordering::Relaxed);
            return;
        }
        queue.bytes += len;
        queue.events.push_back(json);
        self.inner.total.fetch_add(len, Ordering::Relaxed);
    }

    /// Counts an event of `tenant` dropped before it was buffered (its
    /// masking failed, say).
    pub fn count_dropped(&self, tenant: &str) {
        self.tenant(tenant).dropped.fetch_add(1, Ordering::Relaxed);
    }

    /// Bytes buffered over all tenants.
    pub fn total_bytes(&self) -> u64 {
        self.inner.total.load(Ordering::Relaxed)
    }

    /// Every tenant's buffer and counters, by tenant.
    pub fn stats(&self) -> Vec<TenantLogStats> {
        let pin = self.inner.tenants.pin();
        let mut out: Vec<_> = pin
            .iter()
            .map(|(tenant, log)| {
                let queue = log.lock();
                TenantLogStats {
                    tenant: tenant.to_string(),
                    buffered_events: queue.events.len(),
                    buffered_bytes: queue.bytes,
                    dropped: log.dropped.load(Ordering::Relaxed),
                    uploaded: log.uploaded.load(Ordering::Relaxed),
                }
            })
            .collect();
        out.sort_by(|a, b| a.tenant.cmp(&b.tenant));
        out
    }

    /// Asks the upload loop to upload now instead of at its next delay.
    pub fn flush(&self) {
        self.inner.flush.notify_one();
    }

    fn tenant(&self, tenant: &str) -> Arc<TenantLog> {
        let pin = self.inner.tenants.pin();
        if let Some(log) = pin.get(tenant) {
            return log.clone();
        }
        pin.get_or_insert_with(Arc::from(tenant), Default::default)
            .clone()
    }

    fn pop_oldest(&self, queue: &mut Queue) {
        if let Some(event) = queue.events.pop_front() {
            let len = event.len() as u64;
            queue.bytes -= len;
            self.inner.total.fetch_sub(len, Ordering::Relaxed);
        }
    }

    /// Tenants with events waiting.
    pub(crate) fn waiting(&self) -> Vec<Arc<str>> {
        let pin = self.inner.tenants.pin();
        pin.iter()
            .filter(|(_, log)| !log.lock().events.is_empty())
            .map(|(tenant, _)| tenant.clone())
            .collect()
    }

    pub(crate) fn log(&self, tenant: &str) -> Option<Arc<TenantLog>> {
        self.inner.tenants.pin().get(tenant).cloned()
    }

    /// Takes the tenant's oldest events, up to `limit` bytes of them (at
    /// least one, whatever its size).
    pub(crate) fn take(&self, log: &TenantLog, limit: u64) -> Vec<Vec<u8>> {
        let mut queue = log.lock();
        let mut taken = Vec::new();
        let mut bytes = 0u64;
        while let Some(len) = queue.events.front().map(|e| e.len() as u64) {
            if !taken.is_empty() && bytes + len > limit {
                break;
            }
            let Some(event) = queue.events.pop_front() else {
                break;
            };
            queue.bytes -= len;
            self.inner.total.fetch_sub(len, Ordering::Relaxed);
            bytes += len;
            taken.push(event);
        }
        taken
    }

    /// Puts events whose upload failed back in front of the tenant's
    /// buffer, in their order, as far as the limits allow; the oldest of
    /// them are dropped (and counted) when newer events took the room.
    pub(crate) fn requeue(&self, log: &TenantLog, events: Vec<Vec<u8>>) {
        let config = &self.inner.config;
        let mut queue = log.lock();
        for event in events.into_iter().rev() {
            let len = event.len() as u64;
            if queue.events.len() >= config.max_events
                || queue.bytes + len > config.max_bytes
                || self.total_bytes() + len > config.max_total_bytes
            {
                log.dropped.fetch_add(1, Ordering::Relaxed);
                continue;
            }
            queue.bytes += len;
            self.inner.total.fetch_add(len, Ordering::Relaxed);
            queue.events.push_front(event);
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod tests {
    use super::*;

    fn logs(max_events: usize, max_bytes: u64, max_total_bytes: u64) -> DecisionLogs {
        DecisionLogs::new(DecisionLogConfig {
            max_events,
            max_bytes,
            max_total_bytes,
        })
    }

    fn stat(logs: &DecisionLogs, tenant: &str) -> TenantLogStats {
        logs.stats()
            .into_iter()
            .find(|s| s.tenant == tenant)
            .unwrap()
    }

    #[test]
    fn a_full_tenant_drops_its_oldest_events_and_counts_them() {
        let logs = logs(3, 1 << 20, 1 << 20);
        for i in 0..5u8 {
            logs.record_json("a", vec![i; 10]);
        }
        let s = stat(&logs, "a");
        assert_eq!((s.buffered_events, s.buffered_bytes, s.dropped), (3, 30, 2));
        let log = logs.log("a").unwrap();
        let taken = logs.take(&log, 25);
        assert_eq!(taken, [vec![2; 10], vec![3; 10]]);
        assert_eq!(logs.total_bytes(), 10);
        // Back in front, in order; the room left decides what stays.
        logs.record_json("a", vec![5; 10]);
        logs.requeue(&log, taken);
        let s = stat(&logs, "a");
        assert_eq!((s.buffered_events, s.dropped), (3, 3));
        let all = logs.take(&log, u64::MAX);
        assert_eq!(all, [vec![3; 10], vec![4; 10], vec![5; 10]]);
    }

    #[test]
    fn the_byte_limits_hold_and_one_tenant_never_drops_anothers_events() {
        let logs = logs(100, 50, 60);
        logs.record_json("quiet", vec![0; 30]);
        // Too large for a tenant's buffer: dropped itself.
        logs.record_json("busy", vec![1; 51]);
        for _ in 0..10 {
            logs.record_json("busy", vec![2; 20]);
        }
        assert!(logs.total_bytes() <= 60, "{}", logs.total_bytes());
        let quiet = stat(&logs, "quiet");
        assert_eq!((quiet.buffered_events, quiet.dropped), (1, 0));
        let busy = stat(&logs, "busy");
        assert_eq!(busy.buffered_bytes, 20);
        assert_eq!(busy.dropped, 10);
        // A single event bigger than the total cap is never buffered.
        let tiny_total = self::logs(100, 1 << 20, 10);
        tiny_total.record_json("a", vec![0; 11]);
        assert_eq!(stat(&tiny_total, "a").dropped, 1);
        assert_eq!(tiny_total.total_bytes(), 0);
    }
}
