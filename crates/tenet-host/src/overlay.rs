//! Policies and data pushed through the API (OPA's policy API and data
//! write API), kept per tenant and laid over every bundle the tenant
//! fetches. A push builds the merged bundle, compiles it and activates it
//! like a load does: decisions see the old revision or the new one, and a
//! push that does not compile leaves both the pushed state and the active
//! revision unchanged.
//!
//! As in OPA, a bundle owns the paths under its manifest's roots: pushed
//! data and pushed policies must stay outside them (a bundle without a
//! manifest owns everything). A tenant with pushed content holds a reference
//! on its instance, so it is never collected while the content exists; once
//! all of it is deleted, the instance is unreferenced and collected like any
//! other. What pushes may hold host-wide is checked by quota.rs.
//!
//! This module parses neither HTTP nor JSON Patch documents; the server
//! turns requests into [`DataWrite`]s. How a write changes the pushed JSON
//! tree (OPA's storage rules) is document.rs.

use crate::document::{check_depth, lookup, mirror_parents, patch, put, remove};
use crate::host::{Capacity, Host, HostInner};
use crate::instance::Instance;
use crate::quota::{content_bytes, PushSize};
use crate::{HostError, Lease};
use serde_json::{Map, Value};
use sha2::{Digest, Sha256};
use std::collections::BTreeMap;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use tenet_bundle::{Bundle, BundleError, BundleSource, Fetched, Manifest, Module, Verifier};
use tenet_policy::Policy;

/// What was pushed to one tenant, and the bundle it was last laid over.
pub(crate) struct Pushed {
    policies: BTreeMap<String, String>,
    data: Map<String, Value>,
    base: Arc<Bundle>,
    /// `quota::content_bytes` of `policies` and `data`.
    bytes: u64,
    /// Keeps the instance referenced while anything is pushed.
    _lease: Lease,
}

impl Pushed {
    fn is_empty(&self) -> bool {
        self.policies.is_empty() && self.data.is_empty()
    }

    /// Laid over the empty bundle: the tenant is fed by pushes alone.
    pub(crate) fn is_push_only(&self) -> bool {
        self.base.digest == empty_bundle_digest()
    }

    /// The content as its persisted file holds it.
    pub(crate) fn json(&self) -> Vec<u8> {
        crate::persist::pushed_json(&self.policies, &self.data)
    }

    /// Bytes of pushed content, as the push limits count them.
    pub(crate) fn bytes(&self) -> u64 {
        self.bytes
    }
}

/// A write to a tenant's data document at some path (OPA's data API).
#[derive(Debug, Clone, PartialEq)]
pub enum DataWrite {
    /// `PUT`: create or replace the document, creating missing parents.
    /// With `if_none_match`, an existing document is left alone.
    Put { value: Value, if_none_match: bool },
    /// `PATCH`: JSON Patch operations, paths relative to the written path.
    Patch(Vec<PatchOp>),
    /// `DELETE`: remove the document; it must exist.
    Delete,
}

/// One JSON Patch operation (OPA supports `add`, `remove` and `replace`).
#[derive(Debug, Clone, PartialEq)]
pub struct PatchOp {
    /// What the operation does.
    pub kind: PatchKind,
    /// Path below the written path, as unescaped JSON Pointer tokens.
    pub path: Vec<String>,
    /// The value for `add` and `replace`.
    pub value: Value,
}

/// The JSON Patch operations OPA's data API accepts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PatchKind {
    /// Insert into an array or set an object member (creating or replacing).
    Add,
    /// Remove an existing member or element.
    Remove,
    /// Replace an existing member or element.
    Replace,
}

/// What a data write did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WriteOutcome {
    /// The document changed and the new revision is active.
    Written,
    /// `PUT` with `if_none_match` found the document already there.
    Exists,
}

/// A policy module as OPA's policy API lists it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PolicyModule {
    /// The module id: the push id, or the file path inside the bundle.
    pub id: String,
    /// The Rego text.
    pub raw: Arc<str>,
}

