//! The connections the server accepts: at most `max_connections` at once,
//! each given `handshake_timeout` to start speaking HTTP/2, and accept
//! errors (out of descriptors, say) met with a backoff, never a busy loop.
//!
//! Without these, anyone able to connect, token or not, could hold every
//! descriptor with bare `connect()`s that never send a byte, and the
//! server's thread spun on the failing accept.

use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tonic::transport::server::Connected;

/// The HTTP/2 client preface is 24 bytes: once they have come, the peer
/// speaks HTTP/2, and keepalives and the protocol's own limits take over.
const PREFACE_BYTES: usize = 24;
/// Longest pause between accept attempts after a failure that persists.
const MAX_BACKOFF: Duration = Duration::from_secs(1);

/// How many connections, and how long a new one may stay silent.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Limits {
    pub max_connections: usize,
    pub handshake_timeout: Duration,
}

/// An accepted connection: holds its slot until dropped, and fails its
/// reads once its handshake time is up without the preface.
pub(crate) struct Conn<IO> {
    io: IO,
    _slot: OwnedSemaphorePermit,
    deadline: Option<Pin<Box<tokio::time::Sleep>>>,
    seen: usize,
}

impl<IO> Conn<IO> {
    fn new(io: IO, slot: OwnedSemaphorePermit, timeout: Duration) -> Self {
        Conn {
            io,
            _slot: slot,
            deadline: Some(Box::pin(tokio::time::sleep(timeout))),
            seen: 0,
        }
    }
}

impl<IO: AsyncRead + Unpin> AsyncRead for Conn<IO> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        // Polled here, so its timer wakes this connection's task in time.
        if let Some(deadline) = self.deadline.as_mut()
            && deadline.as_mut().poll(cx).is_ready()
        {
            return Poll::Ready(Err(io::Error::new(
                io::ErrorKind::TimedOut,
                "no HTTP/2 preface within the handshake time",
            )));
        }
        let before = buf.filled().len();
        let polled = Pin::new(&mut self.io).poll_read(cx, buf);
        if let Poll::Ready(Ok(())) = polled {
            self.seen += buf.filled().len() - before;
            if self.seen >= PREFACE_BYTES {
                self.deadline = None;
            }
        }
        polled
    }
}

impl<IO: AsyncWrite + Unpin> AsyncWrite for Conn<IO> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.io).poll_write(cx, buf)
    }
    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.io).poll_flush(cx)
    }
    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.io).poll_shutdown(cx)
    }
    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.io).poll_write_vectored(cx, bufs)
    }
    fn is_write_vectored(&self) -> bool {
        self.io.is_write_vectored()
    }
}

impl<IO: Connected> Connected for Conn<IO> {
    type ConnectInfo = IO::ConnectInfo;
    fn connect_info(&self) -> Self::ConnectInfo {
        self.io.connect_info()
    }
}

/// Errors that concern one connection, not the listener: accept again.
fn concerns_one_connection(e: &io::Error) -> bool {
    use io::ErrorKind::*;
    matches!(
        e.kind(),
        ConnectionAborted | ConnectionReset | BrokenPipe | Interrupted | WouldBlock | TimedOut
    )
}

/// The accepted connections of `accept` (called again and again) as a
/// stream for tonic's `serve_with_incoming`. It never yields an error: a
/// connection over the cap is closed at once (its client fails fast rather
/// than hang in the backlog), and a failing accept is retried with a
/// backoff from 5 ms to 1 s.
pub(crate) fn incoming<IO, F, Fut>(
    accept: F,
    limits: Limits,
) -> impl futures::Stream<Item = Result<Conn<IO>, io::Error>>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = io::Result<IO>>,
{
    let slots = Arc::new(Semaphore::new(limits.max_connections.max(1)));
    futures::stream::unfold(
        (accept, slots, Duration::ZERO),
        move |(mut accept, slots, mut backoff)| async move {
            loop {
                match accept().await {
                    Ok(io) => {
                        backoff = Duration::ZERO;
                        match slots.clone().try_acquire_owned() {
                            Ok(slot) => {
                                let conn = Conn::new(io, slot, limits.handshake_timeout);
                                return Some((Ok(conn), (accept, slots, backoff)));
                            }
                            Err(_) => {
                                tracing::debug!(
                                    "refusing a connection: {} are open (the limit)",
                                    limits.max_connections
                                );
                                drop(io);
                            }
                        }
                    }
                    Err(e) if concerns_one_connection(&e) => {}
                    Err(e) => {
                        backoff = (backoff * 2).clamp(Duration::from_millis(5), MAX_BACKOFF);
                        tracing::warn!("cannot accept connections ({e}); retrying in {backoff:?}");
                        tokio::time::sleep(backoff).await;
                    }
                }
            }
        },
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use futures::StreamExt;
    use std::sync::atomic::{AtomicUsize, Ordering};

    /// Out of descriptors, accept fails at once every time: the stream must
    /// wait between attempts instead of spinning the server's thread.
    #[tokio::test(start_paused = true)]
    async fn a_failing_accept_backs_off() {
        let calls = Arc::new(AtomicUsize::new(0));
        let counted = calls.clone();
        let accept = move || {
            counted.fetch_add(1, Ordering::Relaxed);
            async { Err::<tokio::io::DuplexStream, _>(io::Error::from_raw_os_error(24)) }
        };
        let limits = Limits {
            max_connections: 4,
            handshake_timeout: Duration::from_secs(5),
        };
        let mut conns = Box::pin(incoming(accept, limits));
        let wait = tokio::time::timeout(Duration::from_secs(10), conns.next()).await;
        assert!(wait.is_err(), "an error or a connection came out");
        let n = calls.load(Ordering::Relaxed);
        // 5 ms doubling to 1 s: 5+10+…+640 ms, then once a second.
        assert!((10..=25).contains(&n), "{n} accepts in 10 s");
    }
}
