//! Loading one instance: fetching its bundle (with the last version tag),
//! validating and compiling it off the async runtime (sharing the compile
//! with every tenant whose bundle has the same digest), laying pushed
//! content over it, activating it, and what a load leaves behind: the
//! persisted copy, the restored one when a first fetch fails, the load
//! status. Also how loads are started (tracked by the scheduler and the
//! watcher) and stopped (retired).
//!
//! Loads are serialised per instance by its load lock and bounded across
//! the host by `load_concurrency`. Nothing here is on the decision path:
//! decisions read the activation this module stores, and never wait on it.

use crate::cache::DecisionCache;
use crate::host::HostInner;
use crate::instance::{Activation, Instance};
use crate::schedule::PollOutcome;
use crate::HostError;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::SystemTime;
use tenet_bundle::{Bundle, BundleError, Fetched};
use tenet_policy::{CompileOptions, Policy, PolicyError};
use tokio::time::Instant;

impl HostInner {
    pub(crate) async fn wait_ready(
        &self,
        instance: &Instance,
    ) -> Result<Arc<Activation>, HostError> {
        let timeout = self.config.startup_timeout;
        let now = Instant::now();
        let deadline = now.checked_add(timeout).unwrap_or(now);
        loop {
            let notified = instance.ready.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            if let Some(a) = instance.activation.load_full() {
                return Ok(a);
            }
            if instance.failed.load(Ordering::Acquire) || instance.is_collected() {
                if instance.missing.load(Ordering::Acquire) {
                    return Err(HostError::TenantNotFound {
                        tenant: instance.tenant.to_string(),
                    });
                }
                let reason = instance
                    .status
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .last_error
                    .clone()
                    .unwrap_or_default();
                return Err(HostError::LoadFailed {
                    tenant: instance.tenant.to_string(),
                    reason,
                });
            }
            if tokio::time::timeout_at(deadline, notified).await.is_err() {
                return Err(HostError::NotReady {
                    tenant: instance.tenant.to_string(),
                    waited: timeout,
                });
            }
        }
    }