impl Host {
    /// Waits until `tenant` can decide (loading it on demand, as a decision
    /// would) and returns its active revision.
    pub async fn ready(&self, tenant: &str) -> Result<Arc<str>, HostError> {
        Ok(self.inner.ready(tenant).await?.revision.clone())
    }

    /// Every policy module of `tenant`'s active revision: the bundle's and
    /// the pushed ones.
    pub async fn policies(&self, tenant: &str) -> Result<Vec<PolicyModule>, HostError> {
        let activation = self.inner.ready(tenant).await?;
        Ok(activation
            .policy
            .modules()
            .iter()
            .map(|(id, raw)| PolicyModule {
                id: id.clone(),
                raw: raw.clone(),
            })
            .collect())
    }

    /// Creates or replaces the pushed policy `id` of `tenant` (creating the
    /// instance if needed) and activates the result.
    pub async fn put_policy(&self, tenant: &str, id: &str, raw: String) -> Result<(), HostError> {
        self.push(tenant, true, |base, pushed| {
            if base.modules.iter().any(|m| m.path == id) {
                return Err(owned(&base.manifest, tenant, id.to_string()));
            }
            let package = tenet_bundle::package_path(&raw).map_err(|reason| HostError::Policy {
                tenant: tenant.to_string(),
                source: tenet_policy::PolicyError::Compile {
                    file: id.to_string(),
                    message: reason,
                },
            })?;
            if base.manifest.claims(&package) {
                return Err(owned(&base.manifest, tenant, package.join("/")));
            }
            pushed.0.insert(id.to_string(), raw);
            Ok(WriteOutcome::Written)
        })
        .await
        .map(|_| ())
    }

    /// Deletes the pushed policy `id` of `tenant` and activates the result.
    pub async fn delete_policy(&self, tenant: &str, id: &str) -> Result<(), HostError> {
        self.inner.ready(tenant).await?;
        self.push(tenant, true, |base, pushed| {
            if pushed.0.remove(id).is_some() {
                Ok(WriteOutcome::Written)
            } else if let Some(m) = base.modules.iter().find(|m| m.path == id) {
                Err(owned(&base.manifest, tenant, m.package.join("/")))
            } else {
                Err(HostError::PolicyNotFound {
                    tenant: tenant.to_string(),
                    id: id.to_string(),
                })
            }
        })
        .await
        .map(|_| ())
    }

    /// Writes `tenant`'s data document at `path` (components under `data`)
    /// and activates the result.
    pub async fn write_data(
        &self,
        tenant: &str,
        path: &[String],
        write: DataWrite,
    ) -> Result<WriteOutcome, HostError> {
        if !matches!(write, DataWrite::Put { .. }) {
            self.inner.ready(tenant).await?;
        }
        self.push(tenant, true, |base, pushed| {
            let claimed = |p: &[String]| {
                if p.is_empty()
                    && !base.manifest.owns_everything()
                    && !base.manifest.roots.is_empty()
                {
                    return Err(HostError::RootWrite {
                        tenant: tenant.to_string(),
                    });
                }
                if base.manifest.claims(p) {
                    return Err(owned(&base.manifest, tenant, p.join("/")));
                }
                Ok(())
            };
            let data = &mut pushed.1;
            match &write {
                DataWrite::Put {
                    value,
                    if_none_match,
                } => {
                    claimed(path)?;
                    if *if_none_match && lookup(&base.data, data, path) {
                        return Ok(WriteOutcome::Exists);
                    }
                    put(tenant, data, path, value.clone())?;
                }
                DataWrite::Delete => {
                    claimed(path)?;
                    remove(tenant, data, path)?;
                }
                DataWrite::Patch(ops) => {
                    for op in ops {
                        let full: Vec<String> = path.iter().chain(&op.path).cloned().collect();
                        claimed(&full)?;
                        if op.kind == PatchKind::Add {
                            if let Some((_, parents)) = full.split_last() {
                                mirror_parents(&base.data, data, parents);
                            }
                        }
                        patch(tenant, data, &full, op)?;
                    }
                }
            }
            Ok(WriteOutcome::Written)
        })
        .await
    }

