//! The bytes of responses the server has produced that clients have not
//! yet taken, all connections together, against one bound
//! (`ServeOptions::max_unsent_bytes`).
//!
//! HTTP/2 queues what a response produces until the client's flow-control
//! window lets it out, and nothing upstream can see that queue. A client
//! that opens many watches or snapshots of a run with a large array and
//! never reads (a zero window) made the server queue a copy per stream.
//! So each connection counts what its responses produced and what it wrote
//! to its socket; the difference is what waits for it. While the total is
//! at the bound, responses produce nothing more (they wait, the run goes
//! on), and a connection that has had bytes waiting without taking any for
//! `stall_timeout` is closed, which frees its queue.

use parking_lot::Mutex;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Weak};
use std::task::{Context, Poll, Waker};
use std::time::{Duration, Instant};
use tonic::Status;
use tonic::body::Body;

/// The bound, the total, and who waits for room.
pub(crate) struct Backlog {
    bound: usize,
    stall_timeout: Duration,
    start: Instant,
    state: Mutex<State>,
}

#[derive(Default)]
struct State {
    /// Bytes produced and not yet written, all connections together.
    unsent: usize,
    /// Responses waiting for the total to fall under the bound.
    waiting: Vec<Waker>,
    links: Vec<Weak<Link>>,
}

impl Backlog {
    pub fn new(bound: usize, stall_timeout: Duration) -> Arc<Self> {
        Arc::new(Backlog {
            bound,
            stall_timeout,
            start: Instant::now(),
            state: Mutex::new(State::default()),
        })
    }

    fn now_ms(&self) -> u64 {
        self.start.elapsed().as_millis() as u64
    }

    /// A new connection's counters.
    pub fn link(self: &Arc<Self>, peer: Option<std::net::SocketAddr>) -> Arc<Link> {
        let link = Arc::new(Link {
            backlog: self.clone(),
            peer,
            flow: Mutex::new(Flow::default()),
            closed: AtomicBool::new(false),
            reader: futures::task::AtomicWaker::new(),
            last_write_ms: AtomicU64::new(self.now_ms()),
        });
        let mut s = self.state.lock();
        s.links.retain(|l| l.strong_count() > 0);
        s.links.push(Arc::downgrade(&link));
        link
    }

    /// What waits unsent now.
    #[cfg(test)]
    pub fn unsent(&self) -> usize {
        self.state.lock().unsent
    }

    /// Room to produce more now; if not, `cx` is woken when there may be.
    fn room(&self, cx: &Context<'_>) -> bool {
        let mut s = self.state.lock();
        if s.unsent < self.bound {
            return true;
        }
        s.waiting.push(cx.waker().clone());
        false
    }

    /// Moves the total by a connection's change in what waits for it.
    fn adjust(&self, before: usize, after: usize) {
        if before == after {
            return;
        }
        let wake = {
            let mut s = self.state.lock();
            s.unsent = (s.unsent + after).saturating_sub(before);
            if s.unsent < self.bound {
                std::mem::take(&mut s.waiting)
            } else {
                Vec::new()
            }
        };
        for w in wake {
            w.wake();
        }
    }

    /// While the total is at the bound, closes the connections that have
    /// had bytes waiting and taken none for `stall_timeout`, those stalled
    /// longest first, until what they hold would bring it under.
    pub fn close_stalled(&self) {
        let now = self.now_ms();
        let (mut stalled, mut over) = {
            let s = self.state.lock();
            if s.unsent < self.bound {
                return;
            }
            let stalled: Vec<(u64, usize, Arc<Link>)> = s
                .links
                .iter()
                .filter_map(Weak::upgrade)
                .filter_map(|l| {
                    let waiting = l.flow.lock().waiting();
                    let idle = now.saturating_sub(l.last_write_ms.load(Ordering::Acquire));
                    (waiting > 0 && idle >= self.stall_timeout.as_millis() as u64)
                        .then_some((idle, waiting, l))
                })
                .collect();
            (stalled, s.unsent + 1 - self.bound)
        };
        stalled.sort_by_key(|s| std::cmp::Reverse(s.0));
        for (idle, waiting, link) in stalled {
            if over == 0 {
                break;
            }
            tracing::warn!(
                "closing the connection of {} : {waiting} bytes have waited for it {idle} ms \
                 while responses in flight are at their bound",
                link.peer
                    .map_or_else(|| "a local client".to_string(), |p| p.to_string())
            );
            link.close();
            over = over.saturating_sub(waiting);
        }
    }

    /// Looks for stalled connections about every second, for as long as
    /// the server runs.
    pub async fn sweep(self: Arc<Self>) {
        let every = self
            .stall_timeout
            .clamp(Duration::from_millis(100), Duration::from_secs(1));
        loop {
            tokio::time::sleep(every).await;
            self.close_stalled();
        }
    }
}

