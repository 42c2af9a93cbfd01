//! Who may call what: bearer tokens, each granting scopes (`decide`,
//! `write`, `admin`), and whether policy and data writes are accepted
//! without a token. The router asks [`Auth::check`] with the scope a route
//! needs; this module knows nothing of routes, tenants or request bodies.
//!
//! The rules, per scope:
//! - `decide` (the data API's reads and decisions, policy listings, batch,
//!   `POST /`): open until some token grants `decide`; then a token with it
//!   is required.
//! - `write` (`PUT`/`PATCH`/`DELETE` of policies and data): once some token
//!   grants `write`, a token with it is required. With none, writes are
//!   accepted without a token only where that was allowed
//!   ([`unauthenticated_writes`]: by default only on a loopback listen
//!   address), else refused with 403 `writes_disabled` — a server reachable
//!   from the network must not let anyone replace every tenant's policy.
//! - `admin` (`/v1/tenants`, `/metrics`, tenant names in readiness): open
//!   only while no token at all is configured, so setting any token never
//!   leaves the admin API open; while it is open, the router holds its
//!   changes (pin, unpin, reload) to the `write` rule as well.
//!
//! `server.admin_token` is a token with `admin` and `write`;
//! `server.decision_token` one with `decide` (plus `write` and `admin` when
//! no admin token is set), as before scopes existed. A client that sends
//! one token for reads and writes (opa-python-client, OPAL) gets a
//! `server.tokens` entry with both scopes.

use crate::ApiError;
use axum::http::{HeaderMap, StatusCode};
use serde::Deserialize;
use std::collections::BTreeSet;
use std::net::IpAddr;

/// What a token lets its bearer do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Scope {
    /// Decisions and reads of the data and policy APIs.
    Decide,
    /// Policy and data writes (`PUT`, `PATCH`, `DELETE`).
    Write,
    /// The admin API (`/v1/tenants`), `/metrics`, tenant names in readiness.
    Admin,
}

/// The tokens and the write policy of one server.
#[derive(Debug, Clone, Default)]
pub struct Auth {
    tokens: Vec<(String, BTreeSet<Scope>)>,
    unauthenticated_writes: bool,
}

/// Whether writes are accepted without a token: `setting`
/// (`server.allow_unauthenticated_writes`) when given, else only when the
/// server listens on a loopback address (the zero-config start on
/// 127.0.0.1 keeps working; a server on `0.0.0.0` does not take writes from
/// anyone who can reach it).
pub fn unauthenticated_writes(setting: Option<bool>, listen: IpAddr) -> bool {
    setting.unwrap_or_else(|| listen.is_loopback())
}

impl Auth {
    /// No token; writes without a token only if `unauthenticated_writes`.
    pub fn new(unauthenticated_writes: bool) -> Self {
        Self {
            tokens: Vec::new(),
            unauthenticated_writes,
        }
    }

    /// Adds a token granting `scopes`.
    pub fn with_token(
        mut self,
        token: impl Into<String>,
        scopes: impl IntoIterator<Item = Scope>,
    ) -> Self {
        self.tokens
            .push((token.into(), scopes.into_iter().collect()));
        self
    }

    /// The legacy pair: the admin token grants `admin` and `write`; the
    /// decision token `decide`, and also `write` and `admin` when no admin
    /// token is set (as before scopes: writes and the admin API then needed
    /// the decision token).
    pub fn with_legacy(self, admin: Option<&str>, decision: Option<&str>) -> Self {
        let mut auth = self;
        if let Some(admin) = admin {
            auth = auth.with_token(admin, [Scope::Admin, Scope::Write]);
        }
        if let Some(decision) = decision {
            let scopes: &[Scope] = if admin.is_some() {
                &[Scope::Decide]
            } else {
                &[Scope::Decide, Scope::Write, Scope::Admin]
            };
            auth = auth.with_token(decision, scopes.iter().copied());
        }
        auth
    }

    /// True when any token is configured.
    pub fn any_token(&self) -> bool {
        !self.tokens.is_empty()
    }

    /// True when writes are accepted without a token (no token grants
    /// `write` and unauthenticated writes are allowed).
    pub fn writes_open(&self) -> bool {
        self.unauthenticated_writes && !self.guarded(Scope::Write)
    }

    /// True when no write is accepted at all: no token grants `write` and
    /// unauthenticated writes are not allowed.
    pub fn writes_disabled(&self) -> bool {
        !self.unauthenticated_writes && !self.guarded(Scope::Write)
    }

    /// True when a token must carry `scope`.
    fn guarded(&self, scope: Scope) -> bool {
        match scope {
            Scope::Admin => self.any_token(),
            _ => self.tokens.iter().any(|(_, s)| s.contains(&scope)),
        }
    }

