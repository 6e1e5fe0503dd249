//! The connections the server accepts, and which of them give way when
//! there are too many.
//!
//! At most `max_connections` are open at once. A new connection has
//! `handshake_timeout` to start speaking HTTP/2 (the 24-byte preface) and
//! `auth_timeout` to make a request with a valid token (the admission layer says so
//! through [`Peer::token_shown`]); it is closed if it does not. When every
//! slot is taken, a new connection takes the place of one that has not yet
//! shown a valid token (OpenSSH's `MaxStartups`, in spirit): connections
//! that have shown one never give way, and only when every slot is held by
//! one of those is the new connection closed at once, as before. Accept
//! errors are met with a backoff, never a busy loop; out of descriptors,
//! a connection without a token gives way for the one waiting.
//!
//! Without this, anyone able to connect, token or not, could hold every
//! slot: 1,100 HTTP/2 connections that answer PINGs and never make a
//! request made every real client fail for as long as they were held.

use futures::task::AtomicWaker;
use parking_lot::Mutex;
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::task::{Context, Poll};
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::sync::{AcquireError, OwnedSemaphorePermit, Semaphore};
use tokio::time::{Instant, Sleep};
use tonic::transport::server::{Connected, TcpConnectInfo};

/// The HTTP/2 client preface is 24 bytes: once they have come, the peer
/// speaks HTTP/2 (or, under TLS, has started its handshake, which tonic
/// times on its own).
const PREFACE_BYTES: usize = 24;
/// Longest pause between accept attempts after a failure that persists.
const MAX_BACKOFF: Duration = Duration::from_secs(1);
/// A connection younger than this gives way only when the eviction finds
/// no older one: a real client is between its connect and its first
/// request for about a round trip, and an attacker reconnecting as fast as
/// he is evicted keeps few connections this young.
const EVICTION_GRACE: Duration = Duration::from_millis(500);
/// Pairs an eviction samples at most, looking for a connection past its
/// grace: with a fraction f of the connections younger, all are young
/// with odds f^8 (f = 0.4: 1 in 1,500).
const EVICTION_TRIES: usize = 4;
/// The registry index of a connection that is not (or no longer) in it.
const UNLISTED: usize = usize::MAX;

/// How many connections, and how long a new one may go without speaking
/// HTTP/2, and without a request that carries a valid token.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Limits {
    pub max_connections: usize,
    pub handshake_timeout: Duration,
    pub auth_timeout: Duration,
}

/// What a connection's task, the admission layer (through [`Peer`]) and the accept
/// loop share about one connection.
struct ConnState {
    accepted_at: Instant,
    /// A request with a valid token came on it: it never gives way and has
    /// no deadline. Set under the registry's lock, read without it.
    authenticated: AtomicBool,
    /// Chosen to give way: its reads and writes fail from now on. Set
    /// under the registry's lock, read without it.
    evicted: AtomicBool,
    /// Its index in `Registry::unauthenticated`, or `UNLISTED`; changed
    /// only under the registry's lock.
    index: AtomicUsize,
    /// The task driving the connection, to wake when it is evicted: an
    /// idle connection would otherwise not notice until its deadline.
    task: AtomicWaker,
}

impl ConnState {
    fn new() -> Self {
        ConnState {
            accepted_at: Instant::now(),
            authenticated: AtomicBool::new(false),
            evicted: AtomicBool::new(false),
            index: AtomicUsize::new(UNLISTED),
            task: AtomicWaker::new(),
        }
    }
}

/// The connections that have not shown a valid token, in no order: a
/// dense array so that one is picked at random in O(1), each knowing its
/// index so that it leaves in O(1) (a swap with the last).
struct Registry {
    unauthenticated: Vec<Arc<ConnState>>,
    /// Stands in for the OS's random source if that ever fails.
    fallback: u64,
}

impl Registry {
    fn insert(&mut self, conn: &Arc<ConnState>) {
        conn.index
            .store(self.unauthenticated.len(), Ordering::Relaxed);
        self.unauthenticated.push(conn.clone());
    }