    /// One load: fetch (with the last version tag), validate and compile off
    /// the async runtime, activate. Serialised per instance and bounded by
    /// `load_concurrency` across the host. Returns the new revision, or
    /// `None` when the bundle did not change.
    pub(crate) async fn load(
        self: &Arc<Self>,
        instance: &Arc<Instance>,
    ) -> Result<Option<Arc<str>>, HostError> {
        let _serial = instance.loading.lock().await;
        let _permit = self.load_permits.acquire().await.ok();
        let known = self.status(instance, |s| {
            s.last_fetch = Some(SystemTime::now());
            s.version.clone()
        });
        self.counters.fetches.fetch_add(1, Ordering::Relaxed);
        instance.tally.fetches.fetch_add(1, Ordering::Relaxed);
        // Before the source is read: see `Watch::register`.
        instance.fetch_started.store(true, Ordering::SeqCst);
        let fetch_timeout = self.config.fetch_timeout;
        let fetch_span = tracing::info_span!("fetch", tenant = %instance.tenant, source = %instance.source.location());
        let fetched = tokio::time::timeout(
            fetch_timeout,
            tracing::Instrument::instrument(instance.source.fetch(known.as_ref()), fetch_span),
        )
        .await
        .unwrap_or_else(|_| {
            Err(BundleError::Io {
                path: instance.source.location().into(),
                source: std::io::Error::new(
                    std::io::ErrorKind::TimedOut,
                    format!("no answer within {fetch_timeout:?}"),
                ),
            })
        });
        // A new instance whose source fails starts from its persisted copy
        // (the failure is still reported).
        let (fetched, restored) = match fetched {
            Err(e) => match self.restore(instance, &e).await {
                Some((bundle, restored)) => (Ok(bundle), Some(restored)),
                None => (Err(e), None),
            },
            fetched => (fetched, None),
        };
        let outcome = match fetched {
            Err(e) => {
                let missing = matches!(&e, BundleError::Io { source, .. } if source.kind() == std::io::ErrorKind::NotFound);
                instance.missing.store(missing, Ordering::Release);
                // A tenant fed by pushes alone: no bundle is its normal
                // state, not a failure — also once its pushed content was
                // deleted (it is then collected like any unreferenced
                // tenant), as long as no bundle ever activated.
                let pushes_only = self.push_only(&instance.tenant)
                    || (instance.current().is_some()
                        && !instance.bundle_seen.load(Ordering::Acquire));
                if missing && pushes_only {
                    Ok(None)
                } else {
                    Err(format!("fetching from {}: {e}", instance.source.location()))
                }
            }
            Ok(Fetched::NotModified) => Ok(None),
            Ok(Fetched::Bundle { payload, version }) => {
                let raw = (self.config.persist_dir.is_some() && restored.is_none())
                    .then(|| payload.clone());
                let inner = self.clone();
                let limits = self.config.bundle_limits.clone();
                let tenant = instance.tenant.clone();
                let verifier = instance.verifier.clone();
                let compile_span = tracing::info_span!("compile", tenant = %tenant);
                let compiled = tokio::task::spawn_blocking(move || {
                    let _span = compile_span.entered();
                    let bundle = payload
                        .into_bundle_verified(&limits, verifier.as_deref())
                        .map_err(|e| e.to_string())?;
                    // Pushed policies and data are laid over every revision.
                    let (bundle, rebase) = inner.overlay(&tenant, bundle);
                    let policy = inner.compiled_policy(&bundle).map_err(|e| e.to_string())?;
                    if let Some(rebase) = rebase {
                        inner.check_pushed_data(&rebase, &policy)?;
                        inner.rebase(&tenant, rebase);
                    }
                    Ok(policy)
                })
                .await
                .unwrap_or_else(|e| Err(format!("compile task failed: {e}")));
                compiled.map(|policy| Some((policy, version, raw)))
            }
        };
        let result = match outcome {
            Ok(None) => {
                self.status(instance, |s| {
                    s.consecutive_failures = 0;
                    s.last_error = None;
                });
                instance.failed.store(false, Ordering::Release);
                Ok(None)
            }
            Ok(Some((policy, _, _))) if restored.is_some() => {
                instance.bundle_seen.store(true, Ordering::Release);
                let revision = self.activate(instance, policy);
                Err(self.restored(instance, restored, &revision))
            }
            Ok(Some((policy, version, raw))) => {
                instance.missing.store(false, Ordering::Release);
                instance.bundle_seen.store(true, Ordering::Release);
                let revision = self.activate(instance, policy);
                self.status(instance, |s| {
                    s.version = Some(version.clone());
                    s.last_download = Some(SystemTime::now());
                });
                if let Some(raw) = raw {
                    self.persist(instance, raw, version, &revision).await;
                }
                Ok(Some(revision))
            }
            Err(reason) => {
                let reason = match &restored {
                    Some(r) => format!("{}; the persisted bundle failed too: {reason}", r.reason),
                    None => reason,
                };
                self.counters
                    .activation_failures
                    .fetch_add(1, Ordering::Relaxed);
                instance
                    .tally
                    .activation_failures
                    .fetch_add(1, Ordering::Relaxed);
                self.status(instance, |s| {
                    s.consecutive_failures += 1;
                    s.last_error = Some(reason.clone());
                });
                if instance.current().is_none() {
                    instance.failed.store(true, Ordering::Release);
                }
                tracing::warn!(tenant = %instance.tenant, error = %reason, "activation failed");
                Err(HostError::LoadFailed {
                    tenant: instance.tenant.to_string(),
                    reason,
                })
            }
        };
        instance.ready.notify_waiters();
        result
    }

    fn status<T>(
        &self,
        instance: &Instance,
        f: impl FnOnce(&mut crate::instance::LoadStatus) -> T,
    ) -> T {
        f(&mut instance.status.lock().unwrap_or_else(|p| p.into_inner()))
    }

