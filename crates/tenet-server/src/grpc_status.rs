//! A gRPC call's status as it leaves tenet, for the layers that observe
//! calls (grpc_metrics.rs, traces.rs): from the response head for a
//! trailers-only answer (every error tonic sends before a message), else
//! from the trailers at the end of the body; a body that ends without a
//! status is `UNKNOWN`, and one dropped before its trailers (the client
//! went away) is `CANCELLED`. It observes; it never changes a response.

use axum::body::{Body, Bytes, HttpBody};
use axum::response::Response;
use std::pin::Pin;
use std::task::{Context, Poll};

/// `response`, with `seen` called once with its call's status code.
pub(crate) fn on_status(response: Response, seen: impl FnOnce(i32) + Send + 'static) -> Response {
    if let Some(code) = status_of(response.headers()) {
        seen(code);
        return response;
    }
    response.map(|body| {
        Body::new(Observed {
            inner: body,
            seen: Some(Box::new(seen)),
        })
    })
}

/// The `grpc-status` of a header map, if it has one.
fn status_of(headers: &axum::http::HeaderMap) -> Option<i32> {
    headers
        .get("grpc-status")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse().ok())
}

/// A response body that reports its call's status at its trailers (or
/// when it is dropped without them).
struct Observed {
    inner: Body,
    /// Taken when the status is reported.
    seen: Option<Box<dyn FnOnce(i32) + Send>>,
}

impl Observed {
    fn finish(&mut self, code: i32) {
        if let Some(seen) = self.seen.take() {
            seen(code);
        }
    }
}

impl HttpBody for Observed {
    type Data = Bytes;
    type Error = axum::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<http_body::Frame<Bytes>, axum::Error>>> {
        let polled = Pin::new(&mut self.inner).poll_frame(cx);
        match &polled {
            Poll::Ready(Some(Ok(frame))) => {
                if let Some(code) = frame.trailers_ref().and_then(status_of) {
                    self.finish(code);
                }
            }
            // A body that ends or fails without a status: UNKNOWN.
            Poll::Ready(None) | Poll::Ready(Some(Err(_))) => self.finish(2),
            Poll::Pending => {}
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> http_body::SizeHint {
        self.inner.size_hint()
    }
}

impl Drop for Observed {
    fn drop(&mut self) {
        // Dropped before its status was sent: the client went away.
        self.finish(1);
    }
}