    /// One push: with the instance's loads held off, applies `change` to a
    /// copy of the pushed state, compiles the merged bundle and activates
    /// it; only then does the copy replace the pushed state. With `persist`
    /// (and `persist_pushed_dir` set), the new state is on disk before it
    /// is committed.
    pub(crate) async fn push(
        &self,
        tenant: &str,
        persist: bool,
        change: impl FnOnce(
            &Bundle,
            &mut (BTreeMap<String, String>, Map<String, Value>),
        ) -> Result<WriteOutcome, HostError>,
    ) -> Result<WriteOutcome, HostError> {
        let inner = &self.inner;
        let (lease, fetched, created) = inner.lease_for_push(tenant).await?;
        let instance = lease.instance().clone();
        let result = {
            let _serial = instance.loading.lock().await;
            inner
                .push_locked(tenant, lease, fetched, persist, change)
                .await
        };
        // A refused first push leaves no instance behind: names pushed to in
        // a flood must not pile up until the sweeper runs.
        if result.is_err() && created {
            inner.discard(&instance);
        }
        result
    }
}

impl HostInner {
    /// A reference for a push to `tenant`, the tenant's bundle when it had
    /// to be fetched to tell, and whether the instance was created for it.
    /// A tenant without an instance whose source has no bundle becomes
    /// push-only: it must fit `max_pushed_tenants`, and its instance is
    /// created without evicting anything (quota.rs).
    async fn lease_for_push(
        self: &Arc<Self>,
        tenant: &str,
    ) -> Result<(Lease, Option<Arc<Bundle>>, bool), HostError> {
        crate::validate_tenant(tenant)?;
        if self.lookup_live(tenant).is_some() {
            return Ok((self.acquire(tenant)?, None, false));
        }
        let (source, verifier) = self.source_of(tenant);
        let base = self
            .fetch_base(tenant, source.as_ref(), verifier, false)
            .await?;
        let capacity = if base.digest == empty_bundle_digest() {
            let size = PushSize {
                push_only: true,
                before: 0,
                after: 1,
            };
            let pushed = self.pushed.lock().unwrap_or_else(|p| p.into_inner());
            self.check_push_limits(&pushed, tenant, &size)?;
            Capacity::PushOnly
        } else {
            Capacity::Bundle
        };
        let lease = self.acquire_as(tenant, capacity)?;
        Ok((lease, Some(base), true))
    }

