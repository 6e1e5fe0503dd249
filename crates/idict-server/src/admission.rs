//! The gate every request passes before any of its body is read: the token
//! (which role), the role the RPC needs, and the most body bytes that RPC
//! may bring. An observer's Set used to be decoded in full (gigabytes, for
//! a list of 33 M empty values) before it was refused. A valid token also
//! marks its connection as one that never gives way to a new connection
//! when slots run short, and is no longer on a deadline (incoming.rs).
//!
//! It also bounds what answers hold: a GetSnapshot answer (a copy of the
//! whole state) takes one of its token's few snapshot slots, and is handed
//! to HTTP/2 a slice at a time, so the slot is held until the client has
//! taken nearly all of it.

use super::auth::Tokens;
use super::incoming::Peer;
use bytes::Bytes;
use futures::future::{BoxFuture, Either, FutureExt, Ready, ready};
use http_body_util::BodyExt;
use idict_core::model::Role;
use std::convert::Infallible;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::task::{Context, Poll};
use tonic::Status;
use tonic::body::Body;
use tonic::codegen::Service;
use tonic::codegen::http::{Request, Response};

/// Most body bytes of a request that carries no value: GetInfo, Control,
/// GetSnapshot, Watch, health.
const SMALL_REQUEST_BYTES: usize = 64 << 10;
/// GetHistory names at most 4,096 keys of at most 1 KiB each.
const HISTORY_REQUEST_BYTES: usize = 5 << 20;
/// A reflection stream's requests, all of them.
const REFLECTION_REQUEST_BYTES: usize = 1 << 20;
/// An answer goes to HTTP/2 in slices of at most this: hyper hands a slice
/// over only when the stream has room for more.
const ANSWER_SLICE_BYTES: usize = 64 << 10;
const GET_SNAPSHOT: &str = "/idict.v1.Inspector/GetSnapshot";

/// What an RPC needs: a role, and a cap on its request body.
fn policy(path: &str, set_bytes: usize) -> (Role, usize) {
    match path {
        "/idict.v1.Inspector/Set" => (Role::Controller, set_bytes),
        "/idict.v1.Inspector/Control" => (Role::Controller, SMALL_REQUEST_BYTES),
        "/idict.v1.Inspector/Trigger" => (Role::Controller, SMALL_REQUEST_BYTES),
        "/idict.v1.Inspector/GetHistory" => (Role::Observer, HISTORY_REQUEST_BYTES),
        p if p.starts_with("/grpc.reflection.") => (Role::Observer, REFLECTION_REQUEST_BYTES),
        _ => (Role::Observer, SMALL_REQUEST_BYTES),
    }
}

/// The role the request's `authorization: Bearer <token>` grants.
fn authenticate<B>(tokens: &Tokens, req: &Request<B>) -> Result<Role, Status> {
    let header = req.headers().get("authorization").ok_or_else(|| {
        Status::unauthenticated(
            "no token: send the run's token as metadata 'authorization: Bearer <token>'",
        )
    })?;
    let token = header
        .to_str()
        .ok()
        .and_then(|h| h.strip_prefix("Bearer "))
        .ok_or_else(|| {
            Status::unauthenticated("malformed authorization: expected 'Bearer <token>'")
        })?;
    tokens
        .role_of(token.trim())
        .ok_or_else(|| Status::unauthenticated("wrong token for this run"))
}

/// Puts [`Gate`] in front of the server's routes.
#[derive(Clone)]
pub(crate) struct GateLayer {
    tokens: Arc<Tokens>,
    /// The cap on a Set's body (`ServeOptions::max_request_bytes`).
    set_bytes: usize,
    /// GetSnapshot answers being sent, by role (observer, controller).
    snapshots: Arc<[AtomicUsize; 2]>,
    max_snapshots: usize,
}

impl GateLayer {
    pub fn new(tokens: Arc<Tokens>, set_bytes: usize, max_snapshots: usize) -> Self {
        GateLayer {
            tokens,
            set_bytes,
            snapshots: Arc::default(),
            max_snapshots,
        }
    }
}

/// One of a token's GetSnapshot slots, free again when its answer is
/// dropped (sent, or the stream reset).
struct SnapshotSlot {
    counts: Arc<[AtomicUsize; 2]>,
    at: usize,
}

impl SnapshotSlot {
    fn take(layer: &GateLayer, role: Role) -> Result<SnapshotSlot, Status> {
        let at = match role {
            Role::Observer => 0,
            Role::Controller => 1,
        };
        let cap = layer.max_snapshots;
        if !idict_core::counters::take_below(&layer.snapshots[at], cap) {
            return Err(Status::resource_exhausted(format!(
                "this token already has {cap} snapshots being sent (the run's limit): \
                 try again when one is taken, or Watch"
            )));
        }
        Ok(SnapshotSlot {
            counts: layer.snapshots.clone(),
            at,
        })
    }
}

