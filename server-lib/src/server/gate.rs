//! The gate every request passes before any of its body is read: the token
//! (which role), the role the RPC needs, and the most body bytes that RPC
//! may bring. An observer's Set used to be decoded in full (gigabytes, for
//! a list of 33 M empty values) before it was refused.

use super::auth::Tokens;
use crate::model::Role;
use futures::future::{Either, Ready, ready};
use http_body_util::BodyExt;
use std::convert::Infallible;
use std::sync::Arc;
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

/// What an RPC needs: a role, and a cap on its request body.
fn policy(path: &str, set_bytes: usize) -> (Role, usize) {
    match path {
        "/idict.v1.Inspector/Set" => (Role::Controller, set_bytes),
        "/idict.v1.Inspector/Control" => (Role::Controller, SMALL_REQUEST_BYTES),
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
    pub tokens: Arc<Tokens>,
    /// The cap on a Set's body (`ServeOptions::max_request_bytes`).
    pub set_bytes: usize,
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
{
    type Response = Response<Body>;
    type Error = Infallible;
    type Future = Either<Ready<Result<Response<Body>, Infallible>>, S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut req: Request<Body>) -> Self::Future {
        let (needs, limit) = policy(req.uri().path(), self.layer.set_bytes);
        let role = match authenticate(&self.layer.tokens, &req) {
            Ok(role) => role,
            Err(status) => return Either::Left(ready(Ok(status.into_http()))),
        };
        if needs == Role::Controller && role == Role::Observer {
            let rpc = req.uri().path().rsplit('/').next().unwrap_or("this call");
            let status = super::auth::observer_refused(rpc);
            return Either::Left(ready(Ok(status.into_http())));
        }
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
        Either::Right(self.inner.call(req))
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
