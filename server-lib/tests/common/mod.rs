//! Shared pieces of the wire tests: a real server on 127.0.0.1:0 with a
//! private runs directory, and a real client connected to it.

#![allow(dead_code)]

pub mod raw;

use idict::client::{Client, ConnectOptions, Target, Update};
use idict::{IDict, ServeOptions, Server};
use std::time::{Duration, Instant};

pub struct Run {
    pub idict: IDict,
    pub server: Server,
    pub runs_dir: tempfile::TempDir,
}

pub fn serve(idict: &IDict) -> Run {
    let runs_dir = tempfile::tempdir().expect("tempdir");
    let server = ServeOptions::default()
        .runs_dir(runs_dir.path())
        .announce(false)
        .serve(idict)
        .expect("serve");
    Run {
        idict: idict.clone(),
        server,
        runs_dir,
    }
}

impl Run {
    pub async fn client_with(&self, token: Option<&str>) -> Client {
        let target = Target {
            address: self.server.address().to_string(),
            token: token.map(str::to_string),
            run: None,
        };
        let opts = ConnectOptions {
            client_name: "test-client".into(),
            ..ConnectOptions::default()
        };
        Client::connect_target(target, opts).await.expect("connect")
    }

    /// A client with the controller token.
    pub async fn controller(&self) -> Client {
        let t = self.server.tokens().controller.clone();
        self.client_with(Some(&t)).await
    }

    pub async fn observer(&self) -> Client {
        let t = self.server.tokens().observer.clone();
        self.client_with(Some(&t)).await
    }
}

/// Polls `f` until it is true, failing after 20 s.
pub async fn eventually(what: &str, mut f: impl FnMut() -> bool) {
    let start = Instant::now();
    while !f() {
        assert!(
            start.elapsed() < Duration::from_secs(20),
            "timed out waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
}

/// The next update of a watch stream, failing after 20 s.
pub async fn next<S>(s: &mut S) -> Update
where
    S: futures::Stream<Item = Result<Update, idict::client::ClientError>> + Unpin,
{
    use futures::StreamExt;
    tokio::time::timeout(Duration::from_secs(20), s.next())
        .await
        .expect("an update within 20 s")
        .expect("the stream has not ended")
        .expect("no error")
}

pub fn value_of<'a>(u: &'a Update, key: &str) -> Option<&'a idict::Value> {
    u.changed.iter().find(|(k, _)| k == key).map(|(_, v)| v)
}

/// Reads a watch stream up to its last update; returns it and how many
/// updates came in all. Fails after 20 s.
pub async fn until_last<S>(s: &mut S) -> (Update, usize)
where
    S: futures::Stream<Item = Result<Update, idict::client::ClientError>> + Unpin,
{
    let mut count = 0;
    let read = async {
        loop {
            let u = next(s).await;
            count += 1;
            if u.last {
                return u;
            }
        }
    };
    let last = tokio::time::timeout(Duration::from_secs(20), read)
        .await
        .expect("the watch ends within 20 s");
    (last, count)
}

/// The generated gRPC client on `address`, sending `token`: what a client
/// in another language sees, with no joining of chunks or parts.
pub async fn raw_inspector(
    address: &str,
    token: &str,
) -> idict::proto::v1::inspector_client::InspectorClient<
    tonic::codegen::InterceptedService<
        tonic::transport::Channel,
        impl FnMut(tonic::Request<()>) -> Result<tonic::Request<()>, tonic::Status> + Clone,
    >,
> {
    let channel = tonic::transport::Endpoint::from_shared(address.to_string())
        .expect("an address")
        .connect()
        .await
        .expect("connect");
    let bearer: tonic::metadata::MetadataValue<_> =
        format!("Bearer {token}").parse().expect("a token");
    idict::proto::v1::inspector_client::InspectorClient::with_interceptor(
        channel,
        move |mut r: tonic::Request<()>| {
            r.metadata_mut().insert("authorization", bearer.clone());
            Ok(r)
        },
    )
    .max_decoding_message_size(usize::MAX)
}