    /// Compiles `bundle`, or reuses the compiled policy of another tenant
    /// whose bundle has the same digest. Runs on a blocking thread: loads of
    /// the same digest wait on that digest's slot, so however many tenants
    /// load one bundle at once, it is compiled once.
    pub(crate) fn compiled_policy(&self, bundle: &Bundle) -> Result<Policy, PolicyError> {
        let slot = self.compiled.slot(&bundle.digest);
        let mut weak = slot.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(policy) = weak.upgrade() {
            self.counters
                .shared_compiles
                .fetch_add(1, Ordering::Relaxed);
            return Ok(policy);
        }
        let options = CompileOptions {
            limits: self.config.eval_limits.clone(),
            evaluator: self.config.evaluator,
        };
        let policy = Policy::compile(bundle, options)?;
        self.counters.compiles.fetch_add(1, Ordering::Relaxed);
        *weak = policy.downgrade();
        Ok(policy)
    }

    /// Swaps in a new activation (with a fresh decision cache) atomically.
    pub(crate) fn activate(&self, instance: &Instance, policy: Policy) -> Arc<str> {
        let _span = tracing::info_span!(
            "activation",
            tenant = %instance.tenant,
            revision = %policy.revision()
        )
        .entered();
        let config = &self.config.decision_cache;
        let cache =
            (config.enabled && policy.is_deterministic()).then(|| DecisionCache::new(config));
        let revision: Arc<str> = policy.revision().into();
        relabel(instance, &policy);
        instance.activation.store(Some(Arc::new(Activation {
            policy,
            revision: revision.clone(),
            cache,
        })));
        instance.failed.store(false, Ordering::Release);
        self.status(instance, |s| {
            s.last_activation = Some(SystemTime::now());
            s.consecutive_failures = 0;
            s.last_error = None;
        });
        self.counters.activations.fetch_add(1, Ordering::Relaxed);
        instance.tally.activations.fetch_add(1, Ordering::Relaxed);
        tracing::info!(tenant = %instance.tenant, revision = %revision, "activated");
        instance.ready.notify_waiters();
        revision
    }
}

/// Gives `instance` the labels of `policy`'s bundle under its own (the
/// config's win); an unchanged set is left as it is.
fn relabel(instance: &Instance, policy: &Policy) {
    if policy.refused_labels() > 0 {
        tracing::warn!(
            tenant = %instance.tenant,
            refused = policy.refused_labels(),
            "the bundle's manifest offers labels that are not used (metadata.labels: at most 16 strings of at most 256 bytes, names [A-Za-z_][A-Za-z0-9_]*, not tenant/id/version)"
        );
    }
    let bundle = policy.bundle_labels();
    let labels = if bundle.is_empty() {
        instance.base_labels.clone()
    } else {
        let mut merged = bundle.clone();
        merged.extend(
            instance
                .base_labels
                .iter()
                .map(|(k, v)| (k.clone(), v.clone())),
        );
        Arc::new(merged)
    };
    if **instance.labels.load() != *labels {
        instance.labels.store(labels);
    }
}

/// A fetch that failed while the persisted copy was activated instead.
struct Restored {
    /// The fetch error, as the status reports it.
    reason: String,
    /// The persisted bundle's version tag, when its meta file matched.
    version: Option<tenet_bundle::VersionTag>,
}

/// Polling, watching and persistence: how loads are started and what
/// outlives the process.
impl HostInner {
    /// Starts polling (and, for a local source, watching) a new instance;
    /// its first poll runs at once, and a watched source's watches are
    /// armed beside it (`Watch::register` says how no change is missed).
    pub(crate) fn track(&self, instance: &Arc<Instance>) {
        self.scheduler.add(instance);
        if let (Some(watch), Some(path)) = (&self.watch, instance.source.watch_path()) {
            watch.register(instance, path);
        }
    }

    /// Stops polling and watching a collected instance.
    pub(crate) fn retire(&self, instance: &Instance) {
        self.scheduler.forget(instance.id);
        if let Some(watch) = &self.watch {
            watch.unregister(instance.id);
        }
    }

    /// One scheduled poll: a load, then (for an on-demand tenant whose
    /// source has no bundle and that never activated) dropping the
    /// instance, so unknown tenant names do not pile up retrying.
    pub(crate) async fn poll_once(self: &Arc<Self>, instance: &Arc<Instance>) -> PollOutcome {
        let ok = self.load(instance).await.is_ok();
        let dropped = !ok
            && instance.current().is_none()
            && instance.on_demand.load(Ordering::Relaxed)
            && instance.missing.load(Ordering::Acquire)
            && instance.try_collect();
        if dropped {
            let _ = self
                .instances
                .pin()
                .remove_if(instance.tenant.as_ref(), |_, v| Arc::ptr_eq(v, instance));
            self.retire(instance);
            self.remember_unknown(&instance.tenant);
            tracing::info!(tenant = %instance.tenant, "no bundle for on-demand tenant; instance dropped");
        }
        PollOutcome {
            ok,
            dropped,
            long_polls: instance.source.long_polls(),
        }
    }

