//! tenet's front ends: the HTTP server speaking OPA's REST API per tenant
//! ([`app`], [`serve`]). It parses requests, asks the [`tenet::Host`] for
//! decisions and maps every error to OPA's error shape in one place
//! ([`ApiError`]); it holds no policy logic.
//!
//! ## The server stack ([`serve`], [`Server`])
//!
//! `axum::serve` can set neither a header read timeout nor TLS, so the
//! accept loop is here, on hyper-util's connection builders:
//!
//! - **Protocols.** The plain port serves HTTP/1.1 and HTTP/2 with prior
//!   knowledge (h2c): the first bytes are peeked (not consumed) and the
//!   HTTP/2 preface picks HTTP/2. With TLS the ALPN result picks (`h2`,
//!   else HTTP/1.1). No `Upgrade: h2c`.
//! - **Slow clients.** `read_header_timeout` bounds the TLS handshake, the
//!   protocol sniffing and (hyper's own timer) each HTTP/1.1 request head,
//!   including the wait for the next request on a keep-alive connection;
//!   when it passes the connection is closed. The sniff reads (and then
//!   replays) the first bytes, waiting for readability, so a stalled
//!   client costs no CPU (`sniff`). An HTTP/2 connection is PINGed every
//!   `http2_keep_alive_interval` and closed when a PING is not answered
//!   within `http2_keep_alive_timeout`. One that opens no request within
//!   `read_header_timeout` is closed, and one with no open request for
//!   `http2_idle_timeout` is shut down with GOAWAY (`idle`: hyper has no
//!   such timeout). `read_body_timeout` is a
//!   deadline for the whole body counted from the head, so trickling bytes
//!   does not extend it: the answer is then 408 `request_timeout` (OPA's
//!   error shape) and an HTTP/1.1 connection is closed.
//! - **Drain.** When `shutdown` resolves, the connections the kernel has
//!   already completed (the accept backlog) are accepted, then the
//!   listener is closed: closing it with connections still queued would
//!   reset them. Every connection is asked to finish: HTTP/1.1 after the
//!   response in progress (a connection that has not sent its request yet
//!   gets one request, answered with `Connection: close`, or is closed at
//!   once if it has sent nothing), HTTP/2 with GOAWAY. At `drain_timeout`
//!   the rest are aborted and [`Server::run`] returns, whatever is still
//!   running: an evaluation in progress keeps its pool thread, which the
//!   process does not wait for (the caller exits).
//! - Every request carries `ConnectInfo<SocketAddr>` for handlers.
//!
//! - **gRPC on the same port** ([`Server::with_grpc`]): an HTTP/2 request
//!   whose `content-type` starts with `application/grpc` goes to the gRPC
//!   routes (tenet-grpc's), everything else to the REST router. gRPC
//!   requests get no body deadline (a `DecideStream` may stay open) and no
//!   `ConnectInfo`; the REST port's HTTP/2 settings, idle timeout and TLS
//!   apply to them.
//!
//! The stack does not route, authenticate or limit body sizes: that is the
//! router's (`api`). It has no connection limit of its own.

mod api;
pub mod auth;
pub mod authzen;
mod batch;
pub mod config;
pub mod decision_log;
mod error;
mod front;
mod grpc_metrics;
mod grpc_status;
mod idle;
mod input;
mod label_cap;
mod metrics;
mod page;
mod push;
mod sniff;
pub mod sources;
pub mod status;
mod tenant_metrics;
mod tls;
mod traces;
mod workers;

pub use api::{app, AppState};
pub use axum::http::HeaderName;
pub use error::ApiError;
pub use grpc_metrics::GrpcMetrics;
pub use metrics::CONTENT_TYPE as METRICS_CONTENT_TYPE;
pub use tls::{TlsConfig, TlsError};
pub use traces::instrument_grpc;

use axum::extract::ConnectInfo;
use axum::http::{header, HeaderValue, StatusCode, Version};
use axum::response::IntoResponse;
use hyper::body::{Body as HttpBody, Bytes, Frame, Incoming, SizeHint};
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use serde::Deserialize;
use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tokio::task::JoinSet;
use tower::ServiceExt;