impl Drop for SnapshotSlot {
    fn drop(&mut self) {
        self.counts[self.at].fetch_sub(1, Ordering::AcqRel);
    }
}

impl<S> tower_layer::Layer<S> for GateLayer {
    type Service = Gate<S>;
    fn layer(&self, inner: S) -> Gate<S> {
        Gate {
            inner,
            layer: self.clone(),
        }
    }
}

#[derive(Clone)]
pub(crate) struct Gate<S> {
    inner: S,
    layer: GateLayer,
}

impl<S> Service<Request<Body>> for Gate<S>
where
    S: Service<Request<Body>, Response = Response<Body>, Error = Infallible>,
    S::Future: Send + 'static,
{
    type Response = Response<Body>;
    type Error = Infallible;
    type Future = Either<
        Ready<Result<Response<Body>, Infallible>>,
        Either<S::Future, BoxFuture<'static, Result<Response<Body>, Infallible>>>,
    >;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut req: Request<Body>) -> Self::Future {
        let (needs, limit) = policy(req.uri().path(), self.layer.set_bytes);
        let role = match authenticate(&self.layer.tokens, &req) {
            Ok(role) => role,
            Err(status) => return Either::Left(ready(Ok(status.into_http()))),
        };
        // A valid token, whatever its role and whatever comes of this call:
        // the connection now keeps its slot when slots run short, and has
        // no deadline to show a token by (see incoming.rs). Absent only if
        // the server was fed connections other than incoming()'s.
        if let Some(peer) = req.extensions().get::<Peer>() {
            peer.token_shown();
        }
        if needs == Role::Controller && role == Role::Observer {
            let rpc = req.uri().path().rsplit('/').next().unwrap_or("this call");
            let status = super::auth::observer_refused(rpc);
            return Either::Left(ready(Ok(status.into_http())));
        }
        let slot = if req.uri().path() == GET_SNAPSHOT {
            match SnapshotSlot::take(&self.layer, role) {
                Ok(slot) => Some(slot),
                Err(status) => return Either::Left(ready(Ok(status.into_http()))),
            }
        } else {
            None
        };
        // The services read the role from here (auth::role).
        req.extensions_mut().insert(role);
        let req = req.map(|body| {
            let declared = MessageLimit::new(body, limit);
            Body::new(
                http_body_util::Limited::new(declared, limit).map_err(move |e| {
                    if e.is::<http_body_util::LengthLimitError>() {
                        Box::new(Status::resource_exhausted(format!(
                            "the request is larger than this call takes ({limit} bytes)"
                        ))) as tonic::codegen::StdError
                    } else {
                        e
                    }
                }),
            )
        });
        let answer = self.inner.call(req);
        match slot {
            None => Either::Right(Either::Left(answer)),
            Some(slot) => Either::Right(Either::Right(
                answer
                    .map(|r| r.map(|res| res.map(|body| Body::new(Sliced::new(body, slot)))))
                    .boxed(),
            )),
        }
    }
}

/// An answer's body handed on in slices of at most `ANSWER_SLICE_BYTES`,
/// holding its slot until the last slice is handed on.
struct Sliced {
    inner: Body,
    rest: Bytes,
    _slot: SnapshotSlot,
}

impl Sliced {
    fn new(inner: Body, slot: SnapshotSlot) -> Self {
        Sliced {
            inner,
            rest: Bytes::new(),
            _slot: slot,
        }
    }
}

impl http_body::Body for Sliced {
    type Data = Bytes;
    type Error = Status;