    /// The push itself, with the instance's loads held off by the caller.
    async fn push_locked(
        self: &Arc<Self>,
        tenant: &str,
        lease: Lease,
        fetched: Option<Arc<Bundle>>,
        persist: bool,
        change: impl FnOnce(
            &Bundle,
            &mut (BTreeMap<String, String>, Map<String, Value>),
        ) -> Result<WriteOutcome, HostError>,
    ) -> Result<WriteOutcome, HostError> {
        let instance = lease.instance().clone();
        // Read under the load lock, so a push that ran meanwhile is seen.
        let (base, mut state, before) = {
            let pushed = self.pushed.lock().unwrap_or_else(|p| p.into_inner());
            match pushed.get(tenant) {
                Some(p) => (
                    Some(p.base.clone()),
                    (p.policies.clone(), p.data.clone()),
                    p.bytes,
                ),
                None => (None, Default::default(), 0),
            }
        };
        let held = base.is_some();
        let base = match (base, fetched) {
            (Some(base), _) => base,
            (None, Some(fetched)) => fetched,
            (None, None) => {
                let seen = instance.bundle_seen.load(Ordering::Acquire);
                self.fetch_base(
                    tenant,
                    instance.source.as_ref(),
                    instance.verifier.clone(),
                    seen,
                )
                .await?
            }
        };
        if change(&base, &mut state)? == WriteOutcome::Exists {
            return Ok(WriteOutcome::Exists);
        }
        check_depth(tenant, &state.1)?;
        let size = PushSize {
            push_only: base.digest == empty_bundle_digest(),
            before,
            after: content_bytes(&state.0, &state.1),
        };
        {
            let pushed = self.pushed.lock().unwrap_or_else(|p| p.into_inner());
            self.check_push_limits(&pushed, tenant, &size)?;
        }
        self.check_push_memory(tenant, &size)?;
        let merged = merge(&base, &state.0, &state.1);
        let compiler = self.clone();
        let policy = tokio::task::spawn_blocking(move || compiler.compiled_policy(&merged))
            .await
            .map_err(|e| HostError::LoadFailed {
                tenant: tenant.to_string(),
                reason: format!("compile task failed: {e}"),
            })?
            .map_err(|source| HostError::Policy {
                tenant: tenant.to_string(),
                source,
            })?;
        // Pushed data may not sit where a rule is defined, nor below one,
        // nor hold a scalar above one: OPA reports a conflicting rule.
        if let Some(rule) = conflicting_rule(&policy, &state.1) {
            return Err(conflict(tenant, rule));
        }
        // On disk before it is committed: a push that was answered is never
        // lost. No other push to this tenant runs meanwhile (the caller
        // holds its load lock), so the file and the state stay in step.
        let dir = self.config.persist_pushed_dir.clone().filter(|_| persist);
        if let Some(dir) = &dir {
            let emptied = state.0.is_empty() && state.1.is_empty();
            let json = (!emptied).then(|| crate::persist::pushed_json(&state.0, &state.1));
            self.write_pushed_file(tenant, dir.clone(), json).await?;
        }
        // Again under the lock that commits: pushes to other tenants may
        // have taken the room since the first check.
        let committed = {
            let mut pushed = self.pushed.lock().unwrap_or_else(|p| p.into_inner());
            match self.check_push_limits(&pushed, tenant, &size) {
                Ok(()) => {
                    self.activate(&instance, policy);
                    if !size.push_only {
                        instance.bundle_seen.store(true, Ordering::Release);
                    }
                    let next = Pushed {
                        policies: state.0,
                        data: state.1,
                        base,
                        bytes: size.after,
                        _lease: lease,
                    };
                    // Emptied: the entry (and with it the lease) goes, so the
                    // instance is collected after the grace period like any
                    // unreferenced one. It is dropped outside the lock.
                    Ok(if next.is_empty() {
                        pushed.remove(tenant);
                        Some(next)
                    } else {
                        pushed.insert(instance.tenant.clone(), next);
                        None
                    })
                }
                Err(refused) => Err((refused, pushed.get(tenant).map(Pushed::json))),
            }
        };
        let released = match committed {
            Ok(released) => released,
            Err((refused, on_disk)) => {
                if let Some(dir) = dir {
                    // Put the committed state back on disk.
                    if let Err(e) = self.write_pushed_file(tenant, dir, on_disk).await {
                        tracing::error!(tenant, error = %e, "cannot put the pushed content on disk back");
                    }
                }
                return Err(refused);
            }
        };
        let emptied = released.is_some();
        drop(released);
        if emptied && held {
            tracing::info!(tenant, "pushed content deleted; instance no longer kept");
        } else if !held && !emptied {
            tracing::info!(tenant, "tenant has pushed content; instance kept");
        }
        Ok(WriteOutcome::Written)
    }
}

impl HostInner {
    /// The tenant's active revision, found as a decision finds it: an
    /// unknown tenant is loaded on demand (and stays unknown, leaving no
    /// instance, when its source has no bundle).
    async fn ready(
        self: &Arc<Self>,
        tenant: &str,
    ) -> Result<Arc<crate::instance::Activation>, HostError> {
        let instance = self.requested(tenant)?;
        self.wait_ready(&instance).await
    }