    /// True when the request's bearer token grants `scope` (false when no
    /// token grants it or none was sent).
    pub fn grants(&self, scope: Scope, headers: &HeaderMap) -> bool {
        let given = bearer(headers);
        // Every token is compared (in constant time), so the answer's
        // timing does not say which token nearly matched.
        self.tokens
            .iter()
            .filter(|(token, scopes)| same(token, given) && scopes.contains(&scope))
            .count()
            > 0
    }

    /// Refuses a request that needs `scope` and may not have it: 401
    /// `unauthorized` without a token that grants it, 403 `writes_disabled`
    /// for a write when no token grants writes and unauthenticated writes
    /// are not allowed.
    pub fn check(&self, scope: Scope, headers: &HeaderMap) -> Result<(), ApiError> {
        if self.guarded(scope) {
            return if self.grants(scope, headers) {
                Ok(())
            } else {
                Err(ApiError::new(
                    StatusCode::UNAUTHORIZED,
                    "unauthorized",
                    "missing or invalid bearer token",
                ))
            };
        }
        if scope == Scope::Write && !self.unauthenticated_writes {
            return Err(ApiError::new(
                StatusCode::FORBIDDEN,
                "writes_disabled",
                "policy and data writes are disabled: no token grants writes and the server \
                 does not listen on a loopback address (configure a token with the write \
                 scope, or server.allow_unauthenticated_writes)",
            ));
        }
        Ok(())
    }
}

/// The bearer token of a request ("" when none).
fn bearer(headers: &HeaderMap) -> &str {
    headers
        .get(axum::http::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .unwrap_or("")
}

/// Constant-time equality (for equal lengths).
fn same(expected: &str, given: &str) -> bool {
    given.len() == expected.len()
        && given
            .bytes()
            .zip(expected.bytes())
            .fold(0u8, |acc, (a, b)| acc | (a ^ b))
            == 0
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn with(token: &str) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert(
            axum::http::header::AUTHORIZATION,
            format!("Bearer {token}").parse().unwrap(),
        );
        h
    }

    /// #10 finding 6: unauthenticated writes by default only on loopback.
    #[test]
    fn writes_without_a_token_only_on_loopback_by_default() {
        let loopback: IpAddr = "127.0.0.1".parse().unwrap();
        let loopback6: IpAddr = "::1".parse().unwrap();
        let any: IpAddr = "0.0.0.0".parse().unwrap();
        let lan: IpAddr = "10.1.2.3".parse().unwrap();
        assert!(unauthenticated_writes(None, loopback));
        assert!(unauthenticated_writes(None, loopback6));
        assert!(!unauthenticated_writes(None, any));
        assert!(!unauthenticated_writes(None, lan));
        assert!(unauthenticated_writes(Some(true), any));
        assert!(!unauthenticated_writes(Some(false), loopback));
        let none = HeaderMap::new();
        let closed = Auth::new(unauthenticated_writes(None, any));
        let e = closed.check(Scope::Write, &none).unwrap_err();
        assert_eq!(
            (e.status(), e.code()),
            (StatusCode::FORBIDDEN, "writes_disabled")
        );
        assert!(closed.check(Scope::Decide, &none).is_ok());
        assert!(closed.check(Scope::Admin, &none).is_ok());
        assert!(Auth::new(true).check(Scope::Write, &none).is_ok());
    }

    /// #10 one-token clients: one token with decide and write does both.
    #[test]
    fn scopes_decide_what_each_token_may_do() {
        let auth = Auth::new(false)
            .with_legacy(Some("adm"), Some("dec"))
            .with_token("both", [Scope::Decide, Scope::Write]);
        let none = HeaderMap::new();
        for (token, decide, write, admin) in [
            ("both", true, true, false),
            ("adm", false, true, true),
            ("dec", true, false, false),
            ("nope", false, false, false),
        ] {
            let h = with(token);
            assert_eq!(auth.check(Scope::Decide, &h).is_ok(), decide, "{token}");
            assert_eq!(auth.check(Scope::Write, &h).is_ok(), write, "{token}");
            assert_eq!(auth.check(Scope::Admin, &h).is_ok(), admin, "{token}");
        }
        assert_eq!(
            auth.check(Scope::Write, &none).unwrap_err().status(),
            StatusCode::UNAUTHORIZED
        );
    }

    #[test]
    fn legacy_tokens_keep_their_meaning() {
        let none = HeaderMap::new();
        // Admin token alone: decisions open, writes and admin need it.
        let admin_only = Auth::new(true).with_legacy(Some("a"), None);
        assert!(admin_only.check(Scope::Decide, &none).is_ok());
        assert!(admin_only.check(Scope::Write, &none).is_err());
        assert!(admin_only.check(Scope::Write, &with("a")).is_ok());
        // Decision token alone guards everything.
        let decision_only = Auth::new(true).with_legacy(None, Some("d"));
        for scope in [Scope::Decide, Scope::Write, Scope::Admin] {
            assert!(decision_only.check(scope, &none).is_err());
            assert!(decision_only.check(scope, &with("d")).is_ok());
        }
    }
}