    fn poll_frame(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<http_body::Frame<Bytes>, Status>>> {
        if self.rest.is_empty() {
            match std::pin::Pin::new(&mut self.inner).poll_frame(cx) {
                Poll::Ready(Some(Ok(frame))) => match frame.into_data() {
                    Ok(data) => self.rest = data,
                    Err(frame) => return Poll::Ready(Some(Ok(frame))),
                },
                other => return other,
            }
        }
        // A copy, not a view: a view would keep the whole answer alive
        // while HTTP/2 still holds the slice, after the slot is given back.
        let n = self.rest.len().min(ANSWER_SLICE_BYTES);
        let slice = Bytes::copy_from_slice(&self.rest[..n]);
        self.rest = if n == self.rest.len() {
            Bytes::new()
        } else {
            self.rest.slice(n..)
        };
        Poll::Ready(Some(Ok(http_body::Frame::data(slice))))
    }

    fn is_end_stream(&self) -> bool {
        self.rest.is_empty() && self.inner.is_end_stream()
    }

    fn size_hint(&self) -> http_body::SizeHint {
        let inner = self.inner.size_hint();
        let rest = self.rest.len() as u64;
        let mut hint = http_body::SizeHint::new();
        hint.set_lower(inner.lower() + rest);
        if let Some(upper) = inner.upper() {
            hint.set_upper(upper + rest);
        }
        hint
    }
}

/// Refuses a request as soon as the 5-byte header of any of its gRPC
/// messages announces more bytes than the call takes: tonic reserves the
/// announced length before the bytes arrive, so an observer's GetInfo
/// announcing 60 MiB used to cost 60 MiB while it sent nothing more. Every
/// message, not only the first: the fuzzer found a second message behind an
/// empty first one that announced 64 MiB.
struct MessageLimit {
    inner: Body,
    limit: usize,
    /// The header being read: a compression flag, then the length.
    header: [u8; 5],
    have: usize,
    /// Bytes of the current message's payload still to pass.
    payload_left: usize,
}

impl MessageLimit {
    fn new(inner: Body, limit: usize) -> Self {
        MessageLimit {
            inner,
            limit,
            header: [0; 5],
            have: 0,
            payload_left: 0,
        }
    }

    /// Follows the framing through `data`; the first announced length over
    /// the limit, if any.
    fn oversized_in(&mut self, mut data: &[u8]) -> Option<usize> {
        while !data.is_empty() {
            if self.payload_left > 0 {
                let skip = self.payload_left.min(data.len());
                self.payload_left -= skip;
                data = &data[skip..];
                continue;
            }
            let take = (5 - self.have).min(data.len());
            let at = self.have;
            self.header[at..at + take].copy_from_slice(&data[..take]);
            self.have += take;
            data = &data[take..];
            if self.have == 5 {
                self.have = 0;
                let [_, a, b, c, d] = self.header;
                let announced = u32::from_be_bytes([a, b, c, d]) as usize;
                if announced > self.limit {
                    return Some(announced);
                }
                self.payload_left = announced;
            }
        }
        None
    }
}

impl http_body::Body for MessageLimit {
    type Data = bytes::Bytes;
    type Error = Status;

    fn poll_frame(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<http_body::Frame<bytes::Bytes>, Status>>> {
        let polled = std::pin::Pin::new(&mut self.inner).poll_frame(cx);
        if let Poll::Ready(Some(Ok(frame))) = &polled
            && let Some(data) = frame.data_ref()
        {
            let data = data.clone();
            if let Some(announced) = self.oversized_in(&data) {
                return Poll::Ready(Some(Err(Status::resource_exhausted(format!(
                    "a message of {announced} bytes: this call takes at most {}",
                    self.limit
                )))));
            }
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_rpc_has_its_role_and_cap() {
        assert_eq!(
            policy("/idict.v1.Inspector/Set", 123),
            (Role::Controller, 123)
        );
        assert_eq!(
            policy("/idict.v1.Inspector/Control", 123).0,
            Role::Controller
        );
        for read in ["GetInfo", "GetSnapshot", "Watch", "GetHistory"] {
            assert_eq!(
                policy(&format!("/idict.v1.Inspector/{read}"), 123).0,
                Role::Observer
            );
        }
        assert_eq!(
            policy("/grpc.health.v1.Health/Check", 1 << 30).1,
            SMALL_REQUEST_BYTES
        );
    }

    fn header(len: u32) -> Vec<u8> {
        let mut h = vec![0];
        h.extend_from_slice(&len.to_be_bytes());
        h
    }

    #[test]
    fn every_message_header_is_checked_however_the_bytes_are_split() {
        // An empty message, one of 3 bytes, then one announcing 64 MiB.
        let mut body = header(0);
        body.extend(header(3));
        body.extend([1, 2, 3]);
        body.extend(header(64 << 20));
        for split in 1..body.len() {
            let mut gate = MessageLimit::new(Body::empty(), 1024);
            let found = body.chunks(split).find_map(|c| gate.oversized_in(c));
            assert_eq!(found, Some(64 << 20), "split every {split} bytes");
        }
        // Messages within the limit pass, payload bytes are not headers.
        let mut ok = header(6);
        ok.extend([0xff; 6]);
        ok.extend(header(1024));
        let mut gate = MessageLimit::new(Body::empty(), 1024);
        assert_eq!(gate.oversized_in(&ok), None);
    }
}