    fn remove(&mut self, conn: &ConnState) {
        let at = conn.index.load(Ordering::Relaxed);
        let listed = self
            .unauthenticated
            .get(at)
            .is_some_and(|c| std::ptr::eq(&**c, conn));
        if !listed {
            return;
        }
        self.unauthenticated.swap_remove(at);
        if let Some(moved) = self.unauthenticated.get(at) {
            moved.index.store(at, Ordering::Relaxed);
        }
        conn.index.store(UNLISTED, Ordering::Relaxed);
    }

    /// Takes out one connection to give way, flagged evicted. `random` is
    /// a random word: two indices. Of the two connections they pick, the
    /// one accepted first; if that one is younger than `EVICTION_GRACE`,
    /// up to `EVICTION_TRIES` pairs are tried for one past it (else the
    /// oldest seen goes). Random, so an attacker cannot aim at a given
    /// connection (a fixed order, newest or oldest first, tells him which
    /// goes next); the older of two and the grace, so a client that has
    /// just connected and is about to show its token is almost never the
    /// one, however fast an attacker reconnects. Each eviction costs the
    /// attacker a connection.
    fn evict_one(&mut self, random: u64, now: Instant) -> Option<Arc<ConnState>> {
        let n = self.unauthenticated.len();
        if n == 0 {
            return None;
        }
        let mut r = random;
        let mut victim: Option<&Arc<ConnState>> = None;
        for _ in 0..EVICTION_TRIES {
            let a = &self.unauthenticated[(r as u32 as usize) % n];
            let b = &self.unauthenticated[((r >> 32) as usize) % n];
            let older = if a.accepted_at <= b.accepted_at { a } else { b };
            if victim.is_none_or(|v| older.accepted_at < v.accepted_at) {
                victim = Some(older);
            }
            if now.saturating_duration_since(older.accepted_at) >= EVICTION_GRACE {
                break;
            }
            r = split_mix(r);
        }
        let victim = victim?.clone();
        self.remove(&victim);
        victim.evicted.store(true, Ordering::Release);
        Some(victim)
    }

    fn random(&mut self) -> u64 {
        getrandom::u64().unwrap_or_else(|_| {
            // Not secret, but still no fixed order.
            self.fallback = split_mix(self.fallback);
            self.fallback
        })
    }
}

/// SplitMix64's step: a well-mixed word from another.
fn split_mix(x: u64) -> u64 {
    let mut z = x.wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// A connection's slot: held, or on its way (freed by a connection that was
/// just told to give way, once its task has run).
enum Slot {
    Held { _slot: OwnedSemaphorePermit },
    Coming(Pin<Box<dyn Future<Output = Result<OwnedSemaphorePermit, AcquireError>> + Send>>),
}

/// The slots and the registry: shared by the accept loop, every `Conn`
/// and every `Peer`.
struct Admission {
    limits: Limits,
    slots: Arc<Semaphore>,
    registry: Mutex<Registry>,
}

impl Admission {
    fn new(limits: Limits) -> Self {
        let slots = limits.max_connections.clamp(1, Semaphore::MAX_PERMITS);
        Admission {
            limits,
            slots: Arc::new(Semaphore::new(slots)),
            registry: Mutex::new(Registry {
                unauthenticated: Vec::new(),
                fallback: 0,
            }),
        }
    }

    /// A slot for a connection just accepted: a free one, or the one a
    /// connection without a token is told to give up (the new connection
    /// takes it when that one's task has closed it: the accept loop never
    /// waits); None if every slot is held by a connection that has shown
    /// one.
    fn slot_for_newcomer(&self) -> Option<Slot> {
        if let Ok(slot) = self.slots.clone().try_acquire_owned() {
            return Some(Slot::Held { _slot: slot });
        }
        if !self.make_room() {
            return None;
        }
        // Queued now, by a first poll: the semaphore hands a freed slot to
        // the first queued (one is coming for each: its connection was told
        // to close), never to a newer connection's `try_acquire`, which a
        // slot freed before this connection's task first ran would
        // otherwise go to, leaving this one waiting for nothing.
        let mut coming: Pin<Box<dyn Future<Output = _> + Send>> =
            Box::pin(self.slots.clone().acquire_owned());
        let mut queued = Context::from_waker(futures::task::noop_waker_ref());
        match coming.as_mut().poll(&mut queued) {
            Poll::Ready(Ok(slot)) => Some(Slot::Held { _slot: slot }),
            Poll::Ready(Err(_)) => None,
            Poll::Pending => Some(Slot::Coming(coming)),
        }
    }

    /// Tells one connection without a token to give way (its task fails
    /// its next read or write, hyper drops it, its slot comes free); false
    /// if there is none.
    fn make_room(&self) -> bool {
        let victim = {
            let mut registry = self.registry.lock();
            let random = registry.random();
            registry.evict_one(random, Instant::now())
        };
        let Some(victim) = victim else {
            return false;
        };
        tracing::debug!("closing a connection that has shown no token, to make room for a new one");
        victim.task.wake();
        true
    }

    /// Marks `conn` as having shown a valid token: out of the registry for
    /// good. Under the lock, so that it is either evicted or authenticated,
    /// never both; if it was evicted first, it is too late.
    fn authenticate(&self, conn: &ConnState) {
        let mut registry = self.registry.lock();
        if conn.evicted.load(Ordering::Relaxed) {
            return;
        }
        conn.authenticated.store(true, Ordering::Release);
        registry.remove(conn);
    }

    /// Takes a closing connection out of the registry, if it is still in.
    fn leave(&self, conn: &ConnState) {
        // Never put back once out: seen out without the lock, out for good.
        if conn.index.load(Ordering::Relaxed) == UNLISTED {
            return;
        }
        self.registry.lock().remove(conn);
    }
}

/// `start + d`, or a time that never comes if that is past what an
/// `Instant` holds (a timeout of `Duration::MAX` means none).
fn deadline_after(start: Instant, d: Duration) -> Instant {
    start
        .checked_add(d)
        .unwrap_or_else(|| start + Duration::from_secs(30 * 365 * 86_400))
}

/// Where a connection is on its way to being trusted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    /// Before the HTTP/2 preface: the bytes of it seen so far.
    Preface(usize),
    /// Speaking HTTP/2, no valid token yet.
    NoToken,
    /// Has shown a valid token: no deadline, never evicted.
    Trusted,
}

