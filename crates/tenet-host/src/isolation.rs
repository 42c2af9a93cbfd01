//! Where a tenant's evaluations run: in this process (level `none`, on the
//! evaluation pool) or in a worker process behind an [`Offload`] (levels
//! `tenant` and `session`; tenet-isolation implements it). The host keeps
//! each tenant's level (configured rules, then changes made at run time)
//! and hands the evaluations of isolated tenants to the offload, with the
//! compiled policy they should run on; callers of `Host::decide` do not see
//! the difference. Nothing here starts a process or speaks a protocol.

use async_trait::async_trait;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;
use tenet_policy::{Evaluation, Input, Policy, PolicyError, QueryPath};

/// How strongly a tenant is kept apart from the others.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum IsolationLevel {
    /// In the host process, on the shared evaluation pool (with fair
    /// shares).
    #[default]
    None,
    /// In a worker process of the tenant's own.
    Tenant,
    /// In a worker process per session key of the tenant (a request
    /// without one shares the tenant's session-less worker).
    Session,
}

impl IsolationLevel {
    /// The request's session key as this level uses it: kept at
    /// `Session`, where it picks the worker; dropped at the others.
    pub(crate) fn session_key(self, session: Option<&str>) -> Option<Arc<str>> {
        session.filter(|_| self == Self::Session).map(Arc::from)
    }

    /// Its name in config, APIs and metrics.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::None => "none",
            Self::Tenant => "tenant",
            Self::Session => "session",
        }
    }

    /// Reads `none`, `tenant` or `session`.
    pub fn parse(text: &str) -> Option<Self> {
        match text {
            "none" => Some(Self::None),
            "tenant" => Some(Self::Tenant),
            "session" => Some(Self::Session),
            _ => None,
        }
    }

    pub(crate) fn to_u8(self) -> u8 {
        self as u8
    }

    pub(crate) fn from_u8(n: u8) -> Self {
        match n {
            1 => Self::Tenant,
            2 => Self::Session,
            _ => Self::None,
        }
    }
}

impl std::fmt::Display for IsolationLevel {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Which tenants start at which level: `tenants` maps a tenant id or a
/// pattern with `*` wildcards (`untrusted-*`) to a level; an exact id wins,
/// then the longest matching pattern, then `default`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct IsolationRules {
    /// The level of tenants no rule names.
    pub default: IsolationLevel,
    /// Levels by tenant id or pattern.
    pub tenants: BTreeMap<String, IsolationLevel>,
}

impl IsolationRules {
    /// `tenant`'s configured level.
    pub fn level_of(&self, tenant: &str) -> IsolationLevel {
        if let Some(level) = self.tenants.get(tenant) {
            return *level;
        }
        self.tenants
            .iter()
            .filter(|(pattern, _)| pattern.contains('*') && matches(pattern, tenant))
            .max_by_key(|(pattern, _)| pattern.len())
            .map_or(self.default, |(_, level)| *level)
    }

    /// True when any tenant may start isolated.
    pub fn any_isolated(&self) -> bool {
        self.default != IsolationLevel::None
            || self.tenants.values().any(|l| *l != IsolationLevel::None)
    }
}

/// `*` matches any run of characters (tenant ids have no other specials).
fn matches(pattern: &str, text: &str) -> bool {
    let mut parts = pattern.split('*');
    let first = parts.next().unwrap_or("");
    let Some(mut rest) = text.strip_prefix(first) else {
        return false;
    };
    let parts: Vec<&str> = parts.collect();
    let Some((last, middle)) = parts.split_last() else {
        return rest.is_empty();
    };
    for part in middle {
        match rest.find(part) {
            Some(at) => rest = &rest[at + part.len()..],
            None => return false,
        }
    }
    rest.len() >= last.len() && rest.ends_with(last)
}

/// One evaluation to run in a worker.
#[derive(Debug, Clone)]
pub struct OffloadRequest {
    /// The tenant.
    pub tenant: Arc<str>,
    /// Its level (`Tenant` or `Session`).
    pub level: IsolationLevel,
    /// The request's session key, at level `Session`.
    pub session: Option<Arc<str>>,
    /// The active revision: the worker compiles the same policy from its
    /// image once per revision.
    pub policy: Policy,
    /// What to evaluate.
    pub path: QueryPath,
    /// With this input.
    pub input: Input,
}

/// Several evaluations of one path for one tenant (and session), to run in
/// its worker together: one round trip instead of one per input.
#[derive(Debug, Clone)]
pub struct OffloadBatch {
    /// The tenant.
    pub tenant: Arc<str>,
    /// Its level (`Tenant` or `Session`).
    pub level: IsolationLevel,
    /// The requests' session key, at level `Session`.
    pub session: Option<Arc<str>>,
    /// The active revision.
    pub policy: Policy,
    /// What to evaluate.
    pub path: QueryPath,
    /// For each of these inputs, in order.
    pub inputs: Vec<Input>,
}

