//! The layers a request passes through before its handler: OPA's routing
//! rules ([`OpaRoutingLayer`]: no `HEAD`, a trailing slash redirected,
//! axum's plain-text rejections answered as OPA-shaped JSON) and the token
//! checks of the decision and admin routes ([`GuardLayer`]).
//!
//! They are tower layers rather than `axum::middleware::from_fn`, which
//! clones the route (an allocation) and boxes the middleware's future on
//! every request: on the decision path that was about 2 points of the
//! decisions ÷ no-op ratio of the HTTP bench (BENCHMARKS.md). A request
//! they let through costs no allocation here.
//!
//! This module reads no body except that of a rejection it rewrites, and
//! decides nothing about a request's content.

use crate::auth::Scope;
use crate::{ApiError, AppState};
use axum::extract::Request;
use axum::http::{Method, StatusCode};
use axum::response::{IntoResponse, Response};
use pin_project_lite::pin_project;
use std::convert::Infallible;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{ready, Context, Poll};

/// A response future that needs no generics: the rare, already-failed path.
type Boxed = Pin<Box<dyn Future<Output = Response> + Send>>;

pin_project! {
    /// What a layer here answers: at once, or the route's answer (then,
    /// for [`OpaRoutingLayer`], rewritten when it is a plain-text
    /// rejection).
    #[project = AnswerProj]
    pub(crate) enum Answer<F> {
        /// Answered by the layer (a refusal or a redirect).
        Now { response: Option<Response> },
        /// The route answers; `rewrap` says whether a plain-text rejection
        /// is rewritten.
        Route { #[pin] future: F, rewrap: bool },
        /// Rewriting a rejection (reads its body).
        Rewrap { future: Boxed },
    }
}

impl<F> Answer<F> {
    fn now(response: impl IntoResponse) -> Self {
        Answer::Now {
            response: Some(response.into_response()),
        }
    }
}

impl<F> Future for Answer<F>
where
    F: Future<Output = Result<Response, Infallible>>,
{
    type Output = Result<Response, Infallible>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        loop {
            match self.as_mut().project() {
                AnswerProj::Now { response } => {
                    // A second poll after completion gets an empty 500
                    // rather than a panic.
                    return Poll::Ready(Ok(response
                        .take()
                        .unwrap_or_else(|| StatusCode::INTERNAL_SERVER_ERROR.into_response())));
                }
                AnswerProj::Route { future, rewrap } => {
                    let Ok(response) = ready!(future.poll(cx));
                    if !*rewrap || !is_plain_rejection(&response) {
                        return Poll::Ready(Ok(response));
                    }
                    self.set(Answer::Rewrap {
                        future: Box::pin(plain_rejection_as_json(response)),
                    });
                }
                AnswerProj::Rewrap { future } => {
                    return Poll::Ready(Ok(ready!(future.as_mut().poll(cx))));
                }
            }
        }
    }
}

/// OPA's routing rules, around every route and the fallback.
///
/// - `HEAD` is 405 (OPA's router has no HEAD routes; axum would answer it
///   like GET).
/// - A path ending in `/` is redirected to the same path without it (query
///   kept); `/` itself, and `/tenants/{tenant}/` (the tenant's `/`), are
///   served. GET (and DELETE, which has no body) get OPA's 301; POST, PUT
///   and PATCH get a 308, which keeps the method and the body: fetch-based
///   clients follow a 301 as a GET without the body, so a policy would run
///   without its input and a deny-shaped rule would fail open (OPA issue
///   2137).
/// - axum's own extractor rejections (a path segment that is not UTF-8, a
///   malformed query string) answer in plain text; OPA always answers
///   JSON, so they are rewritten as `invalid_parameter` (or the status they
///   had).
#[derive(Debug, Clone, Copy)]
pub(crate) struct OpaRoutingLayer;

impl<S> tower::Layer<S> for OpaRoutingLayer {
    type Service = OpaRouting<S>;

    fn layer(&self, inner: S) -> Self::Service {
        OpaRouting(inner)
    }
}

/// The service [`OpaRoutingLayer`] wraps a route in.
#[derive(Debug, Clone)]
pub(crate) struct OpaRouting<S>(S);

impl<S> tower::Service<Request> for OpaRouting<S>
where
    S: tower::Service<Request, Response = Response, Error = Infallible>,
{
    type Response = Response;
    type Error = Infallible;
    type Future = Answer<S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        self.0.poll_ready(cx)
    }

    fn call(&mut self, request: Request) -> Self::Future {
        if request.method() == Method::HEAD {
            return Answer::now(ApiError::method_not_allowed());
        }
        if let Some(redirect) = trailing_slash_redirect(&request) {
            return Answer::now(redirect);
        }
        Answer::Route {
            future: self.0.call(request),
            rewrap: true,
        }
    }
}

