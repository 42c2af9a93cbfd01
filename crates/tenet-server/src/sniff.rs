//! Protocol detection on the plain port: is a new connection HTTP/2 with
//! prior knowledge (h2c) or HTTP/1.x? The first bytes are *read* (not
//! peeked) into a small buffer and handed back in front of the stream
//! ([`Rewind`]), so HTTP/1.1 and HTTP/2 see the connection from its first
//! byte.
//!
//! Why read and not peek: `peek` returns at once while any byte is
//! buffered, so waiting for the rest of a partial preface meant polling
//! (a 5 ms sleep loop: 4,000 connections stalled mid-preface cost a whole
//! core, #10 finding 9). A read consumes what it returns, so the next read
//! waits for the socket to become readable again and a stalled client
//! costs nothing until it sends.
//!
//! This module knows nothing of HTTP beyond the preface and no timeouts:
//! the caller bounds [`sniff_h2`] by the header read timeout.

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, ReadBuf};

/// HTTP/2's connection preface; a client speaking h2c with prior knowledge
/// starts with it.
pub(crate) const H2_PREFACE: &[u8; 24] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";

/// What the first bytes said.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Protocol {
    /// The whole HTTP/2 preface.
    Http2,
    /// Anything else: HTTP/1.x (or garbage, which HTTP/1.1 answers).
    Http1,
    /// The client closed before the first bytes decided.
    Closed,
}

/// Reads from `io` into `buf` until the bytes decide the protocol: the
/// full preface, a byte that differs from it, or the end of the stream.
/// At most [`H2_PREFACE`]`.len()` bytes are read. Cancel-safe: bytes read
/// before the future is dropped stay in `buf`, and calling it again with
/// the same `buf` goes on where it stopped.
pub(crate) async fn sniff_h2<I>(io: &mut I, buf: &mut Vec<u8>) -> io::Result<Protocol>
where
    I: AsyncRead + Unpin,
{
    loop {
        if let Some(decided) = decide(buf) {
            return Ok(decided);
        }
        let mut chunk = [0u8; H2_PREFACE.len()];
        let want = H2_PREFACE.len() - buf.len();
        let n = io.read(&mut chunk[..want]).await?;
        if n == 0 {
            return Ok(Protocol::Closed);
        }
        buf.extend_from_slice(&chunk[..n]);
    }
}

/// The protocol `buf` (a prefix of the stream) already decides, if any.
fn decide(buf: &[u8]) -> Option<Protocol> {
    let n = buf.len().min(H2_PREFACE.len());
    if buf[..n] != H2_PREFACE[..n] {
        Some(Protocol::Http1)
    } else if n == H2_PREFACE.len() {
        Some(Protocol::Http2)
    } else {
        None
    }
}

/// A stream with bytes already read from it put back in front: reads
/// return `prefix` first, then the stream. Writes go straight through.
pub(crate) struct Rewind<I> {
    prefix: Vec<u8>,
    /// How much of `prefix` has been handed out.
    taken: usize,
    inner: I,
}

impl<I> Rewind<I> {
    pub(crate) fn new(prefix: Vec<u8>, inner: I) -> Self {
        Self {
            prefix,
            taken: 0,
            inner,
        }
    }
}

impl<I: AsyncRead + Unpin> AsyncRead for Rewind<I> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        out: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let rest = this.prefix.get(this.taken..).unwrap_or_default();
        if !rest.is_empty() {
            let n = rest.len().min(out.remaining());
            out.put_slice(rest.get(..n).unwrap_or_default());
            this.taken += n;
            if this.taken == this.prefix.len() {
                // Give the buffer back: connections live long.
                this.prefix = Vec::new();
                this.taken = 0;
            }
            return Poll::Ready(Ok(()));
        }
        Pin::new(&mut this.inner).poll_read(cx, out)
    }
}

impl<I: AsyncWrite + Unpin> AsyncWrite for Rewind<I> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        data: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().inner).poll_write(cx, data)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().inner).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_shutdown(cx)
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;
    use tokio::io::AsyncWriteExt;

    #[tokio::test]
    async fn the_preface_picks_http2_and_is_replayed() {
        let (mut client, mut server) = tokio::io::duplex(64);
        client.write_all(&H2_PREFACE[..10]).await.unwrap();
        let mut buf = Vec::new();
        // A partial preface does not decide: the read waits (and a dropped
        // sniff keeps what it read).
        let early = tokio::time::timeout(
            std::time::Duration::from_millis(20),
            sniff_h2(&mut server, &mut buf),
        )
        .await;
        assert!(early.is_err());
        assert_eq!(buf, &H2_PREFACE[..10]);
        client.write_all(&H2_PREFACE[10..]).await.unwrap();
        client.write_all(b"after").await.unwrap();
        assert_eq!(
            sniff_h2(&mut server, &mut buf).await.unwrap(),
            Protocol::Http2
        );
        let mut replayed = Rewind::new(buf, server);
        let mut all = vec![0u8; H2_PREFACE.len() + 5];
        replayed.read_exact(&mut all).await.unwrap();
        assert_eq!(&all[..24], H2_PREFACE);
        assert_eq!(&all[24..], b"after");
    }

    #[tokio::test]
    async fn anything_else_is_http1_and_a_close_is_closed() {
        let (mut client, mut server) = tokio::io::duplex(64);
        client.write_all(b"POST / HTTP/1.1\r\n").await.unwrap();
        let mut buf = Vec::new();
        assert_eq!(
            sniff_h2(&mut server, &mut buf).await.unwrap(),
            Protocol::Http1
        );
        assert!(!buf.is_empty() && b"POST / HTTP/1.1\r\n".starts_with(&buf));

        let (client, mut server) = tokio::io::duplex(64);
        drop(client);
        assert_eq!(
            sniff_h2(&mut server, &mut Vec::new()).await.unwrap(),
            Protocol::Closed
        );
    }
}