/// An accepted connection: holds its slot until dropped, and fails its
/// reads and writes once it is evicted, or its time to send the preface or
/// to show a valid token is up.
pub(crate) struct Conn<IO> {
    // Dropped in this order: the descriptor closed, then the slot freed.
    io: IO,
    slot: Slot,
    state: Arc<ConnState>,
    admission: Arc<Admission>,
    phase: Phase,
    /// The preface's deadline, then the token's; None once trusted.
    deadline: Option<Pin<Box<Sleep>>>,
}

impl<IO> Conn<IO> {
    fn new(io: IO, slot: Slot, admission: &Arc<Admission>) -> Self {
        let state = Arc::new(ConnState::new());
        admission.registry.lock().insert(&state);
        let limits = admission.limits;
        // A token's deadline shorter than the preface's bounds both.
        let first = limits.handshake_timeout.min(limits.auth_timeout);
        Conn {
            io,
            slot,
            state: state.clone(),
            admission: admission.clone(),
            phase: Phase::Preface(0),
            deadline: Some(Box::pin(tokio::time::sleep_until(deadline_after(
                state.accepted_at,
                first,
            )))),
        }
    }

    /// Whether the connection may go on reading and writing: Pending while
    /// its slot is still coming, an error once it is evicted or a deadline
    /// has passed. Registers the task to be woken on eviction, and polls
    /// the deadline so that its timer wakes the task in time even when the
    /// peer sends nothing.
    fn may_go_on(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        if self.phase == Phase::Trusted {
            return Poll::Ready(Ok(()));
        }
        // Before the flag is read: an eviction in between still wakes us.
        self.state.task.register(cx.waker());
        if self.state.evicted.load(Ordering::Acquire) {
            return Poll::Ready(Err(io::Error::new(
                io::ErrorKind::ConnectionAborted,
                "closed to make room for a new connection: every slot was taken, \
                 and this one had made no request with a valid token",
            )));
        }
        if self.state.authenticated.load(Ordering::Acquire) {
            self.phase = Phase::Trusted;
            self.deadline = None;
            return Poll::Ready(Ok(()));
        }
        if let Some(deadline) = self.deadline.as_mut()
            && deadline.as_mut().poll(cx).is_ready()
        {
            let limits = self.admission.limits;
            let why = match self.phase {
                Phase::Preface(_) if limits.handshake_timeout <= limits.auth_timeout => {
                    "no HTTP/2 preface within the handshake time"
                }
                _ => "no request with a valid token within the time allowed",
            };
            return Poll::Ready(Err(io::Error::new(io::ErrorKind::TimedOut, why)));
        }
        if let Slot::Coming(coming) = &mut self.slot {
            match coming.as_mut().poll(cx) {
                Poll::Pending => return Poll::Pending,
                Poll::Ready(Ok(slot)) => self.slot = Slot::Held { _slot: slot },
                Poll::Ready(Err(_)) => {
                    return Poll::Ready(Err(io::Error::other("the server is closing")));
                }
            }
        }
        Poll::Ready(Ok(()))
    }