/// How [`serve`] serves: timeouts, drain and TLS. Deserializable, so a
/// config file section can carry it: every field may be left out (the
/// defaults below) and durations are written as seconds (`10`, `0.5`) or
/// as humantime strings (`"10s"`, `"500ms"`, `"1m"`).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(default)]
pub struct ServeOptions {
    /// After the shutdown signal, how long in-flight requests may take to
    /// finish before their connections are closed. Default 10 s.
    #[serde(deserialize_with = "deserialize_duration")]
    pub drain_timeout: Duration,
    /// How long a client has to send a request's head (request line and
    /// headers). It also bounds the TLS handshake, the first bytes of a new
    /// connection, how long an idle HTTP/1.1 keep-alive connection
    /// waits for its next request, and how long a new HTTP/2 connection
    /// may go without its first request. Zero disables it. Default 10 s.
    #[serde(deserialize_with = "deserialize_duration")]
    pub read_header_timeout: Duration,
    /// How long a client has to send a request's whole body, counted from
    /// the moment its head was read; past it the answer is 408
    /// `request_timeout` and an HTTP/1.1 connection is closed. Zero
    /// disables it. Default 30 s.
    #[serde(deserialize_with = "deserialize_duration")]
    pub read_body_timeout: Duration,
    /// How often an HTTP/2 connection is PINGed (when nothing else
    /// arrived meanwhile). Zero disables the PINGs. Default 10 s.
    #[serde(deserialize_with = "deserialize_duration")]
    pub http2_keep_alive_interval: Duration,
    /// How long a PING may go unanswered before the HTTP/2 connection is
    /// closed. Default 10 s.
    #[serde(deserialize_with = "deserialize_duration")]
    pub http2_keep_alive_timeout: Duration,
    /// How long an HTTP/2 connection may have no open request before it is
    /// shut down with GOAWAY; answering PINGs does not keep it open. Zero
    /// disables it. Default 60 s.
    #[serde(deserialize_with = "deserialize_duration")]
    pub http2_idle_timeout: Duration,
    /// Serve HTTPS with this certificate and key; plain HTTP when `None`
    /// (the default).
    pub tls: Option<TlsConfig>,
}

impl Default for ServeOptions {
    fn default() -> Self {
        Self {
            drain_timeout: Duration::from_secs(10),
            read_header_timeout: Duration::from_secs(10),
            read_body_timeout: Duration::from_secs(30),
            http2_keep_alive_interval: Duration::from_secs(10),
            http2_keep_alive_timeout: Duration::from_secs(10),
            http2_idle_timeout: Duration::from_secs(60),
            tls: None,
        }
    }
}

/// A duration as seconds (integer or fractional) or a humantime string.
pub(crate) fn deserialize_duration<'de, D>(deserializer: D) -> Result<Duration, D::Error>
where
    D: serde::Deserializer<'de>,
{
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Raw {
        Secs(u64),
        Fraction(f64),
        Text(String),
    }
    use serde::de::Error;
    match Raw::deserialize(deserializer)? {
        Raw::Secs(s) => Ok(Duration::from_secs(s)),
        Raw::Fraction(f) => Duration::try_from_secs_f64(f).map_err(D::Error::custom),
        Raw::Text(t) => humantime::parse_duration(&t)
            .map_err(|e| D::Error::custom(format!("invalid duration {t:?}: {e}"))),
    }
}

/// Why the server could not start.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ServeError {
    /// The TLS certificate or key could not be used.
    #[error(transparent)]
    Tls(#[from] TlsError),
}

/// A listener made ready to serve: TLS loaded and checked. Built before the
/// server announces itself, so a bad certificate fails the start.
pub struct Server {
    listener: TcpListener,
    acceptor: Option<tokio_rustls::TlsAcceptor>,
    options: ServeOptions,
    grpc: Option<tenet_grpc::Grpc>,
}

impl std::fmt::Debug for Server {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Server")
            .field("listener", &self.listener)
            .field("tls", &self.acceptor.is_some())
            .field("options", &self.options)
            .field("grpc", &self.grpc.is_some())
            .finish()
    }
}

