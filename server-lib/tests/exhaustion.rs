//! Anyone who can connect, token or not, must not be able to hold the
//! server's descriptors: connections are capped, and one that never starts
//! speaking HTTP/2 is closed after the handshake time.

use idict::client::{Client, ConnectOptions, Target};
use idict::{IDict, ServeOptions, Server};
use std::time::{Duration, Instant};
use tokio::io::AsyncReadExt;
use tokio::net::TcpStream;

fn serve_with(idict: &IDict, opts: ServeOptions) -> (Server, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let server = opts
        .runs_dir(dir.path())
        .announce(false)
        .serve(idict)
        .unwrap();
    (server, dir)
}

fn socket_addr(server: &Server) -> String {
    server.address().trim_start_matches("http://").to_string()
}

/// A client that got in: connected and answered, within 10 s (a hang
/// fails the test rather than stalling it).
async fn client(server: &Server) -> Result<Client, String> {
    let target = Target::at(server.address(), Some(server.tokens().observer.clone()));
    let opts = ConnectOptions {
        connect_timeout: Duration::from_secs(2),
        ..ConnectOptions::default()
    };
    let attempt = async {
        let c = Client::connect_target(target, opts).await?;
        c.info().await?;
        Ok::<_, idict::client::ClientError>(c)
    };
    match tokio::time::timeout(Duration::from_secs(10), attempt).await {
        Ok(r) => r.map_err(|e| e.to_string()),
        Err(_) => panic!("connecting hung for 10 s"),
    }
}