/// The redirect for a path ending in `/` (see [`OpaRoutingLayer`]).
fn trailing_slash_redirect(request: &Request) -> Option<Response> {
    let path = request.uri().path();
    // `/tenants/{tenant}/`: one non-empty segment, then the slash. (Found
    // by the router property test: `/tenants/` alone underflowed here.)
    let tenant_root = path
        .strip_prefix("/tenants/")
        .and_then(|rest| rest.strip_suffix('/'))
        .is_some_and(|tenant| !tenant.is_empty() && !tenant.contains('/'));
    if path.len() <= 1 || !path.ends_with('/') || tenant_root {
        return None;
    }
    let mut target = path.trim_end_matches('/').to_string();
    if target.is_empty() {
        target.push('/');
    }
    if let Some(query) = request.uri().query() {
        target.push('?');
        target.push_str(query);
    }
    let status = if matches!(*request.method(), Method::GET | Method::DELETE) {
        StatusCode::MOVED_PERMANENTLY
    } else {
        StatusCode::PERMANENT_REDIRECT
    };
    Some((status, [(axum::http::header::LOCATION, target)]).into_response())
}

/// True for a client error in plain text (or without a content type): an
/// axum rejection, which OPA would have answered in JSON.
fn is_plain_rejection(response: &Response) -> bool {
    let plain = response
        .headers()
        .get(axum::http::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_none_or(|v| v.starts_with("text/plain"));
    plain && response.status().is_client_error()
}

/// A plain-text rejection as an OPA-shaped JSON error.
async fn plain_rejection_as_json(response: Response) -> Response {
    let status = response.status();
    // axum's method router answers 405 with an empty body; keep its `Allow`.
    if status == StatusCode::METHOD_NOT_ALLOWED {
        let allow = response.headers().get(axum::http::header::ALLOW).cloned();
        let mut out = ApiError::method_not_allowed().into_response();
        if let Some(allow) = allow {
            out.headers_mut().insert(axum::http::header::ALLOW, allow);
        }
        return out;
    }
    let text = axum::body::to_bytes(response.into_body(), 64 * 1024)
        .await
        .map(|b| String::from_utf8_lossy(&b).into_owned())
        .unwrap_or_default();
    let code = if status == StatusCode::BAD_REQUEST {
        "invalid_parameter"
    } else {
        "bad_request"
    };
    ApiError::new(status, code, text.trim().to_string()).into_response()
}

/// Which token a group of routes needs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Guarded {
    /// Decisions and reads need the `decide` scope; writes (policy and data
    /// pushes change what the tenant decides) the `write` scope.
    Decisions,
    /// The admin API: the `admin` scope. Pinning, unpinning and reloading
    /// change what the server holds: while no token is configured they
    /// follow the write rule (by default only on a loopback address), as
    /// policy and data writes do, so that nobody who can reach the server
    /// can pin a tenant without a bundle and hold `/health/ready` at 500.
    Admin,
}

/// The token check of a group of routes (auth.rs); a refusal is OPA's 401
/// `unauthorized` or 403 `writes_disabled`.
#[derive(Debug, Clone)]
pub(crate) struct GuardLayer {
    state: Arc<AppState>,
    routes: Guarded,
}

impl GuardLayer {
    pub(crate) fn new(state: Arc<AppState>, routes: Guarded) -> Self {
        GuardLayer { state, routes }
    }
}

impl<S> tower::Layer<S> for GuardLayer {
    type Service = Guard<S>;

    fn layer(&self, inner: S) -> Self::Service {
        Guard {
            inner,
            layer: self.clone(),
        }
    }
}

/// The service [`GuardLayer`] wraps a route in.
#[derive(Debug, Clone)]
pub(crate) struct Guard<S> {
    inner: S,
    layer: GuardLayer,
}

impl<S> Guard<S> {
    fn check(&self, request: &Request) -> Result<(), ApiError> {
        let auth = &self.layer.state.auth;
        let method = request.method();
        let headers = request.headers();
        match self.layer.routes {
            Guarded::Decisions => {
                let writes = matches!(*method, Method::PUT | Method::PATCH | Method::DELETE);
                auth.check(if writes { Scope::Write } else { Scope::Decide }, headers)
            }
            Guarded::Admin => {
                let changes = !matches!(*method, Method::GET | Method::HEAD);
                auth.check(Scope::Admin, headers).and_then(|()| {
                    if changes && !auth.any_token() {
                        auth.check(Scope::Write, headers)
                    } else {
                        Ok(())
                    }
                })
            }
        }
    }
}

impl<S> tower::Service<Request> for Guard<S>
where
    S: tower::Service<Request, Response = Response, Error = Infallible>,
{
    type Response = Response;
    type Error = Infallible;
    type Future = Answer<S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: Request) -> Self::Future {
        match self.check(&request) {
            Ok(()) => Answer::Route {
                future: self.inner.call(request),
                rewrap: false,
            },
            Err(refused) => Answer::now(refused),
        }
    }
}