    /// The tenant's bundle as `source` has it now; an empty bundle that
    /// owns nothing when the source has none (a tenant fed only by pushes),
    /// unless a bundle from the source was activated before (`bundle_seen`).
    async fn fetch_base(
        &self,
        tenant: &str,
        source: &dyn BundleSource,
        verifier: Option<Arc<Verifier>>,
        bundle_seen: bool,
    ) -> Result<Arc<Bundle>, HostError> {
        let failed = |reason: String| HostError::LoadFailed {
            tenant: tenant.to_string(),
            reason,
        };
        let fetched = tokio::time::timeout(self.config.fetch_timeout, source.fetch(None)).await;
        let payload = match fetched {
            Err(_) => return Err(failed("bundle fetch timed out".to_string())),
            Ok(Err(BundleError::Io { source: io, .. }))
                if io.kind() == std::io::ErrorKind::NotFound =>
            {
                // Only a tenant that never activated a bundle is fed by
                // pushes alone; laying a push over nothing for a tenant
                // whose bundle was active would silently drop its bundle's
                // policies. (Activating pushed content alone does not count:
                // a push-only tenant emptied by deletes takes pushes again.)
                if bundle_seen {
                    return Err(failed(format!(
                        "its bundle is no longer at {}; the push would replace its policies",
                        source.location()
                    )));
                }
                return Ok(Arc::new(empty_bundle()));
            }
            Ok(Err(e)) => return Err(failed(format!("fetching the bundle: {e}"))),
            Ok(Ok(Fetched::NotModified)) => {
                return Err(failed(
                    "source answered not-modified to a plain fetch".into(),
                ))
            }
            Ok(Ok(Fetched::Bundle { payload, .. })) => payload,
        };
        let limits = self.config.bundle_limits.clone();
        tokio::task::spawn_blocking(move || {
            payload.into_bundle_verified(&limits, verifier.as_deref())
        })
        .await
        .map_err(|e| failed(format!("read task failed: {e}")))?
        .map(Arc::new)
        .map_err(|e| failed(e.to_string()))
    }

    /// `bundle` with the tenant's pushed content laid over it, plus what to
    /// keep once the merged bundle compiled ([`HostInner::rebase`]): the new
    /// base and the pushed content that still applies. As in OPA, the bundle
    /// wins: pushed policies and data under the new revision's roots are
    /// dropped (and logged), not the revision. Called by loads, which hold
    /// the instance's load lock, so no push runs meanwhile.
    pub(crate) fn overlay(&self, tenant: &str, bundle: Bundle) -> (Bundle, Option<Rebase>) {
        let pushed = self.pushed.lock().unwrap_or_else(|p| p.into_inner());
        let Some(p) = pushed.get(tenant) else {
            return (bundle, None);
        };
        let mut policies = p.policies.clone();
        let mut data = p.data.clone();
        drop(pushed);
        let dropped = retain_unowned(tenant, &bundle, &mut policies, &mut data);
        let merged = merge(&bundle, &policies, &data);
        (
            merged,
            Some(Rebase {
                base: bundle,
                policies,
                data,
                dropped,
            }),
        )
    }

    /// Fails when pushed data sits where a rule of `policy` (compiled from
    /// the merged bundle) is defined.
    pub(crate) fn check_pushed_data(&self, rebase: &Rebase, policy: &Policy) -> Result<(), String> {
        match conflicting_rule(policy, &rebase.data) {
            Some(rule) => Err(format!(
                "the revision defines a rule at {}, where pushed data is",
                rule.join("/")
            )),
            None => Ok(()),
        }
    }

    /// True when the tenant is fed by pushes alone (its source never had a
    /// bundle for it): a missing bundle is then the normal state.
    pub(crate) fn push_only(&self, tenant: &str) -> bool {
        let pushed = self.pushed.lock().unwrap_or_else(|p| p.into_inner());
        pushed.get(tenant).is_some_and(Pushed::is_push_only)
    }