impl Server {
    /// Reads the TLS files, if any; errors name the file.
    pub fn new(listener: TcpListener, options: ServeOptions) -> Result<Self, ServeError> {
        let acceptor = options.tls.as_ref().map(TlsConfig::acceptor).transpose()?;
        Ok(Self {
            listener,
            acceptor,
            options,
            grpc: None,
        })
    }

    /// Also serves `grpc`'s routes on this port: HTTP/2 requests with a
    /// `content-type` of `application/grpc*` go to them. Their health
    /// turns `NOT_SERVING` when the drain starts.
    pub fn with_grpc(mut self, grpc: tenet_grpc::Grpc) -> Self {
        self.grpc = Some(grpc);
        self
    }

    /// The address the listener is bound to.
    pub fn local_addr(&self) -> std::io::Result<SocketAddr> {
        self.listener.local_addr()
    }

    /// `https` with TLS, else `http`.
    pub fn scheme(&self) -> &'static str {
        if self.acceptor.is_some() {
            "https"
        } else {
            "http"
        }
    }

    /// Serves `app` until `shutdown` resolves, then stops accepting (after
    /// taking the connections already waiting in the accept backlog), lets
    /// in-flight requests finish for at most the drain timeout, and closes
    /// what is left. Returns by the drain deadline whatever is running.
    pub async fn run(
        self,
        app: axum::Router,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> Result<(), ServeError> {
        let Self {
            listener,
            acceptor,
            options,
            grpc,
        } = self;
        let routes = grpc.as_ref().map(tenet_grpc::Grpc::routes);
        let shared = Arc::new(Shared::new(app, routes, acceptor, &options));
        let (stop_tx, stop_rx) = watch::channel(false);
        let mut connections = JoinSet::new();
        tokio::pin!(shutdown);
        loop {
            tokio::select! {
                // Shutdown first, so it is polled (and armed) before the
                // first connection is taken.
                biased;
                () = &mut shutdown => break,
                Some(_) = connections.join_next(), if !connections.is_empty() => {}
                accepted = listener.accept() => match accepted {
                    Ok((stream, peer)) => {
                        connections.spawn(connection(shared.clone(), stream, peer, stop_rx.clone()));
                    }
                    Err(e) if is_connection_error(&e) => {}
                    Err(e) => {
                        // Out of file descriptors and the like: back off
                        // instead of spinning.
                        tracing::warn!(error = %e, "accept failed");
                        tokio::time::sleep(Duration::from_millis(500)).await;
                    }
                },
            }
        }
        let drain = options.drain_timeout;
        let deadline = tokio::time::Instant::now() + drain;
        stop_tx.send_replace(true);
        if let Some(grpc) = &grpc {
            grpc.set_not_serving().await;
        }
        // Clients whose handshake the kernel completed before the signal
        // have most likely sent their request already; closing the listener
        // with them still queued would reset them. Take them (they are
        // served one request each, see `connection`), then close.
        let mut backlog = 0usize;
        while backlog < MAX_BACKLOG_AT_SHUTDOWN {
            match accept_now(&listener) {
                Some(Ok((stream, peer))) => {
                    backlog += 1;
                    connections.spawn(connection(shared.clone(), stream, peer, stop_rx.clone()));
                }
                Some(Err(e)) if is_connection_error(&e) => {}
                Some(Err(_)) | None => break,
            }
        }
        drop(listener);
        if backlog > 0 {
            tracing::info!(
                backlog,
                "accepted the waiting connections before closing the listener"
            );
        }
        let drained = tokio::time::timeout_at(deadline, async {
            while connections.join_next().await.is_some() {}
        })
        .await;
        if drained.is_err() {
            tracing::warn!(
                ?drain,
                open = connections.len(),
                "drain deadline passed; closing remaining connections"
            );
            connections.shutdown().await;
        }
        Ok(())
    }
}