/// Reads until the server closes the connection; how long that took, or
/// None if it was still open after `limit`.
async fn closed_within(s: &mut TcpStream, limit: Duration) -> Option<Duration> {
    let start = Instant::now();
    let mut buf = [0u8; 256];
    loop {
        match tokio::time::timeout_at((start + limit).into(), s.read(&mut buf)).await {
            Err(_) => return None,
            Ok(Ok(0)) | Ok(Err(_)) => return Some(start.elapsed()),
            Ok(Ok(_)) => {} // the server's SETTINGS
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_connection_that_never_speaks_is_closed_after_the_handshake_time() {
    let idict = IDict::new("silent");
    let opts = ServeOptions {
        handshake_timeout: Duration::from_millis(300),
        ..ServeOptions::default()
    };
    let (server, _dir) = serve_with(&idict, opts);
    let mut silent = TcpStream::connect(socket_addr(&server)).await.unwrap();
    let took = closed_within(&mut silent, Duration::from_secs(5)).await;
    assert!(
        took.is_some(),
        "a connection that sent nothing was still open after 5 s"
    );
    // A client that speaks is not cut off, however long it stays.
    let c = client(&server).await.unwrap();
    tokio::time::sleep(Duration::from_millis(800)).await;
    assert!(c.info().await.is_ok(), "a live client was cut off");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connections_over_the_cap_are_closed_and_slots_come_back() {
    let idict = IDict::new("capped");
    let opts = ServeOptions {
        max_connections: 4,
        handshake_timeout: Duration::from_secs(60),
        ..ServeOptions::default()
    };
    let (server, _dir) = serve_with(&idict, opts);
    let addr = socket_addr(&server);
    let mut held = Vec::new();
    for _ in 0..4 {
        held.push(TcpStream::connect(&addr).await.unwrap());
    }
    // Give the server time to accept them all.
    tokio::time::sleep(Duration::from_millis(200)).await;
    let mut fifth = TcpStream::connect(&addr).await.unwrap();
    assert!(
        closed_within(&mut fifth, Duration::from_secs(2))
            .await
            .is_some(),
        "a fifth connection was kept over a cap of 4"
    );
    // One leaves: its slot comes back (a new connection is kept).
    held.pop();
    let start = Instant::now();
    loop {
        let mut next = TcpStream::connect(&addr).await.unwrap();
        if closed_within(&mut next, Duration::from_millis(500))
            .await
            .is_none()
        {
            held.push(next);
            break;
        }
        assert!(
            start.elapsed() < Duration::from_secs(10),
            "the freed slot never came back"
        );
    }
    // All leave: a real client gets in.
    held.clear();
    let start = Instant::now();
    while client(&server).await.is_err() {
        assert!(
            start.elapsed() < Duration::from_secs(10),
            "no client got in after the connections left"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn watches_per_token_are_capped_and_slots_come_back() {
    use futures::StreamExt;
    let idict = IDict::new("watched");
    idict.lock().insert("x", 1.0);
    idict.notify_update().unwrap();
    let opts = ServeOptions {
        max_streams_per_token: 2,
        ..ServeOptions::default()
    };
    let (server, _dir) = serve_with(&idict, opts);
    let observer = client(&server).await.unwrap();
    let mut first = observer.watch(Default::default()).await.unwrap();
    assert!(first.next().await.is_some());
    let mut second = observer.watch(Default::default()).await.unwrap();
    assert!(second.next().await.is_some());
    let third = observer.watch(Default::default()).await;
    assert!(
        matches!(&third, Err(idict::client::ClientError::ResourceExhausted(m)) if m.contains("2 Watch and GetHistory streams")),
        "{:?}",
        third.err()
    );
    // The other token has slots of its own.
    let target = Target::at(server.address(), Some(server.tokens().controller.clone()));
    let controller = Client::connect_target(target, ConnectOptions::default())
        .await
        .unwrap();
    assert!(controller.watch(Default::default()).await.is_ok());
    // A GetHistory stream takes a slot of the same kind.
    let history = observer.history(&["x"], 0).await;
    assert!(
        matches!(
            &history,
            Err(idict::client::ClientError::ResourceExhausted(_))
        ),
        "{history:?}"
    );
    // A watch that ends gives its slot back.
    drop(first);
    let start = Instant::now();
    while observer.watch(Default::default()).await.is_err() {
        assert!(
            start.elapsed() < Duration::from_secs(10),
            "the slot never came back"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    drop(second);
}

/// A GetSnapshot answer is a copy of the whole state: one a client never
/// takes (a 1-byte window) keeps its slot, so a token holder cannot make
/// the run hold hundreds of copies; the slot comes back when the stream
/// goes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn snapshots_being_sent_are_capped_per_token_and_slots_come_back() {
    use prost::Message;
    use tonic::codegen::http;
    let idict = IDict::new("snapped");
    let big = idict::NdArray::from_f64_vec(vec![0.5; 1 << 19], vec![1 << 19]).unwrap();
    idict.lock().insert("field", idict::Value::Array(big));
    idict.notify_update().unwrap();
    let opts = ServeOptions {
        max_snapshots_per_token: 2,
        ..ServeOptions::default()
    };
    let (server, _dir) = serve_with(&idict, opts);
    let observer = client(&server).await.unwrap();
    assert!(observer.snapshot("").await.is_ok(), "one at a time is fine");

    // Two snapshots whose client lets one byte in.
    let tcp = TcpStream::connect(socket_addr(&server)).await.unwrap();
    let (h2, conn) = h2::client::Builder::new()
        .initial_window_size(1)
        .handshake::<_, bytes::Bytes>(tcp)
        .await
        .unwrap();
    tokio::spawn(conn);
    let mut h2 = h2.ready().await.unwrap();
    // One gRPC message: no compression, its length, the request.
    let request = idict::proto::v1::GetSnapshotRequest::default().encode_to_vec();
    let mut body = vec![0u8];
    body.extend((request.len() as u32).to_be_bytes());
    body.extend(request);
    let mut stalled = Vec::new();
    for _ in 0..2 {
        let req = http::Request::post(format!(
            "{}/idict.v1.Inspector/GetSnapshot",
            server.address()
        ))
        .header("content-type", "application/grpc")
        .header("te", "trailers")
        .header(
            "authorization",
            format!("Bearer {}", server.tokens().observer),
        )
        .body(())
        .unwrap();
        let (reply, mut send) = h2.send_request(req, false).unwrap();
        send.send_data(body.clone().into(), true).unwrap();
        let reply = tokio::time::timeout(Duration::from_secs(10), reply)
            .await
            .expect("headers come")
            .unwrap();
        stalled.push(reply);
        h2 = h2.ready().await.unwrap();
    }
    let third = observer.snapshot("").await;
    assert!(
        matches!(&third, Err(idict::client::ClientError::ResourceExhausted(m)) if m.contains("2 snapshots being sent")),
        "{:?}",
        third.err()
    );
    // The other token has slots of its own.
    let target = Target::at(server.address(), Some(server.tokens().controller.clone()));
    let controller = Client::connect_target(target, ConnectOptions::default())
        .await
        .unwrap();
    assert!(controller.snapshot("").await.is_ok());
    // The stalled streams go: their slots come back.
    drop(stalled);
    drop(h2);
    let start = Instant::now();
    while observer.snapshot("").await.is_err() {
        assert!(
            start.elapsed() < Duration::from_secs(10),
            "the slots never came back"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}