    /// Keeps what `overlay` computed, once its revision compiled. Blocking
    /// when content was dropped and pushed content is persisted (the file
    /// is rewritten): call from a blocking thread.
    pub(crate) fn rebase(&self, tenant: &str, rebase: Rebase) {
        let mut pushed = self.pushed.lock().unwrap_or_else(|p| p.into_inner());
        let Some(p) = pushed.get_mut(tenant) else {
            return;
        };
        for what in &rebase.dropped {
            tracing::warn!(tenant, dropped = %what, "the bundle's roots now claim pushed content; dropped");
        }
        p.base = Arc::new(rebase.base);
        p.bytes = content_bytes(&rebase.policies, &rebase.data);
        p.policies = rebase.policies;
        p.data = rebase.data;
        let json = (!p.is_empty()).then(|| p.json());
        // Emptied by the bundle: the tenant no longer holds a reference
        // for pushed content.
        let released = if p.is_empty() {
            pushed.remove(tenant)
        } else {
            None
        };
        drop(pushed);
        drop(released);
        if !rebase.dropped.is_empty() {
            self.rewrite_pushed_file(tenant, json);
        }
    }
}

/// The outcome of laying pushed content over a fetched bundle.
pub(crate) struct Rebase {
    base: Bundle,
    policies: BTreeMap<String, String>,
    data: Map<String, Value>,
    dropped: Vec<String>,
}

/// Drops the pushed policies and data that `bundle` owns (its modules' ids,
/// the packages and data paths under its roots), returning what was
/// dropped: as in OPA, the bundle wins.
pub(crate) fn retain_unowned(
    tenant: &str,
    bundle: &Bundle,
    policies: &mut BTreeMap<String, String>,
    data: &mut Map<String, Value>,
) -> Vec<String> {
    let mut dropped = Vec::new();
    policies.retain(|id, raw| {
        let package = tenet_bundle::package_path(raw).unwrap_or_default();
        let keep =
            !bundle.modules.iter().any(|m| &m.path == id) && !bundle.manifest.claims(&package);
        if !keep {
            dropped.push(format!("policy {id}"));
        }
        keep
    });
    // Each pass removes the shallowest owned path; bounded by the number of
    // documents in the pushed tree.
    while let Some(path) = data
        .iter()
        .find_map(|(k, v)| first_owned(&bundle.manifest, std::slice::from_ref(k), v))
    {
        let _ = remove(tenant, data, &path);
        dropped.push(format!("data /{}", path.join("/")));
    }
    dropped
}

/// The shallowest path at or under `path` (holding `value`) that the
/// manifest owns: pushed data the bundle would overwrite. Objects above a
/// root only pass through, so their members are checked one by one.
fn first_owned(manifest: &Manifest, path: &[String], value: &Value) -> Option<Vec<String>> {
    if manifest.owns(path) {
        return Some(path.to_vec());
    }
    match value {
        Value::Object(map) if manifest.claims(path) => map.iter().find_map(|(k, v)| {
            let mut child = path.to_vec();
            child.push(k.clone());
            first_owned(manifest, &child, v)
        }),
        // Anything but an object above a root would replace the bundle's
        // document under it.
        _ if manifest.claims(path) => Some(path.to_vec()),
        _ => None,
    }
}

/// OPA's refusal of a write the bundle owns; `path` is slash-separated
/// without a leading slash (empty when the bundle owns everything).
fn owned(manifest: &Manifest, tenant: &str, path: String) -> HostError {
    HostError::OwnedByBundle {
        tenant: tenant.to_string(),
        path: if manifest.owns_everything() {
            String::new()
        } else {
            path
        },
    }
}

/// Pushed data where a rule is defined.
fn conflict(tenant: &str, rule: &[String]) -> HostError {
    HostError::DataConflict {
        tenant: tenant.to_string(),
        path: rule.join("/"),
    }
}