/// Serves `app` on `listener` with `options` until `shutdown` resolves,
/// then drains (see [`Server::run`]). Fails before serving when TLS is
/// configured and its files cannot be used.
pub async fn serve(
    listener: TcpListener,
    app: axum::Router,
    options: ServeOptions,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), ServeError> {
    Server::new(listener, options)?.run(app, shutdown).await
}

/// At most this many connections are taken from the accept backlog at
/// shutdown (Linux's default `somaxconn`), so a flood of new connections
/// cannot keep the drain accepting.
const MAX_BACKLOG_AT_SHUTDOWN: usize = 4096;

/// A connection the kernel has ready now, without waiting: `None` when the
/// backlog is empty.
fn accept_now(listener: &TcpListener) -> Option<std::io::Result<(TcpStream, SocketAddr)>> {
    let mut cx = Context::from_waker(std::task::Waker::noop());
    match listener.poll_accept(&mut cx) {
        Poll::Ready(r) => Some(r),
        Poll::Pending => None,
    }
}

fn is_connection_error(e: &std::io::Error) -> bool {
    use std::io::ErrorKind::*;
    matches!(
        e.kind(),
        ConnectionRefused | ConnectionAborted | ConnectionReset
    )
}

/// What every connection task reads.
struct Shared {
    app: axum::Router,
    /// gRPC routes served on this port, if any.
    grpc: Option<tenet_grpc::GrpcRoutes>,
    acceptor: Option<tokio_rustls::TlsAcceptor>,
    http1: auto::Builder<TokioExecutor>,
    /// HTTP/1.1 without keep-alive: one request, answered with
    /// `Connection: close`, for connections that start while draining.
    http1_once: auto::Builder<TokioExecutor>,
    http2: auto::Builder<TokioExecutor>,
    header_timeout: Option<Duration>,
    body_timeout: Option<Duration>,
    http2_idle_timeout: Option<Duration>,
    http2_keep_alive_timeout: Duration,
}

fn nonzero(d: Duration) -> Option<Duration> {
    (!d.is_zero()).then_some(d)
}

impl Shared {
    fn new(
        app: axum::Router,
        grpc: Option<tenet_grpc::GrpcRoutes>,
        acceptor: Option<tokio_rustls::TlsAcceptor>,
        options: &ServeOptions,
    ) -> Self {
        let header_timeout = nonzero(options.read_header_timeout);
        let mut builder = auto::Builder::new(TokioExecutor::new());
        builder
            .http1()
            .timer(TokioTimer::new())
            .header_read_timeout(header_timeout);
        let mut http2 = builder.http2();
        http2.timer(TokioTimer::new());
        // HTTP/2 has no request-head timeout to lean on: a peer that stops
        // answering PINGs is dropped, and one that answers them but sends
        // no request is shut down by the idle timeout (`drive`).
        if let Some(interval) = nonzero(options.http2_keep_alive_interval) {
            http2
                .keep_alive_interval(interval)
                .keep_alive_timeout(options.http2_keep_alive_timeout);
        }
        let mut http1_once = builder.clone().http1_only();
        http1_once.http1().keep_alive(false);
        Self {
            app,
            grpc,
            acceptor,
            http1: builder.clone().http1_only(),
            http1_once,
            http2: builder.http2_only(),
            header_timeout,
            body_timeout: nonzero(options.read_body_timeout),
            http2_idle_timeout: nonzero(options.http2_idle_timeout),
            http2_keep_alive_timeout: options.http2_keep_alive_timeout,
        }
    }
}

/// Resolves once the drain has started. (The watch guard `wait_for`
/// returns is not `Send`; it is dropped here, before any other await.)
async fn stopped(stop: &mut watch::Receiver<bool>) {
    let _ = stop.wait_for(|s| *s).await;
}

/// `f`, bounded by `limit` when there is one; `None` when it ran out.
async fn within<F: Future>(limit: Option<Duration>, f: F) -> Option<F::Output> {
    match limit {
        Some(limit) => tokio::time::timeout(limit, f).await.ok(),
        None => Some(f.await),
    }
}