    /// The persisted copy of a never-activated instance's bundle, to load
    /// in place of a failed fetch. Not for an on-demand tenant the source
    /// does not know (it is dropped instead).
    async fn restore(
        &self,
        instance: &Instance,
        error: &BundleError,
    ) -> Option<(Fetched, Restored)> {
        let dir = self.config.persist_dir.clone()?;
        if instance.current().is_some() {
            return None;
        }
        let missing = matches!(error, BundleError::Io { source, .. } if source.kind() == std::io::ErrorKind::NotFound);
        if missing && instance.on_demand.load(Ordering::Relaxed) {
            return None;
        }
        let (tenant, location) = (instance.tenant.clone(), instance.source.location());
        let limit = self.config.bundle_limits.max_compressed_bytes;
        let read = tokio::task::spawn_blocking(move || {
            crate::persist::read(&dir, &tenant, &location, limit)
        })
        .await;
        let persisted = match read {
            Ok(Ok(Some(p))) => p,
            Ok(Ok(None)) => return None,
            Ok(Err(e)) => {
                tracing::warn!(tenant = %instance.tenant, error = %e, "cannot read the persisted bundle");
                return None;
            }
            Err(e) => {
                tracing::warn!(tenant = %instance.tenant, error = %e, "cannot read the persisted bundle");
                return None;
            }
        };
        instance.missing.store(missing, Ordering::Release);
        tracing::info!(tenant = %instance.tenant, error = %error, "fetch failed; activating the persisted bundle");
        let bundle = Fetched::Bundle {
            payload: tenet_bundle::Payload::Archive(persisted.archive),
            // Not used: the status takes `Restored::version`.
            version: tenet_bundle::VersionTag(String::new()),
        };
        let restored = Restored {
            reason: format!("fetching from {}: {error}", instance.source.location()),
            version: persisted.version,
        };
        Some((bundle, restored))
    }

    /// Records a load that activated the persisted bundle: the fetch
    /// failed, so the status keeps its error and the scheduler retries.
    fn restored(
        &self,
        instance: &Instance,
        restored: Option<Restored>,
        revision: &str,
    ) -> HostError {
        let Restored { reason, version } = restored.unwrap_or(Restored {
            reason: String::new(),
            version: None,
        });
        self.counters
            .activation_failures
            .fetch_add(1, Ordering::Relaxed);
        instance
            .tally
            .activation_failures
            .fetch_add(1, Ordering::Relaxed);
        self.status(instance, |s| {
            s.version = version;
            s.consecutive_failures += 1;
            s.last_error = Some(reason.clone());
        });
        tracing::warn!(tenant = %instance.tenant, revision, error = %reason, "serving the persisted bundle");
        HostError::LoadFailed {
            tenant: instance.tenant.to_string(),
            reason,
        }
    }

    /// Writes a freshly activated bundle to `persist_dir`, off the async
    /// runtime. A failure is logged: the bundle is active either way.
    async fn persist(
        &self,
        instance: &Instance,
        payload: tenet_bundle::Payload,
        version: tenet_bundle::VersionTag,
        revision: &str,
    ) {
        let Some(dir) = self.config.persist_dir.clone() else {
            return;
        };
        let (tenant, source) = (instance.tenant.clone(), instance.source.location());
        let revision_owned = revision.to_string();
        let written = tokio::task::spawn_blocking(move || {
            crate::persist::write(&dir, &tenant, payload, &version, &revision_owned, &source)
        })
        .await;
        match written {
            Ok(Ok(())) => {}
            Ok(Err(e)) => {
                tracing::warn!(tenant = %instance.tenant, revision, error = %e, "cannot persist the bundle");
            }
            Err(e) => {
                tracing::warn!(tenant = %instance.tenant, revision, error = %e, "cannot persist the bundle");
            }
        }
    }
}
