//! The decision cache of one activation: (path, canonical input) → result,
//! bounded by entries and bytes, with a time-to-live. It lives inside an
//! activation, so a new revision starts with an empty cache and a collected
//! instance takes its cache with it. Only deterministic policies get one.

use crate::DecisionCacheConfig;
use std::sync::Arc;

/// The cached value: the result, or `None` for undefined.
type Cached = Arc<Option<serde_json::Value>>;

/// A bounded, TTL'd map from (path, canonical input JSON) to a decision.
/// Keys hold the whole canonical input (no hash collisions can return a
/// wrong decision); the byte bound counts keys and values.
pub(crate) struct DecisionCache {
    cache: moka::sync::Cache<(Arc<str>, Vec<u8>), Cached>,
}

impl DecisionCache {
    pub(crate) fn new(config: &DecisionCacheConfig) -> Self {
        let per_entry_cap = config.max_bytes / config.max_entries.max(1);
        // moka bounds the total weight. Each entry weighs its bytes but at
        // least an equal share of the budget, so at most `max_entries` fit.
        let cache = moka::sync::Cache::builder()
            .max_capacity(config.max_bytes)
            .weigher(move |k: &(Arc<str>, Vec<u8>), v: &Cached| {
                let bytes =
                    k.0.len() + k.1.len() + v.as_ref().as_ref().map_or(0, approx_json_bytes);
                u32::try_from(bytes.max(per_entry_cap as usize)).unwrap_or(u32::MAX)
            })
            .time_to_live(config.ttl)
            .build();
        Self { cache }
    }

    pub(crate) fn get(&self, path: &Arc<str>, input: &[u8]) -> Option<Cached> {
        self.cache.get(&(path.clone(), input.to_vec()))
    }

    pub(crate) fn insert(&self, path: Arc<str>, input: Vec<u8>, value: Cached) {
        self.cache.insert((path, input), value);
    }

    /// Approximate bytes held.
    pub(crate) fn weighted_bytes(&self) -> u64 {
        self.cache.run_pending_tasks();
        self.cache.weighted_size()
    }

    #[cfg(test)]
    pub(crate) fn entries(&self) -> u64 {
        self.cache.entry_count()
    }
}

fn approx_json_bytes(v: &serde_json::Value) -> usize {
    serde_json::to_vec(v).map_or(0, |b| b.len())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn bounded_by_entries_through_weights() {
        let c = DecisionCache::new(&DecisionCacheConfig {
            enabled: true,
            max_entries: 10,
            max_bytes: 10 * 100,
            ttl: Duration::from_secs(60),
        });
        let p: Arc<str> = "data.x".into();
        for i in 0..100u32 {
            c.insert(
                p.clone(),
                i.to_le_bytes().to_vec(),
                Arc::new(Some(serde_json::json!(i))),
            );
        }
        c.cache.run_pending_tasks();
        assert!(c.entries() <= 10, "{} entries", c.entries());
        assert!(c.weighted_bytes() <= 1000);
    }
}