/// One accepted connection: TLS handshake or protocol detection (both
/// within the header timeout), then HTTP/1.1 or HTTP/2 until the client
/// leaves or the server drains.
///
/// A drain that starts before the protocol is known closes a connection
/// that has sent nothing yet (a clean close: nothing unread, no reset) and
/// lets one that has started sending finish its request (`drive`); the
/// drain deadline bounds both.
async fn connection(
    shared: Arc<Shared>,
    mut stream: TcpStream,
    peer: SocketAddr,
    mut stop: watch::Receiver<bool>,
) {
    let _ = stream.set_nodelay(true);
    let limit = shared.header_timeout;
    match &shared.acceptor {
        None => {
            let mut first = Vec::new();
            let sniffed = within(limit, async {
                if !*stop.borrow() {
                    tokio::select! {
                        r = sniff::sniff_h2(&mut stream, &mut first) => return r,
                        () = stopped(&mut stop) => {}
                    }
                }
                // Draining: bytes the kernel already holds count as sent.
                if first.is_empty() {
                    let mut chunk = [0u8; sniff::H2_PREFACE.len()];
                    match stream.try_read(&mut chunk) {
                        Ok(0) => return Ok(sniff::Protocol::Closed),
                        Ok(n) => first.extend_from_slice(chunk.get(..n).unwrap_or_default()),
                        Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                            return Ok(sniff::Protocol::Closed)
                        }
                        Err(e) => return Err(e),
                    }
                }
                sniff::sniff_h2(&mut stream, &mut first).await
            })
            .await;
            match sniffed {
                Some(Ok(sniff::Protocol::Closed)) => {}
                Some(Ok(protocol)) => {
                    let io = sniff::Rewind::new(first, stream);
                    drive(&shared, io, protocol == sniff::Protocol::Http2, peer, stop).await;
                }
                Some(Err(e)) => tracing::debug!(%peer, error = %e, "reading a new connection"),
                None => tracing::debug!(%peer, "no request within the header read timeout"),
            }
        }
        Some(acceptor) => {
            // The handshake is not abandoned on shutdown: the client may
            // have its request ready behind it.
            match within(limit, acceptor.accept(stream)).await {
                Some(Ok(tls)) => {
                    let h2 = tls.get_ref().1.alpn_protocol() == Some(b"h2".as_slice());
                    drive(&shared, tls, h2, peer, stop).await;
                }
                Some(Err(e)) => tracing::debug!(%peer, error = %e, "TLS handshake failed"),
                None => tracing::debug!(%peer, "TLS handshake timed out"),
            }
        }
    }
}

/// Serves one connection. HTTP/2 connections are shut down (GOAWAY) after
/// the idle timeout. A connection that starts while the server drains is
/// served one request (HTTP/1.1 with `Connection: close`) or a GOAWAY
/// (HTTP/2); one already serving is asked to finish.
async fn drive<I>(
    shared: &Shared,
    io: I,
    h2: bool,
    peer: SocketAddr,
    mut stop: watch::Receiver<bool>,
) where
    I: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let app = shared.app.clone();
    // gRPC is HTTP/2 only.
    let grpc = shared.grpc.clone().filter(|_| h2);
    let body_timeout = shared.body_timeout;
    let activity = h2.then(|| Arc::new(idle::Activity::default()));
    let service = {
        let activity = activity.clone();
        hyper::service::service_fn(move |request| {
            let open = activity.as_ref().map(idle::Activity::start);
            handle(app.clone(), grpc.clone(), request, peer, body_timeout, open)
        })
    };
    let draining = *stop.borrow();
    let builder = match (h2, draining) {
        (true, _) => &shared.http2,
        (false, false) => &shared.http1,
        // Not asked to finish below: hyper would close the connection
        // before reading the request the client has already sent.
        (false, true) => &shared.http1_once,
    };
    let conn = builder.serve_connection(TokioIo::new(io), service);
    tokio::pin!(conn);
    if !draining || h2 {
        let idle = async {
            match &activity {
                Some(a) => {
                    a.idle(shared.header_timeout, shared.http2_idle_timeout)
                        .await
                }
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            done = conn.as_mut() => {
                if let Err(e) = done {
                    tracing::debug!(%peer, error = %e, "connection closed with an error");
                }
                return;
            }
            () = stopped(&mut stop) => conn.as_mut().graceful_shutdown(),
            idle = idle => {
                if idle == idle::Idle::Unused {
                    // Nothing was asked on it: close it as an HTTP/1.1
                    // connection without a request head is closed.
                    tracing::debug!(%peer, "no HTTP/2 request within the header read timeout");
                    return;
                }
                tracing::debug!(%peer, "HTTP/2 connection idle; sending GOAWAY");
                conn.as_mut().graceful_shutdown();
                // GOAWAY completes when the client answers its PING; one
                // that does not is dead by the keep-alive rule, and it has
                // no request open, so nothing is lost by dropping it.
                if within(Some(shared.http2_keep_alive_timeout), conn).await.is_none() {
                    tracing::debug!(%peer, "idle HTTP/2 connection did not acknowledge GOAWAY");
                }
                return;
            }
        }
    }
    if let Err(e) = conn.await {
        tracing::debug!(%peer, error = %e, "connection closed with an error while finishing");
    }
}

