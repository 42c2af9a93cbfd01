// Copyright (c) Microsoft Corporation.
// Licensed under the MIT License.

//! Compiled-pattern caches for Rego builtins.
//!
//! When the `cache` feature is enabled, compiled [`regex::Regex`] and
//! [`globset::GlobMatcher`] objects are held in bounded LRU caches so that
//! repeated evaluations of the same pattern avoid recompilation.
//!
//! Each [`Engine`](crate::Engine) (and the policies compiled from it) and each
//! `RegoVM` owns a [`PatternCache`], so that the patterns of one policy cannot
//! evict those of another. Clones of an engine share its cache; an embedder
//! may share one cache between engines and VMs with `set_pattern_cache`.
//! Builtins called outside of any engine or VM use a process-wide cache.
//! [`configure`] sets the capacities of the caches created afterwards and of
//! the process-wide cache; [`clear`] clears the process-wide cache.
//!
//! # Examples
//!
//! ```ignore
//! use regorus::cache;
//!
//! // Configure cache capacities (0 = disabled).
//! cache::configure(cache::Config {
//!     regex: 256,
//!     glob: 128,
//! });
//!
//! // Flush all cached patterns.
//! cache::clear();
//! ```

use lazy_static::lazy_static;
#[cfg(all(feature = "std", any(feature = "regex", feature = "glob")))]
use parking_lot::Mutex;
use spin::Mutex as SpinMutex;
#[cfg(all(not(feature = "std"), any(feature = "regex", feature = "glob")))]
use spin::Mutex;

#[cfg(any(feature = "regex", feature = "glob"))]
use alloc::string::String;
use alloc::sync::Arc;

/// Configuration for builtin pattern caches.
///
/// Each field controls the maximum number of compiled patterns held in the
/// corresponding LRU cache.  A value of `0` disables that cache entirely
/// (every lookup recompiles).  Values exceeding [`Config::MAX_CAPACITY`] are
/// clamped silently.
#[derive(Debug, Clone, Copy)]
pub struct Config {
    /// Maximum compiled regex patterns (default 256).
    pub regex: usize,
    /// Maximum compiled glob matchers (default 128).
    pub glob: usize,
}

impl Config {
    /// Hard upper bound for any single cache capacity (2^16 = 65 536).
    pub const MAX_CAPACITY: usize = 1 << 16;
}

impl Default for Config {
    fn default() -> Self {
        Self {
            regex: 256,
            glob: 128,
        }
    }
}

// ---------------------------------------------------------------------------
// Internal generic LRU wrapper
// ---------------------------------------------------------------------------

#[cfg(any(feature = "regex", feature = "glob"))]
pub(crate) struct LruCache<V> {
    /// The entries, in an unbounded `lru::LruCache` whose table grows with
    /// them: `lru::LruCache::new(capacity)` allocates the whole table up
    /// front (about 13 KiB for the default capacities), which every engine
    /// paid even if its policy never matches a pattern.
    inner: lru::LruCache<String, V>,
    /// Most entries kept; 0 disables the cache.
    capacity: usize,
}

#[cfg(any(feature = "regex", feature = "glob"))]
impl<V> core::fmt::Debug for LruCache<V> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("LruCache")
            .field("len", &self.len())
            .finish_non_exhaustive()
    }
}

#[cfg(any(feature = "regex", feature = "glob"))]
impl<V> LruCache<V> {
    pub(crate) fn new(capacity: usize) -> Self {
        Self {
            inner: lru::LruCache::unbounded(),
            capacity,
        }
    }

    /// Look up a key, returning a reference if present. Promotes to most-recent.
    pub(crate) fn get(&mut self, key: &str) -> Option<&V> {
        self.inner.get(key)
    }

    /// Insert a key-value pair. Evicts the least-recently-used entry if full.
    pub(crate) fn put(&mut self, key: String, value: V) {
        if self.capacity == 0 {
            return;
        }
        if !self.inner.contains(key.as_str()) {
            while self.inner.len() >= self.capacity {
                self.inner.pop_lru();
            }
        }
        self.inner.put(key, value);
    }