/// The first rule of `policy` whose path pushed `data` conflicts with.
fn conflicting_rule<'p>(policy: &'p Policy, data: &Map<String, Value>) -> Option<&'p Vec<String>> {
    policy
        .rule_paths()
        .iter()
        .find(|rule| data_conflicts(data, rule))
}

/// True when `data` holds a document at `rule`, below it, or a non-object
/// on the way to it.
fn data_conflicts(data: &Map<String, Value>, rule: &[String]) -> bool {
    let Some((first, rest)) = rule.split_first() else {
        return false;
    };
    let Some(mut at) = data.get(first) else {
        return false;
    };
    for key in rest {
        match at {
            Value::Object(map) => match map.get(key) {
                Some(next) => at = next,
                None => return false,
            },
            _ => return true,
        }
    }
    true
}

/// A bundle with nothing in it that claims no path.
fn empty_bundle() -> Bundle {
    Bundle {
        manifest: Manifest {
            roots: Vec::new(),
            ..Manifest::default()
        },
        modules: Vec::new(),
        data: Value::Object(Map::new()),
        data_files: Vec::new(),
        files: Vec::new(),
        digest: empty_bundle_digest(),
    }
}

fn empty_bundle_digest() -> String {
    hex_digest(&[b"tenet-empty-bundle"])
}

/// SHA-256 over `parts` in order, as lowercase hex.
fn hex_digest(parts: &[&[u8]]) -> String {
    let mut hasher = Sha256::new();
    for part in parts {
        hasher.update(part);
    }
    hasher
        .finalize()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// `base` plus pushed policies and data. The digest covers both, so the
/// host's compile sharing only ever shares identical merged bundles.
fn merge(base: &Bundle, policies: &BTreeMap<String, String>, data: &Map<String, Value>) -> Bundle {
    let mut merged = base.clone();
    for (id, raw) in policies {
        merged.modules.push(Module {
            path: id.clone(),
            package: tenet_bundle::package_path(raw).unwrap_or_default(),
            source: raw.clone(),
            rego_version: 1,
        });
    }
    if let Value::Object(target) = &mut merged.data {
        for (k, v) in data {
            deep_merge(target, k, v.clone());
        }
    }
    let pushed = serde_json::json!({ "policies": policies, "data": data }).to_string();
    merged.digest = hex_digest(&[base.digest.as_bytes(), pushed.as_bytes()]);
    merged
}

fn deep_merge(target: &mut Map<String, Value>, key: &str, value: Value) {
    match (target.get_mut(key), value) {
        (Some(Value::Object(existing)), Value::Object(incoming)) => {
            for (k, v) in incoming {
                deep_merge(existing, &k, v);
            }
        }
        (_, value) => {
            target.insert(key.to_string(), value);
        }
    }
}

impl Lease {
    pub(crate) fn instance(&self) -> &Arc<Instance> {
        &self.instance
    }
}

/// Compiles `bundle` outside the host (for tests of merging).
#[cfg(test)]
fn compile(bundle: &Bundle) -> Result<tenet_policy::Policy, tenet_policy::PolicyError> {
    tenet_policy::Policy::compile(bundle, tenet_policy::CompileOptions::default())
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn merged_bundles_compile_and_digest_their_content() {
        let base = empty_bundle();
        let mut policies = BTreeMap::new();
        policies.insert(
            "p.rego".to_string(),
            "package p\nallow if data.cfg.on\n".to_string(),
        );
        let mut data = Map::new();
        data.insert("cfg".into(), json!({"on": true}));
        let merged = merge(&base, &policies, &data);
        let policy = compile(&merged).unwrap();
        let input = tenet_policy::Input::none();
        assert_eq!(
            policy.evaluate("data.p.allow", &input).unwrap(),
            Some(json!(true))
        );
        data.insert("cfg".into(), json!({"on": false}));
        assert_ne!(merge(&base, &policies, &data).digest, merged.digest);
    }
}