/// One request: the peer address as `ConnectInfo`, the body under its
/// deadline, and a 408 in place of the answer when the deadline passed.
async fn handle(
    app: axum::Router,
    grpc: Option<tenet_grpc::GrpcRoutes>,
    request: hyper::Request<Incoming>,
    peer: SocketAddr,
    body_timeout: Option<Duration>,
    open: Option<idle::Open>,
) -> Result<axum::response::Response, Infallible> {
    let response = match grpc.filter(|_| is_grpc(&request)) {
        Some(routes) => match routes.oneshot(request).await {
            Ok(response) => response.map(axum::body::Body::new),
            Err(never) => match never {},
        },
        None => answer(app, request, peer, body_timeout).await?,
    };
    // An HTTP/2 request stays open (not idle) until its body is sent.
    Ok(match open {
        Some(open) => response.map(|body| axum::body::Body::new(idle::OpenBody::new(body, open))),
        None => response,
    })
}

/// An HTTP/2 request for a gRPC service: `content-type: application/grpc`
/// (or `application/grpc+proto`, `…+json`, …).
fn is_grpc<B>(request: &hyper::Request<B>) -> bool {
    request.version() == Version::HTTP_2
        && request
            .headers()
            .get(header::CONTENT_TYPE)
            .is_some_and(|v| v.as_bytes().starts_with(b"application/grpc"))
}

/// [`handle`]'s answer, before the idle bookkeeping.
async fn answer(
    app: axum::Router,
    request: hyper::Request<Incoming>,
    peer: SocketAddr,
    body_timeout: Option<Duration>,
) -> Result<axum::response::Response, Infallible> {
    let http1 = request.version() < Version::HTTP_2;
    let timed_out = metrics::BodyTimedOut::default();
    let (mut parts, body) = request.into_parts();
    parts.extensions.insert(ConnectInfo(peer));
    parts.extensions.insert(timed_out.clone());
    let body = DeadlineBody {
        inner: body,
        limit: body_timeout,
        started: tokio::time::Instant::now(),
        sleep: None,
        timed_out: timed_out.clone(),
    };
    let response = app
        .oneshot(axum::http::Request::from_parts(parts, body))
        .await?;
    if !timed_out.get() {
        return Ok(response);
    }
    let limit = body_timeout.unwrap_or_default();
    let mut response = ApiError::new(
        StatusCode::REQUEST_TIMEOUT,
        "request_timeout",
        format!(
            "request body not received within {}",
            humantime::format_duration(limit)
        ),
    )
    .into_response();
    if http1 {
        // The rest of the body may still be on its way: do not read it as
        // the next request.
        response
            .headers_mut()
            .insert(header::CONNECTION, HeaderValue::from_static("close"));
    }
    Ok(response)
}

/// The body did not arrive in time.
#[derive(Debug, thiserror::Error)]
#[error("request body not received within {0:?}")]
struct BodyTimeout(Duration);