    /// Counts preface bytes; once they are all in, the token's deadline
    /// replaces the preface's.
    fn saw(&mut self, bytes: usize) {
        let Phase::Preface(seen) = self.phase else {
            return;
        };
        let seen = seen + bytes;
        if seen < PREFACE_BYTES {
            self.phase = Phase::Preface(seen);
            return;
        }
        self.phase = Phase::NoToken;
        let at = deadline_after(self.state.accepted_at, self.admission.limits.auth_timeout);
        if let Some(deadline) = self.deadline.as_mut() {
            deadline.as_mut().reset(at);
        }
    }
}

impl<IO> Drop for Conn<IO> {
    fn drop(&mut self) {
        // Before the fields go: no eviction may pick a closing connection.
        self.admission.leave(&self.state);
    }
}

impl<IO: AsyncRead + Unpin> AsyncRead for Conn<IO> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = &mut *self;
        if let Err(e) = std::task::ready!(this.may_go_on(cx)) {
            return Poll::Ready(Err(e));
        }
        let before = buf.filled().len();
        let polled = Pin::new(&mut this.io).poll_read(cx, buf);
        if let Poll::Ready(Ok(())) = polled {
            this.saw(buf.filled().len() - before);
        }
        polled
    }
}

// Writes are checked too: h2 flushes before it reads, so a connection
// whose peer never reads would otherwise never reach the failing read.
impl<IO: AsyncWrite + Unpin> AsyncWrite for Conn<IO> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = &mut *self;
        if let Err(e) = std::task::ready!(this.may_go_on(cx)) {
            return Poll::Ready(Err(e));
        }
        Pin::new(&mut this.io).poll_write(cx, buf)
    }
    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = &mut *self;
        if let Err(e) = std::task::ready!(this.may_go_on(cx)) {
            return Poll::Ready(Err(e));
        }
        Pin::new(&mut this.io).poll_flush(cx)
    }
    // Unchecked: closing is what an evicted connection should do.
    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.io).poll_shutdown(cx)
    }
    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let this = &mut *self;
        if let Err(e) = std::task::ready!(this.may_go_on(cx)) {
            return Poll::Ready(Err(e));
        }
        Pin::new(&mut this.io).poll_write_vectored(cx, bufs)
    }
    fn is_write_vectored(&self) -> bool {
        self.io.is_write_vectored()
    }
}

/// The client's address in an IO's connect info, if it has one.
pub(crate) trait PeerAddress {
    fn peer_address(&self) -> Option<SocketAddr>;
}

impl PeerAddress for TcpConnectInfo {
    fn peer_address(&self) -> Option<SocketAddr> {
        self.remote_addr()
    }
}

#[cfg(unix)]
impl PeerAddress for tonic::transport::server::UdsConnectInfo {
    fn peer_address(&self) -> Option<SocketAddr> {
        None
    }
}

/// In-memory connections (`tokio::io::DuplexStream`, in tests).
impl PeerAddress for () {
    fn peer_address(&self) -> Option<SocketAddr> {
        None
    }
}

/// The connection a request came on. tonic puts a connection's
/// `Connected::connect_info` into every request's extensions; under TLS it
/// puts both `TlsConnectInfo<Peer>` and, through `get_ref()`, this `Peer`
/// itself, so `extensions().get::<Peer>()` finds it either way. It
/// replaces the IO's own info (`TcpConnectInfo`), so tonic's
/// `Request::remote_addr()` no longer finds an address: read
/// `remote_addr` here.
#[derive(Clone)]
pub(crate) struct Peer {
    /// The client's address; None on a Unix socket.
    pub remote_addr: Option<SocketAddr>,
    conn: Arc<ConnState>,
    admission: Arc<Admission>,
}