    /// Remove all entries.
    pub(crate) fn clear(&mut self) {
        self.inner.clear();
    }

    /// Resize the cache. If new capacity is 0, disables the cache.
    pub(crate) fn resize(&mut self, capacity: usize) {
        self.capacity = capacity;
        while self.inner.len() > capacity {
            self.inner.pop_lru();
        }
    }

    pub(crate) fn len(&self) -> usize {
        self.inner.len()
    }
}

// ---------------------------------------------------------------------------
// Per-engine caches
// ---------------------------------------------------------------------------

/// Compiled-pattern caches of one engine or VM: a bounded LRU cache of
/// compiled regexes and one of compiled globs.
#[derive(Debug)]
pub struct PatternCache {
    #[cfg(feature = "regex")]
    regex: Mutex<LruCache<regex::Regex>>,
    #[cfg(feature = "glob")]
    glob: Mutex<LruCache<globset::GlobMatcher>>,
}

impl PatternCache {
    /// Creates empty caches with the capacities of `config` (clamped to
    /// [`Config::MAX_CAPACITY`]).
    #[allow(unused_variables)]
    pub fn new(config: Config) -> Self {
        Self {
            #[cfg(feature = "regex")]
            regex: Mutex::new(LruCache::new(config.regex.min(Config::MAX_CAPACITY))),
            #[cfg(feature = "glob")]
            glob: Mutex::new(LruCache::new(config.glob.min(Config::MAX_CAPACITY))),
        }
    }

    /// Resizes the caches; existing entries are kept, subject to LRU eviction.
    #[allow(unused_variables)]
    pub fn configure(&self, config: Config) {
        #[cfg(feature = "regex")]
        self.regex
            .lock()
            .resize(config.regex.min(Config::MAX_CAPACITY));
        #[cfg(feature = "glob")]
        self.glob
            .lock()
            .resize(config.glob.min(Config::MAX_CAPACITY));
    }

    /// Removes all entries.
    pub fn clear(&self) {
        #[cfg(feature = "regex")]
        self.regex.lock().clear();
        #[cfg(feature = "glob")]
        self.glob.lock().clear();
    }

    /// Number of compiled regexes held.
    pub fn regex_len(&self) -> usize {
        #[cfg(feature = "regex")]
        return self.regex.lock().len();
        #[cfg(not(feature = "regex"))]
        0
    }

    /// Number of compiled globs held.
    pub fn glob_len(&self) -> usize {
        #[cfg(feature = "glob")]
        return self.glob.lock().len();
        #[cfg(not(feature = "glob"))]
        0
    }
}

impl Default for PatternCache {
    /// Empty caches with the capacities last set by [`configure`] (by default
    /// [`Config::default`]).
    fn default() -> Self {
        Self::new(*DEFAULT_CONFIG.lock())
    }
}

static DEFAULT_CONFIG: SpinMutex<Config> = SpinMutex::new(Config {
    regex: 256,
    glob: 128,
});

lazy_static! {
    /// Used by builtins called outside of any engine or VM.
    static ref GLOBAL: PatternCache = PatternCache::new(Config::default());
}

#[cfg(feature = "std")]
std::thread_local! {
    static CURRENT: core::cell::RefCell<Option<Arc<PatternCache>>> =
        const { core::cell::RefCell::new(None) };
}

/// Makes `cache` the cache used by builtins called on this thread until the
/// returned guard is dropped.
pub(crate) struct PatternCacheScope {
    #[cfg(feature = "std")]
    previous: Option<Arc<PatternCache>>,
    _not_send: core::marker::PhantomData<*const ()>,
}

impl PatternCacheScope {
    #[allow(unused_variables)]
    pub(crate) fn enter(cache: &Arc<PatternCache>) -> Self {
        Self {
            #[cfg(feature = "std")]
            previous: CURRENT.with(|current| current.replace(Some(cache.clone()))),
            _not_send: core::marker::PhantomData,
        }
    }
}

