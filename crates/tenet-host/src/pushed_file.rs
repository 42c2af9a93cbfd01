//! Pushed content kept on disk (`HostConfig::persist_pushed_dir`): how a
//! push's new state reaches its file (pushes write it through here before
//! they commit, overlay.rs), how a revision that dropped pushed content
//! rewrites it, and how a starting host pushes every file's content again.
//!
//! The file format and its atomic writes are persist.rs; what a push may
//! hold and how it merges are overlay.rs and quota.rs. This module never
//! applies content except through [`Host`]'s ordinary push.

use crate::host::{Host, HostInner};
use crate::overlay::WriteOutcome;
use crate::HostError;
use std::path::PathBuf;

impl Host {
    /// Pushes each tenant's persisted content again (`persist_pushed_dir`):
    /// a restarted host serves what was pushed before it stopped. Each goes
    /// through the checks of any push (limits, the bundle's roots, compile);
    /// content the tenant's bundle now owns is dropped and logged, as when a
    /// new revision claims it. Returns every tenant found, with what
    /// happened; a tenant that failed (its bundle source down, its content
    /// no longer compiling) keeps its file for the next start.
    pub async fn restore_pushed(&self) -> Vec<(String, Result<(), HostError>)> {
        let Some(dir) = self.inner.config.persist_pushed_dir.clone() else {
            return Vec::new();
        };
        let listing = {
            let dir = dir.clone();
            tokio::task::spawn_blocking(move || crate::persist::pushed_tenants(&dir)).await
        };
        let tenants = match listing {
            Ok(Ok(tenants)) => tenants,
            failed => {
                let reason = match failed {
                    Ok(Err(e)) => e.to_string(),
                    Err(e) => e.to_string(),
                    Ok(Ok(_)) => String::new(),
                };
                let error = HostError::PersistFailed {
                    tenant: String::new(),
                    reason: format!("listing {}: {reason}", dir.display()),
                };
                return vec![(String::new(), Err(error))];
            }
        };
        let mut restored = Vec::with_capacity(tenants.len());
        for tenant in tenants {
            let result = self.restore_one(&dir, &tenant).await;
            restored.push((tenant, result));
        }
        restored
    }

    async fn restore_one(&self, dir: &std::path::Path, tenant: &str) -> Result<(), HostError> {
        // The file holds what the limits let through, plus JSON's overhead.
        let limit = (self.inner.config.max_pushed_bytes)
            .saturating_mul(2)
            .saturating_add(1 << 20);
        let read = {
            let (dir, tenant) = (dir.to_path_buf(), tenant.to_string());
            tokio::task::spawn_blocking(move || crate::persist::read_pushed(&dir, &tenant, limit))
                .await
        };
        let file = match read {
            Ok(Ok(Some(file))) => file,
            Ok(Ok(None)) => return Ok(()),
            Ok(Err(e)) => return Err(persist_failed(tenant, e.to_string())),
            Err(e) => return Err(persist_failed(tenant, e.to_string())),
        };
        let mut dropped_any = false;
        self.push(tenant, false, |base, pushed| {
            let (mut policies, mut data) = (file.policies, file.data);
            for what in crate::overlay::retain_unowned(tenant, base, &mut policies, &mut data) {
                tracing::warn!(tenant, dropped = %what, "the bundle's roots now claim persisted pushed content; dropped");
                dropped_any = true;
            }
            *pushed = (policies, data);
            Ok(WriteOutcome::Written)
        })
        .await?;
        if dropped_any {
            // What is kept now, as a rebase would write it. Nothing else
            // pushes while the host restores.
            let kept = {
                let pushed = self.inner.pushed.lock().unwrap_or_else(|p| p.into_inner());
                pushed.get(tenant).map(crate::overlay::Pushed::json)
            };
            self.inner
                .write_pushed_file(tenant, dir.to_path_buf(), kept)
                .await?;
        }
        Ok(())
    }
}

impl HostInner {
    /// Writes `json` as `tenant`'s pushed content on disk, or removes the
    /// file for `None` (nothing pushed).
    pub(crate) async fn write_pushed_file(
        &self,
        tenant: &str,
        dir: PathBuf,
        json: Option<Vec<u8>>,
    ) -> Result<(), HostError> {
        let name = tenant.to_string();
        let written = tokio::task::spawn_blocking(move || match json {
            Some(json) => crate::persist::write_pushed(&dir, &name, &json),
            None => crate::persist::remove_pushed(&dir, &name),
        })
        .await;
        match written {
            Ok(Ok(())) => Ok(()),
            Ok(Err(e)) => Err(persist_failed(tenant, e.to_string())),
            Err(e) => Err(persist_failed(tenant, e.to_string())),
        }
    }

    /// [`HostInner::write_pushed_file`] from a blocking thread, for a load
    /// whose revision dropped pushed content (the host keeps serving; a
    /// failure is logged).
    pub(crate) fn rewrite_pushed_file(&self, tenant: &str, json: Option<Vec<u8>>) {
        let Some(dir) = &self.config.persist_pushed_dir else {
            return;
        };
        let written = match json {
            Some(json) => crate::persist::write_pushed(dir, tenant, &json),
            None => crate::persist::remove_pushed(dir, tenant),
        };
        if let Err(e) = written {
            tracing::error!(tenant, error = %e, "cannot rewrite the persisted pushed content");
        }
    }
}

fn persist_failed(tenant: &str, reason: String) -> HostError {
    HostError::PersistFailed {
        tenant: tenant.to_string(),
        reason,
    }
}
