//! The host's side of an evaluation that ran elsewhere (an [`Offload`]):
//! its answer counted and cached as a local one would be, its failures
//! mapped to host errors; and the strikes that in-process evaluations
//! report to the offload for adaptive isolation. No evaluation runs here.

use crate::decide::evaluation_failed;
use crate::host::Decision;
use crate::instance::{Activation, Instance};
use crate::{HostError, Offload, OffloadError, Strike};
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;
use tenet_policy::{Evaluation, PolicyError};

/// Evaluations from this long on are reported as `Strike::Cost`.
const COSTLY: Duration = Duration::from_millis(1);

/// The decision for an offloaded evaluation's outcome.
pub(crate) fn decided(
    instance: &Instance,
    activation: &Activation,
    evaluation: Result<Evaluation, OffloadError>,
    cache_key: Option<(Arc<str>, Vec<u8>)>,
) -> Result<Decision, HostError> {
    instance.tally.evaluations.fetch_add(1, Ordering::Relaxed);
    let evaluation = match evaluation {
        Ok(evaluation) => evaluation,
        Err(OffloadError::Policy(e)) => return Err(evaluation_failed(instance, e)),
        Err(OffloadError::Unavailable { reason }) => {
            instance.decision_errors.fetch_add(1, Ordering::Relaxed);
            return Err(HostError::Unavailable {
                tenant: instance.tenant.to_string(),
                reason,
            });
        }
        Err(OffloadError::Busy { pending }) => {
            instance.decision_errors.fetch_add(1, Ordering::Relaxed);
            return Err(HostError::TooManyRequests {
                tenant: instance.tenant.to_string(),
                pending,
            });
        }
        Err(OffloadError::TooManySessions { limit }) => {
            instance.decision_errors.fetch_add(1, Ordering::Relaxed);
            return Err(HostError::TooManySessions {
                tenant: instance.tenant.to_string(),
                limit,
            });
        }
    };
    Ok(crate::decide::answered(
        instance, activation, evaluation, cache_key,
    ))
}

/// Tells `offload` what an in-process evaluation of `tenant` did, if it
/// failed or took long.
pub(crate) fn strike(
    offload: &dyn Offload,
    tenant: &str,
    decision: &Result<Decision, HostError>,
    took: Duration,
) {
    if let Err(HostError::Policy { source, .. }) = decision {
        offload.strike(
            tenant,
            match source {
                PolicyError::Timeout { .. } | PolicyError::InstructionLimit { .. } => {
                    Strike::Deadline
                }
                PolicyError::MemoryLimit { .. } => Strike::Memory,
                _ => Strike::Error,
            },
        );
    }
    if took >= COSTLY {
        offload.strike(tenant, Strike::Cost(took));
    }
}