impl Peer {
    /// For the admission layer, once a request's token is checked valid (any role):
    /// the connection keeps its slot from now on, whatever comes, and has
    /// no deadline. Cheap after the first time.
    pub(crate) fn token_shown(&self) {
        if !self.conn.authenticated.load(Ordering::Acquire) {
            self.admission.authenticate(&self.conn);
        }
    }
}

impl std::fmt::Debug for Peer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Peer")
            .field("remote_addr", &self.remote_addr)
            .field(
                "authenticated",
                &self.conn.authenticated.load(Ordering::Relaxed),
            )
            .finish()
    }
}

impl<IO> Connected for Conn<IO>
where
    IO: Connected,
    IO::ConnectInfo: PeerAddress,
{
    type ConnectInfo = Peer;
    fn connect_info(&self) -> Peer {
        Peer {
            remote_addr: self.io.connect_info().peer_address(),
            conn: self.state.clone(),
            admission: self.admission.clone(),
        }
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

/// The process (EMFILE) or the system (ENFILE) is out of descriptors: with
/// the common soft limit of 1,024, before `max_connections` is reached.
fn out_of_descriptors(e: &io::Error) -> bool {
    #[cfg(unix)]
    {
        use rustix::io::Errno;
        e.raw_os_error()
            .is_some_and(|n| n == Errno::MFILE.raw_os_error() || n == Errno::NFILE.raw_os_error())
    }
    #[cfg(windows)]
    {
        // WSAEMFILE: Winsock is out of sockets.
        e.raw_os_error() == Some(10024)
    }
    #[cfg(not(any(unix, windows)))]
    {
        let _ = e;
        false
    }
}

/// The accepted connections of `accept` (called again and again) as a
/// stream for tonic's `serve_with_incoming`. It never yields an error. A
/// connection over the cap takes the place of one that has shown no valid
/// token: that one is told to close, and the new one is handed out at once,
/// served once the slot is free (so the loop never waits on another
/// connection's task; the descriptors open past the cap are those of
/// connections told to close that have not yet run). If there is none, it
/// is closed at once (its client fails fast rather than hang in the
/// backlog). A failing accept is retried with a
/// backoff from 5 ms to 1 s; out of descriptors, after first closing a
/// connection without a token, if there is one.
pub(crate) fn incoming<IO, F, Fut>(
    accept: F,
    limits: Limits,
) -> impl futures::Stream<Item = Result<Conn<IO>, io::Error>>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = io::Result<IO>>,
{
    let admission = Arc::new(Admission::new(limits));
    futures::stream::unfold(
        (accept, admission, Duration::ZERO),
        |(mut accept, admission, mut backoff)| async move {
            loop {
                match accept().await {
                    Ok(io) => {
                        backoff = Duration::ZERO;
                        let slot = admission.slot_for_newcomer();
                        match slot {
                            Some(slot) => {
                                let conn = Conn::new(io, slot, &admission);
                                return Some((Ok(conn), (accept, admission, backoff)));
                            }
                            None => {
                                tracing::debug!(
                                    "refusing a connection: {} are open (the limit), \
                                     each has shown a valid token",
                                    admission.limits.max_connections
                                );
                                drop(io);
                            }
                        }
                    }
                    Err(e) if concerns_one_connection(&e) => {}
                    Err(e) => {
                        // A descriptor held by a connection without a token
                        // is worth less than the connection waiting: one is
                        // closed, and the accept tried again after the
                        // backoff (one eviction per try, never a burst).
                        if out_of_descriptors(&e) {
                            admission.make_room();
                        }
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
    use tokio::io::{AsyncReadExt, AsyncWriteExt, DuplexStream};
    use tokio::sync::mpsc;
    use tokio::task::JoinHandle;

    type Accepted = io::Result<DuplexStream>;

    fn limits(max_connections: usize) -> Limits {
        Limits {
            max_connections,
            handshake_timeout: Duration::from_secs(5),
            auth_timeout: Duration::from_secs(10),
        }
    }

    /// An accept that hands out what is sent on the returned sender: the
    /// server ends of in-memory connections, or errors.
    fn listener() -> (
        mpsc::UnboundedSender<Accepted>,
        impl FnMut() -> Pin<Box<dyn Future<Output = Accepted> + Send>>,
    ) {
        let (tx, rx) = mpsc::unbounded_channel::<Accepted>();
        let rx = Arc::new(tokio::sync::Mutex::new(rx));
        let accept = move || {
            let rx = rx.clone();
            Box::pin(async move {
                match rx.lock().await.recv().await {
                    Some(accepted) => accepted,
                    None => std::future::pending().await,
                }
            }) as Pin<Box<dyn Future<Output = Accepted> + Send>>
        };
        (tx, accept)
    }

    /// Connects: the client's end.
    fn connect(tx: &mpsc::UnboundedSender<Accepted>) -> DuplexStream {
        let (client, server) = tokio::io::duplex(1024);
        tx.send(Ok(server)).unwrap();
        client
    }

    /// Serves a connection as hyper would: reads until a read fails or the
    /// client leaves, then drops it. Why it ended.
    fn serve(mut conn: Conn<DuplexStream>) -> JoinHandle<io::ErrorKind> {
        tokio::spawn(async move {
            let mut buf = [0u8; 64];
            loop {
                match conn.read(&mut buf).await {
                    Ok(0) => return io::ErrorKind::UnexpectedEof,
                    Ok(_) => {}
                    Err(e) => return e.kind(),
                }
            }
        })
    }

    /// Why the connections that have ended ended; those still served.
    async fn ended(
        served: Vec<JoinHandle<io::ErrorKind>>,
    ) -> (Vec<io::ErrorKind>, Vec<JoinHandle<io::ErrorKind>>) {
        let (done, open): (Vec<_>, Vec<_>) = served.into_iter().partition(|s| s.is_finished());
        let mut kinds = Vec::new();
        for s in done {
            kinds.push(s.await.unwrap());
        }
        (kinds, open)
    }

    #[tokio::test]
    async fn a_new_connection_takes_the_place_of_one_without_a_token() {
        let (tx, accept) = listener();
        let mut conns = Box::pin(incoming(accept, limits(4)));
        let mut clients = Vec::new();
        let mut trusted = Vec::new();
        let mut others = Vec::new();
        let mut probe = None;
        for i in 0..4 {
            clients.push(connect(&tx));
            let conn = conns.next().await.unwrap().unwrap();
            if i < 2 {
                let peer = conn.connect_info();
                peer.token_shown();
                probe.get_or_insert(peer);
                trusted.push(serve(conn));
            } else {
                others.push(serve(conn));
            }
        }
        // Ten more, each let in at once in the place of one without a token.
        for _ in 0..10 {
            clients.push(connect(&tx));
            let conn = tokio::time::timeout(Duration::from_secs(1), conns.next())
                .await
                .expect("a new connection was kept waiting")
                .unwrap()
                .unwrap();
            others.push(serve(conn));
        }
        assert!(
            trusted.iter().all(|s| !s.is_finished()),
            "a connection that showed a token was closed"
        );
        // Each newcomer was handed out at once; the one it displaced closes
        // when its task next runs.
        let start = std::time::Instant::now();
        while others.iter().filter(|s| s.is_finished()).count() < 10
            && start.elapsed() < Duration::from_secs(5)
        {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        let (kinds, open) = ended(others).await;
        assert_eq!(kinds, vec![io::ErrorKind::ConnectionAborted; 10]);
        assert_eq!(open.len(), 2);
        // The clients leave: nothing stays behind in the registry.
        drop(clients);
        for s in trusted.into_iter().chain(open) {
            assert_eq!(s.await.unwrap(), io::ErrorKind::UnexpectedEof);
        }
        let probe = probe.unwrap();
        assert!(probe.admission.registry.lock().unauthenticated.is_empty());
    }

    #[tokio::test]
    async fn when_every_slot_has_shown_a_token_a_new_connection_is_refused() {
        let (tx, accept) = listener();
        let mut conns = Box::pin(incoming(accept, limits(2)));
        let mut clients = Vec::new();
        let mut served = Vec::new();
        for _ in 0..2 {
            clients.push(connect(&tx));
            let conn = conns.next().await.unwrap().unwrap();
            conn.connect_info().token_shown();
            served.push(serve(conn));
        }
        let mut third = connect(&tx);
        let next = tokio::time::timeout(Duration::from_millis(200), conns.next()).await;
        assert!(
            next.is_err(),
            "a third connection was let in over a cap of 2"
        );
        let mut buf = [0u8; 1];
        assert_eq!(third.read(&mut buf).await.unwrap(), 0, "it was not closed");
        assert!(served.iter().all(|s| !s.is_finished()));
    }

    #[tokio::test(start_paused = true)]
    async fn a_connection_without_a_token_is_closed_after_the_auth_time() {
        let (tx, accept) = listener();
        let mut conns = Box::pin(incoming(accept, limits(8)));
        let start = Instant::now();
        // Never sends the preface: closed after the handshake time.
        let _mute = connect(&tx);
        let mute = serve(conns.next().await.unwrap().unwrap());
        // Sends the preface, never a token: closed after the auth time.
        let mut idle_client = connect(&tx);
        idle_client.write_all(&[0; PREFACE_BYTES]).await.unwrap();
        let idle = serve(conns.next().await.unwrap().unwrap());
        // Shows a token: kept however long it stays.
        let mut kept_client = connect(&tx);
        kept_client.write_all(&[0; PREFACE_BYTES]).await.unwrap();
        let conn = conns.next().await.unwrap().unwrap();
        conn.connect_info().token_shown();
        let kept = serve(conn);

        assert_eq!(mute.await.unwrap(), io::ErrorKind::TimedOut);
        let took = start.elapsed();
        assert!(
            (Duration::from_secs(5)..Duration::from_secs(6)).contains(&took),
            "{took:?}"
        );
        assert_eq!(idle.await.unwrap(), io::ErrorKind::TimedOut);
        let took = start.elapsed();
        assert!(
            (Duration::from_secs(10)..Duration::from_secs(11)).contains(&took),
            "{took:?}"
        );
        tokio::time::sleep(Duration::from_secs(600)).await;
        assert!(
            !kept.is_finished(),
            "a connection that showed a token was closed"
        );
        kept_client.write_all(b"still here").await.unwrap();
        tokio::task::yield_now().await;
        assert!(!kept.is_finished());
    }

    #[tokio::test]
    async fn out_of_descriptors_a_connection_without_a_token_gives_way() {
        let (tx, accept) = listener();
        let mut conns = Box::pin(incoming(accept, limits(8)));
        let mut clients = Vec::new();
        let mut served = Vec::new();
        for _ in 0..3 {
            clients.push(connect(&tx));
            served.push(serve(conns.next().await.unwrap().unwrap()));
        }
        // EMFILE, then the connection that was waiting in the backlog.
        tx.send(Err(io::Error::from_raw_os_error(24))).unwrap();
        clients.push(connect(&tx));
        let next = tokio::time::timeout(Duration::from_secs(1), conns.next()).await;
        assert!(
            matches!(next, Ok(Some(Ok(_)))),
            "the waiting connection did not get in"
        );
        let (kinds, open) = ended(served).await;
        assert_eq!(kinds, vec![io::ErrorKind::ConnectionAborted]);
        assert_eq!(open.len(), 2);
    }

    /// Out of descriptors, accept fails at once every time: the stream must
    /// wait between attempts instead of spinning the server's thread.
    #[tokio::test(start_paused = true)]
    async fn a_failing_accept_backs_off() {
        let calls = Arc::new(AtomicUsize::new(0));
        let counted = calls.clone();
        let accept = move || {
            counted.fetch_add(1, Ordering::Relaxed);
            async { Err::<DuplexStream, _>(io::Error::from_raw_os_error(24)) }
        };
        let mut conns = Box::pin(incoming(accept, limits(4)));
        let wait = tokio::time::timeout(Duration::from_secs(10), conns.next()).await;
        assert!(wait.is_err(), "an error or a connection came out");
        let n = calls.load(Ordering::Relaxed);
        // 5 ms doubling to 1 s: 5+10+…+640 ms, then once a second.
        assert!((10..=25).contains(&n), "{n} accepts in 10 s");
    }

    #[tokio::test]
    async fn the_registry_removes_in_any_order_and_evicts_only_what_it_holds() {
        let mut registry = Registry {
            unauthenticated: Vec::new(),
            fallback: 0,
        };
        let conns: Vec<_> = (0..6).map(|_| Arc::new(ConnState::new())).collect();
        for c in &conns {
            registry.insert(c);
        }
        registry.remove(&conns[1]);
        registry.remove(&conns[5]);
        registry.remove(&conns[1]); // twice: a no-op
        for (i, c) in registry.unauthenticated.iter().enumerate() {
            assert_eq!(c.index.load(Ordering::Relaxed), i);
        }
        let mut evicted = Vec::new();
        while let Some(v) = {
            let r = registry.random();
            registry.evict_one(r, Instant::now())
        } {
            assert!(v.evicted.load(Ordering::Relaxed));
            assert_eq!(v.index.load(Ordering::Relaxed), UNLISTED);
            evicted.push(Arc::as_ptr(&v));
        }
        evicted.sort();
        let mut expected: Vec<_> = [0, 2, 3, 4].map(|i| Arc::as_ptr(&conns[i])).to_vec();
        expected.sort();
        assert_eq!(evicted, expected);
    }

    /// The victim is random, but a connection younger than the grace goes
    /// only when no older one is found: an evictor that took the newest
    /// first (and so every client as it arrives) fails here.
    #[tokio::test(start_paused = true)]
    async fn a_connection_just_accepted_gives_way_last() {
        let mut registry = Registry {
            unauthenticated: Vec::new(),
            fallback: 0,
        };
        let old: Vec<_> = (0..200).map(|_| Arc::new(ConnState::new())).collect();
        for c in &old {
            registry.insert(c);
        }
        tokio::time::advance(EVICTION_GRACE * 2).await;
        let young = Arc::new(ConnState::new());
        registry.insert(&young);
        let mut r = 42;
        let mut order = Vec::new();
        for _ in 0..=old.len() {
            r = split_mix(r);
            let v = registry.evict_one(r, Instant::now()).expect("one to evict");
            order.push(Arc::ptr_eq(&v, &young));
        }
        assert_eq!(order.iter().position(|&y| y), Some(old.len()));
        // And among the old, not in the order they came: the first ten
        // evicted are not the ten accepted first.
        let mut registry = Registry {
            unauthenticated: Vec::new(),
            fallback: 0,
        };
        for c in &old {
            c.evicted.store(false, Ordering::Relaxed);
            registry.insert(c);
        }
        let firsts: Vec<_> = (0..10)
            .map(|_| {
                r = split_mix(r);
                let v = registry.evict_one(r, Instant::now()).expect("one to evict");
                old.iter()
                    .position(|c| Arc::ptr_eq(c, &v))
                    .unwrap_or(usize::MAX)
            })
            .collect();
        assert_ne!(firsts, (0..10).collect::<Vec<_>>());
    }

    /// A slot freed before the connection it was freed for has run is that
    /// connection's: a newer one does not take it and leave the first
    /// waiting for a slot that never comes.
    #[tokio::test]
    async fn a_slot_freed_for_a_connection_is_not_taken_by_a_newer_one() {
        let (tx, accept) = listener();
        let mut conns = Box::pin(incoming(accept, limits(1)));
        let _c1 = connect(&tx);
        let first = conns.next().await.unwrap().unwrap();
        let _c2 = connect(&tx);
        let second = conns.next().await.unwrap().unwrap();
        assert!(matches!(second.slot, Slot::Coming(_)));
        assert!(first.state.evicted.load(Ordering::Relaxed));
        // Closed before `second` is first polled.
        drop(first);
        let _c3 = connect(&tx);
        let third = conns.next().await.unwrap().unwrap();
        assert!(
            matches!(third.slot, Slot::Coming(_)),
            "a newer connection took the slot freed for an older one"
        );
        // `second` was told to give way for `third`; `third` gets the slot
        // once `second` is gone.
        assert!(second.state.evicted.load(Ordering::Relaxed));
        drop(second);
        let mut third = serve(third);
        assert!(
            tokio::time::timeout(Duration::from_millis(200), &mut third)
                .await
                .is_err(),
            "the third connection was closed"
        );
    }
}