impl OffloadBatch {
    /// The batch's `n`th evaluation on its own.
    pub fn request(&self, n: usize) -> Option<OffloadRequest> {
        Some(OffloadRequest {
            tenant: self.tenant.clone(),
            level: self.level,
            session: self.session.clone(),
            policy: self.policy.clone(),
            path: self.path.clone(),
            input: self.inputs.get(n)?.clone(),
        })
    }
}

/// Why an offloaded evaluation has no answer.
#[derive(Debug, Clone, thiserror::Error)]
#[non_exhaustive]
pub enum OffloadError {
    /// The evaluation itself failed (in the worker, or the worker was
    /// killed for overrunning the deadline: `PolicyError::Timeout`).
    #[error(transparent)]
    Policy(PolicyError),
    /// The tenant's worker is down (crashed, restarting, backing off) or
    /// could not be started.
    #[error("{reason}")]
    Unavailable {
        /// What happened.
        reason: String,
    },
    /// The worker already has as many decisions waiting for it as it may.
    #[error("{pending} decisions are waiting for the tenant's worker, its limit")]
    Busy {
        /// Decisions waiting.
        pending: usize,
    },
    /// The tenant already has as many session workers as it may.
    #[error("the tenant has {limit} session workers, its limit")]
    TooManySessions {
        /// The limit.
        limit: usize,
    },
}

/// Something an in-process evaluation did that adaptive isolation counts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Strike {
    /// It ran into its deadline.
    Deadline,
    /// It ran out of its memory budget.
    Memory,
    /// It failed otherwise.
    Error,
    /// It took this long (reported from 1 ms on).
    Cost(Duration),
}

/// Runs evaluations of isolated tenants somewhere else (worker processes).
#[async_trait]
pub trait Offload: Send + Sync + 'static {
    /// Evaluates `request` in the worker for its tenant (and session).
    async fn evaluate(&self, request: OffloadRequest) -> Result<Evaluation, OffloadError>;

    /// Evaluates each input of `batch`, answering in order; one input's
    /// failure does not fail the others. By default, one
    /// [`Offload::evaluate`] after the other.
    async fn evaluate_batch(&self, batch: OffloadBatch) -> Vec<Result<Evaluation, OffloadError>> {
        let mut answers = Vec::with_capacity(batch.inputs.len());
        for n in 0..batch.inputs.len() {
            if let Some(request) = batch.request(n) {
                answers.push(self.evaluate(request).await);
            }
        }
        answers
    }

    /// Whether [`Offload::strike`] is wanted: when false (the default),
    /// in-process evaluations are neither timed nor reported.
    fn wants_strikes(&self) -> bool {
        false
    }

    /// Told of every failed, and every slow (≥ 1 ms), evaluation of a
    /// tenant at level `none` when [`Offload::wants_strikes`]; must return
    /// at once.
    fn strike(&self, _tenant: &str, _strike: Strike) {}
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod tests {
    use super::*;

    #[test]
    fn rules_pick_exact_then_longest_pattern_then_default() {
        let rules = IsolationRules {
            default: IsolationLevel::None,
            tenants: BTreeMap::from([
                ("untrusted-*".to_string(), IsolationLevel::Tenant),
                ("untrusted-chat-*".to_string(), IsolationLevel::Session),
                ("untrusted-ok".to_string(), IsolationLevel::None),
                ("*-sandbox".to_string(), IsolationLevel::Tenant),
            ]),
        };
        for (tenant, level) in [
            ("payments", IsolationLevel::None),
            ("untrusted-a", IsolationLevel::Tenant),
            ("untrusted-chat-1", IsolationLevel::Session),
            ("untrusted-ok", IsolationLevel::None),
            ("a-sandbox", IsolationLevel::Tenant),
            ("untrusted", IsolationLevel::None),
        ] {
            assert_eq!(rules.level_of(tenant), level, "{tenant}");
        }
        assert!(rules.any_isolated());
        assert!(!IsolationRules::default().any_isolated());
    }

    #[test]
    fn wildcards_match_runs_of_characters() {
        for (pattern, text, expected) in [
            ("*", "", true),
            ("*", "abc", true),
            ("a*c", "abc", true),
            ("a*c", "ac", true),
            ("a*c", "acb", false),
            ("a*b*c", "aXbYc", true),
            ("a*b*c", "aXcYb", false),
            ("ab*ba", "aba", false),
            ("x-*", "x-", true),
        ] {
            assert_eq!(matches(pattern, text), expected, "{pattern} {text}");
        }
    }

    #[test]
    fn levels_round_trip() {
        for level in [
            IsolationLevel::None,
            IsolationLevel::Tenant,
            IsolationLevel::Session,
        ] {
            assert_eq!(IsolationLevel::from_u8(level.to_u8()), level);
            assert_eq!(IsolationLevel::parse(level.as_str()), Some(level));
        }
        assert_eq!(IsolationLevel::parse("process"), None);
    }
}