/// A request body that fails once `limit` has passed since the request
/// head was read, however the bytes trickle in. The timer is only armed
/// when a read has to wait.
struct DeadlineBody {
    inner: Incoming,
    limit: Option<Duration>,
    started: tokio::time::Instant,
    sleep: Option<Pin<Box<tokio::time::Sleep>>>,
    timed_out: metrics::BodyTimedOut,
}

impl HttpBody for DeadlineBody {
    type Data = Bytes;
    type Error = Box<dyn std::error::Error + Send + Sync>;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
        let this = self.get_mut();
        if let Poll::Ready(frame) = Pin::new(&mut this.inner).poll_frame(cx) {
            return Poll::Ready(frame.map(|r| r.map_err(Into::into)));
        }
        let Some(limit) = this.limit else {
            return Poll::Pending;
        };
        let started = this.started;
        let sleep = this
            .sleep
            .get_or_insert_with(|| Box::pin(tokio::time::sleep_until(started + limit)));
        if sleep.as_mut().poll(cx).is_ready() {
            this.timed_out.set();
            return Poll::Ready(Some(Err(BodyTimeout(limit).into())));
        }
        Poll::Pending
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

/// Resolves on SIGINT or SIGTERM. On Unix the handlers are installed when
/// this is called (inside a Tokio runtime), not when the future is first
/// polled, so a signal that arrives once the caller has it is never lost
/// to the default action: call it before announcing the server.
pub fn shutdown_signal() -> impl Future<Output = ()> + Send + 'static {
    #[cfg(unix)]
    let handlers = {
        use tokio::signal::unix::{signal, SignalKind};
        (
            signal(SignalKind::interrupt()).ok(),
            signal(SignalKind::terminate()).ok(),
        )
    };
    async move {
        #[cfg(unix)]
        {
            let (interrupt, terminate) = handlers;
            let wait = |s: Option<tokio::signal::unix::Signal>| async move {
                match s {
                    Some(mut s) => {
                        s.recv().await;
                    }
                    None => std::future::pending::<()>().await,
                }
            };
            tokio::select! {
                () = wait(interrupt) => {}
                () = wait(terminate) => {}
            }
        }
        #[cfg(not(unix))]
        {
            let _ = tokio::signal::ctrl_c().await;
        }
        tracing::info!("shutdown signal received; draining");
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod tests {
    use super::*;
    use serde_json::json;
    use std::path::PathBuf;

    #[test]
    fn serve_options_take_seconds_or_humantime_and_default_the_rest() {
        let o: ServeOptions = serde_json::from_value(json!({
            "read_header_timeout": 2,
            "read_body_timeout": "1m 30s",
            "drain_timeout": 0.5,
            "http2_idle_timeout": "90s",
            "http2_keep_alive_interval": 0,
            "tls": {"cert_file": "a.pem", "private_key_file": "b.pem"},
        }))
        .unwrap();
        assert_eq!(o.http2_idle_timeout, Duration::from_secs(90));
        assert!(o.http2_keep_alive_interval.is_zero());
        assert_eq!(o.http2_keep_alive_timeout, Duration::from_secs(10));
        assert_eq!(o.read_header_timeout, Duration::from_secs(2));
        assert_eq!(o.read_body_timeout, Duration::from_secs(90));
        assert_eq!(o.drain_timeout, Duration::from_millis(500));
        assert_eq!(o.tls.unwrap().private_key_file, PathBuf::from("b.pem"));

        let d: ServeOptions = serde_json::from_value(json!({})).unwrap();
        assert_eq!(d, ServeOptions::default());
        assert_eq!(d.read_header_timeout, Duration::from_secs(10));

        for bad in [
            json!({"read_body_timeout": "soon"}),
            json!({"drain_timeout": -1}),
            json!({"tls": {"cert_file": "a.pem"}}),
            json!({"tls": {"cert_file": "a", "private_key_file": "b", "key_file": "c"}}),
        ] {
            assert!(
                serde_json::from_value::<ServeOptions>(bad.clone()).is_err(),
                "{bad}"
            );
        }
    }
}