impl Drop for PatternCacheScope {
    fn drop(&mut self) {
        #[cfg(feature = "std")]
        CURRENT.with(|current| *current.borrow_mut() = self.previous.take());
    }
}

/// Runs `f` with the cache of the engine or VM evaluating on this thread, or
/// the process-wide cache.
#[allow(dead_code)]
fn with_current<R>(f: impl FnOnce(&PatternCache) -> R) -> R {
    #[cfg(feature = "std")]
    {
        let current = CURRENT.with(|current| current.borrow().clone());
        if let Some(cache) = current {
            return f(&cache);
        }
    }
    f(&GLOBAL)
}

/// The compiled regex cached for `pattern`, or `compile(pattern)` (cached when
/// it succeeds).
#[cfg(feature = "regex")]
pub(crate) fn get_or_compile_regex<E>(
    pattern: &str,
    compile: impl FnOnce(&str) -> core::result::Result<regex::Regex, E>,
) -> core::result::Result<regex::Regex, E> {
    with_current(|cache| {
        if let Some(re) = cache.regex.lock().get(pattern) {
            return Ok(re.clone());
        }
        let re = compile(pattern)?;
        cache.regex.lock().put(String::from(pattern), re.clone());
        Ok(re)
    })
}

/// The compiled glob cached for `pattern`, or `compile(pattern)` (cached when
/// it succeeds).
#[cfg(feature = "glob")]
pub(crate) fn get_or_compile_glob<E>(
    pattern: &str,
    compile: impl FnOnce(&str) -> core::result::Result<globset::GlobMatcher, E>,
) -> core::result::Result<globset::GlobMatcher, E> {
    with_current(|cache| {
        if let Some(matcher) = cache.glob.lock().get(pattern) {
            return Ok(matcher.clone());
        }
        let matcher = compile(pattern)?;
        cache
            .glob
            .lock()
            .put(String::from(pattern), matcher.clone());
        Ok(matcher)
    })
}

// ---------------------------------------------------------------------------
// Public API
// ---------------------------------------------------------------------------

/// Apply a new cache configuration.
///
/// Sets the capacities of the [`PatternCache`]s created afterwards (by new
/// engines and VMs) and resizes the process-wide cache used by builtins called
/// outside of any engine or VM. Existing entries are preserved (subject to LRU
/// eviction if the new capacity is smaller). Values exceeding
/// [`Config::MAX_CAPACITY`] are clamped. Use [`PatternCache::configure`] to
/// resize the cache of an existing engine or VM.
pub fn configure(config: Config) {
    *DEFAULT_CONFIG.lock() = config;
    GLOBAL.configure(config);
}

/// Remove all entries from the process-wide pattern cache. Use
/// [`PatternCache::clear`] for the cache of an engine or VM.
pub fn clear() {
    GLOBAL.clear();
}

#[cfg(all(test, any(feature = "regex", feature = "glob")))]
mod tests {
    use super::LruCache;
    use alloc::string::ToString;

    #[test]
    fn the_cache_keeps_at_most_its_capacity_and_evicts_the_least_recent() {
        let mut cache = LruCache::new(2);
        cache.put("a".to_string(), 1);
        cache.put("b".to_string(), 2);
        assert_eq!(cache.get("a"), Some(&1)); // "b" is now the least recent
        cache.put("c".to_string(), 3);
        assert_eq!(cache.len(), 2);
        assert_eq!(cache.get("b"), None);
        cache.put("a".to_string(), 10); // replacing evicts nothing
        assert_eq!(cache.get("a"), Some(&10));
        assert_eq!(cache.get("c"), Some(&3));
        cache.resize(1);
        assert_eq!(cache.len(), 1);
        cache.resize(0);
        cache.put("d".to_string(), 4);
        assert_eq!(cache.len(), 0);
        assert_eq!(cache.get("d"), None);
    }
}