#[derive(Default)]
struct Flow {
    produced: u64,
    written: u64,
}

impl Flow {
    fn waiting(&self) -> usize {
        self.produced.saturating_sub(self.written) as usize
    }
}

/// One connection's counters, and the means to close it.
pub(crate) struct Link {
    backlog: Arc<Backlog>,
    pub peer: Option<std::net::SocketAddr>,
    flow: Mutex<Flow>,
    closed: AtomicBool,
    /// The connection's task, woken to see that it was closed.
    reader: futures::task::AtomicWaker,
    last_write_ms: AtomicU64,
}

impl Link {
    /// A response on this connection produced `n` bytes.
    fn produced(&self, n: usize) {
        let (before, after) = {
            let mut f = self.flow.lock();
            let before = f.waiting();
            f.produced += n as u64;
            (before, f.waiting())
        };
        self.backlog.adjust(before, after);
    }

    /// The connection wrote `n` bytes to its socket (HTTP/2 framing
    /// included, so what waits is, if anything, undercounted by it).
    pub fn wrote(&self, n: usize) {
        if n == 0 {
            return;
        }
        self.last_write_ms
            .store(self.backlog.now_ms(), Ordering::Release);
        let (before, after) = {
            let mut f = self.flow.lock();
            let before = f.waiting();
            f.written += n as u64;
            (before, f.waiting())
        };
        self.backlog.adjust(before, after);
    }

    /// Closes the connection: its next read fails, and everything its
    /// streams held is dropped with it.
    pub fn close(&self) {
        self.closed.store(true, Ordering::Release);
        self.reader.wake();
    }

    /// Whether the connection was closed (and `cx` is woken if it is later).
    pub fn is_closed(&self, cx: &Context<'_>) -> bool {
        self.reader.register(cx.waker());
        self.closed.load(Ordering::Acquire)
    }
}

impl Drop for Link {
    fn drop(&mut self) {
        let waiting = self.flow.get_mut().waiting();
        self.backlog.adjust(waiting, 0);
    }
}

/// What tonic puts in each request's extensions for its connection.
#[derive(Clone)]
pub(crate) struct LinkInfo(pub Arc<Link>);

/// The connection a request came on (from its extensions), with or
/// without TLS.
pub(crate) fn link_in(ext: &tonic::codegen::http::Extensions) -> Option<Arc<Link>> {
    ext.get::<LinkInfo>().map(|l| l.0.clone()).or_else(|| {
        ext.get::<tonic::transport::server::TlsConnectInfo<LinkInfo>>()
            .map(|t| t.get_ref().0.clone())
    })
}

/// A response body that produces only while the backlog has room, and
/// counts what it produces against its connection.
pub(crate) struct Metered {
    pub body: Body,
    pub link: Arc<Link>,
}

impl http_body::Body for Metered {
    type Data = bytes::Bytes;
    type Error = Status;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<http_body::Frame<bytes::Bytes>, Status>>> {
        if !self.link.backlog.room(cx) {
            return Poll::Pending;
        }
        let polled = Pin::new(&mut self.body).poll_frame(cx);
        if let Poll::Ready(Some(Ok(frame))) = &polled
            && let Some(data) = frame.data_ref()
        {
            self.link.produced(data.len());
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.body.is_end_stream()
    }

    fn size_hint(&self) -> http_body::SizeHint {
        self.body.size_hint()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn what_waits_is_produced_less_written_and_a_link_gives_it_back() {
        let backlog = Backlog::new(100, Duration::from_secs(1));
        let a = backlog.link(None);
        let b = backlog.link(None);
        a.produced(60);
        b.produced(50);
        assert_eq!(backlog.unsent(), 110);
        // Framing makes writes exceed what was produced: never below zero.
        a.wrote(70);
        assert_eq!(backlog.unsent(), 50);
        a.produced(5);
        assert_eq!(backlog.unsent(), 50, "5 of the 10 written extra");
        drop(b);
        assert_eq!(backlog.unsent(), 0);
    }

    #[test]
    fn at_the_bound_the_longest_stalled_connection_is_closed() {
        let backlog = Backlog::new(100, Duration::ZERO);
        let reading = backlog.link(None);
        let stalled = backlog.link(None);
        stalled.produced(150);
        reading.produced(10);
        std::thread::sleep(Duration::from_millis(5));
        reading.wrote(10);
        backlog.close_stalled();
        assert!(stalled.closed.load(Ordering::Acquire));
        assert!(!reading.closed.load(Ordering::Acquire));
    }
}
