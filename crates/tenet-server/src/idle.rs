//! The idle timeout of an HTTP/2 connection: how many of its requests are
//! open, and a future that resolves once none has been open for a while.
//!
//! hyper has no idle timeout for HTTP/2 (its keep-alive PINGs only find
//! peers that stopped answering; a peer that answers PINGs and sends
//! nothing else kept its connection forever, #10 finding 9), so the
//! connection task races hyper's connection future against
//! [`Activity::idle`] and closes the connection when it wins: at once when
//! no request ever came (the header read timeout, as for HTTP/1.1), with
//! GOAWAY after the idle timeout otherwise. A request counts as open from
//! the moment the service is called until its response body is dropped
//! (sent, or the stream reset), so a slow request or a long response never
//! counts as idle.
//!
//! This module knows nothing of hyper or of HTTP: it counts guards.

use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;
use tokio::sync::Notify;

/// The open requests of one connection.
#[derive(Debug, Default)]
pub(crate) struct Activity {
    open: AtomicUsize,
    /// A request has started on this connection.
    used: AtomicBool,
    changed: Notify,
}

/// Why [`Activity::idle`] resolved.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Idle {
    /// No request came within the first limit.
    Unused,
    /// The connection served requests, and then none for the idle limit.
    AfterUse,
}

/// One open request; dropping it closes it.
#[derive(Debug)]
pub(crate) struct Open(Arc<Activity>);

impl Drop for Open {
    fn drop(&mut self) {
        self.0.open.fetch_sub(1, Ordering::SeqCst);
        self.0.changed.notify_waiters();
    }
}

impl Activity {
    /// A request starts; it is open until the returned guard drops.
    pub(crate) fn start(self: &Arc<Self>) -> Open {
        self.open.fetch_add(1, Ordering::SeqCst);
        self.used.store(true, Ordering::SeqCst);
        self.changed.notify_waiters();
        Open(self.clone())
    }

    /// Resolves once no request has been open for `then` (or, before the
    /// first request, for `first`); a limit of `None` never passes. Every
    /// request that starts or ends restarts the wait.
    pub(crate) async fn idle(&self, first: Option<Duration>, then: Option<Duration>) -> Idle {
        loop {
            // Registered before the state is read, so a change between the
            // read and the wait is not missed.
            let changed = self.changed.notified();
            tokio::pin!(changed);
            changed.as_mut().enable();
            let used = self.used.load(Ordering::SeqCst);
            let limit = if used { then } else { first };
            match limit {
                Some(limit) if self.open.load(Ordering::SeqCst) == 0 => {
                    tokio::select! {
                        () = tokio::time::sleep(limit) => {
                            return if used { Idle::AfterUse } else { Idle::Unused };
                        }
                        () = changed => {}
                    }
                }
                _ => changed.await,
            }
        }
    }
}

/// A response body that holds its request open until it is dropped.
pub(crate) struct OpenBody {
    inner: axum::body::Body,
    _open: Open,
}

impl OpenBody {
    pub(crate) fn new(inner: axum::body::Body, open: Open) -> Self {
        Self { inner, _open: open }
    }
}

impl hyper::body::Body for OpenBody {
    type Data = hyper::body::Bytes;
    type Error = axum::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<hyper::body::Frame<Self::Data>, Self::Error>>> {
        Pin::new(&mut self.get_mut().inner).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> hyper::body::SizeHint {
        self.inner.size_hint()
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn idle_only_after_the_last_request_ended() {
        let activity = Arc::new(Activity::default());
        let (first, limit) = (Duration::from_secs(3), Duration::from_secs(10));
        // No request yet: the first limit.
        let started = tokio::time::Instant::now();
        assert_eq!(activity.idle(Some(first), Some(limit)).await, Idle::Unused);
        assert_eq!(started.elapsed(), first);

        // An open request keeps it busy however long it takes.
        let open = activity.start();
        let waiting = {
            let activity = activity.clone();
            tokio::spawn(async move { activity.idle(Some(first), Some(limit)).await })
        };
        tokio::time::sleep(limit * 5).await;
        assert!(!waiting.is_finished());
        let ended = tokio::time::Instant::now();
        drop(open);
        assert_eq!(waiting.await.unwrap(), Idle::AfterUse);
        assert_eq!(ended.elapsed(), limit);
    }

    #[tokio::test(start_paused = true)]
    async fn a_request_restarts_the_wait() {
        let activity = Arc::new(Activity::default());
        let limit = Duration::from_secs(10);
        let started = tokio::time::Instant::now();
        let waiting = {
            let activity = activity.clone();
            tokio::spawn(async move { activity.idle(None, Some(limit)).await })
        };
        tokio::time::sleep(Duration::from_secs(6)).await;
        drop(activity.start());
        assert_eq!(waiting.await.unwrap(), Idle::AfterUse);
        assert_eq!(started.elapsed(), Duration::from_secs(16));
    }

    #[tokio::test(start_paused = true)]
    async fn no_limit_never_passes() {
        let activity = Activity::default();
        let waited = tokio::time::timeout(Duration::from_secs(3600), activity.idle(None, None));
        assert!(waited.await.is_err());
    }
}
