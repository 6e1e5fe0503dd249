//! Anyone who can connect, token or not, must not be able to hold the
//! server's descriptors, nor keep real clients out: connections are capped,
//! one that never starts speaking HTTP/2 is closed after the handshake
//! time, one that makes no request with a valid token after the auth time,
//! and when every slot is taken it is connections without a valid token
//! that give way to new ones, never those that have shown one.

use idict::client::{Client, ConnectOptions, Target};
use idict::{IDict, ServeOptions, Server};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite};
use tokio::net::TcpStream;
use tonic::codegen::http;

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
    let address = server.address();
    let address = address.trim_start_matches("http://");
    address.trim_start_matches("https://").to_string()
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

/// An HTTP/2 connection that makes no request unless told to: its preface
/// and SETTINGS sent, the server's SETTINGS and PINGs answered by its
/// driver, as a real client's would be.
struct H2Conn {
    send: h2::client::SendRequest<bytes::Bytes>,
    driver: tokio::task::JoinHandle<()>,
}

impl H2Conn {
    async fn over<IO>(io: IO) -> H2Conn
    where
        IO: AsyncRead + AsyncWrite + Unpin + Send + 'static,
    {
        let (send, conn) = h2::client::handshake(io).await.unwrap();
        let driver = tokio::spawn(async move {
            let _ = conn.await;
        });
        H2Conn { send, driver }
    }

    async fn to(addr: &str) -> H2Conn {
        H2Conn::over(TcpStream::connect(addr).await.unwrap()).await
    }

    /// The server has closed it.
    fn is_closed(&self) -> bool {
        self.driver.is_finished()
    }

    /// A GetInfo with `token`: its grpc-status ("0" answered, "16" refused
    /// for the token).
    async fn get_info(&self, address: &str, token: &str) -> Result<String, String> {
        let mut send = self.send.clone().ready().await.map_err(|e| e.to_string())?;
        let req = http::Request::post(format!("{address}/idict.v1.Inspector/GetInfo"))
            .header("content-type", "application/grpc")
            .header("te", "trailers")
            .header("authorization", format!("Bearer {token}"))
            .body(())
            .map_err(|e| e.to_string())?;
        let (reply, mut body) = send.send_request(req, false).map_err(|e| e.to_string())?;
        // One empty message: not compressed, 0 bytes. A refusal may end the
        // stream before it is sent.
        let _ = body.send_data(bytes::Bytes::from_static(&[0; 5]), true);
        let reply = tokio::time::timeout(Duration::from_secs(5), reply)
            .await
            .map_err(|_| "no answer within 5 s".to_string())?
            .map_err(|e| e.to_string())?;
        // A refusal is all headers.
        if let Some(status) = reply.headers().get("grpc-status") {
            return Ok(status.to_str().unwrap_or("?").to_string());
        }
        let mut answer = reply.into_body();
        while let Some(chunk) = answer.data().await {
            let chunk = chunk.map_err(|e| e.to_string())?;
            let _ = answer.flow_control().release_capacity(chunk.len());
        }
        let trailers = answer.trailers().await.map_err(|e| e.to_string())?;
        Ok(trailers
            .and_then(|t| t.get("grpc-status")?.to_str().ok().map(str::to_string))
            .unwrap_or_default())
    }
}

fn closed(conns: &[H2Conn]) -> usize {
    conns.iter().filter(|c| c.is_closed()).count()
}

/// Waits until `done` holds, for at most `limit`; whether it did.
async fn eventually(limit: Duration, mut done: impl FnMut() -> bool) -> bool {
    let start = Instant::now();
    while !done() {
        if start.elapsed() > limit {
            return false;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    true
}

/// How many of `conns` the server has closed, once `expected` have (or 2 s
/// have passed), and a little later, so that one more going is seen.
async fn closed_by_now(conns: &[H2Conn], expected: usize) -> usize {
    eventually(Duration::from_secs(2), || closed(conns) >= expected).await;
    tokio::time::sleep(Duration::from_millis(100)).await;
    closed(conns)
}

fn crowded(max_connections: usize) -> ServeOptions {
    ServeOptions {
        max_connections,
        handshake_timeout: Duration::from_secs(60),
        auth_timeout: Duration::from_secs(60),
        ..ServeOptions::default()
    }
}

#[test]
fn limits_of_zero_are_refused_when_serving() {
    let zero = [
        ServeOptions {
            max_connections: 0,
            ..ServeOptions::default()
        },
        ServeOptions {
            handshake_timeout: Duration::ZERO,
            ..ServeOptions::default()
        },
        ServeOptions {
            auth_timeout: Duration::ZERO,
            ..ServeOptions::default()
        },
    ];
    for (opts, name) in
        zero.into_iter()
            .zip(["max_connections", "handshake_timeout", "auth_timeout"])
    {
        let idict = IDict::new("zero");
        let refused = opts.write_run_file(false).announce(false).serve(&idict);
        let Err(e) = refused else {
            panic!("{name} = 0 was served");
        };
        assert!(e.to_string().contains(name), "{e}");
        // Nothing is left behind: the run can still be served.
        assert!(
            ServeOptions::default()
                .write_run_file(false)
                .announce(false)
                .serve(&idict)
                .is_ok()
        );
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

/// A connection over the cap no longer gets closed at once while others
/// have shown no token: one of those gives way.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_connection_over_the_cap_takes_the_place_of_one_that_never_spoke() {
    let idict = IDict::new("capped");
    let (server, _dir) = serve_with(&idict, crowded(4));
    let addr = socket_addr(&server);
    let mut held = Vec::new();
    for _ in 0..4 {
        held.push(TcpStream::connect(&addr).await.unwrap());
    }
    // Give the server time to accept them all.
    tokio::time::sleep(Duration::from_millis(200)).await;
    let mut fifth = TcpStream::connect(&addr).await.unwrap();
    assert!(
        closed_within(&mut fifth, Duration::from_millis(500))
            .await
            .is_none(),
        "a fifth connection was closed while four had shown no token"
    );
    let gone = futures::future::join_all(
        held.iter_mut()
            .map(|s| closed_within(s, Duration::from_millis(500))),
    )
    .await;
    assert_eq!(
        gone.iter().filter(|g| g.is_some()).count(),
        1,
        "not exactly one of the four gave way"
    );
    // A real client gets in the same way.
    assert!(client(&server).await.is_ok(), "a client was kept out");
}

/// The attack, small: idle HTTP/2 connections (preface, SETTINGS,
/// PINGs answered, no request) in every slot.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idle_http2_connections_in_every_slot_do_not_keep_a_client_out() {
    let idict = IDict::new("crowded");
    let (server, _dir) = serve_with(&idict, crowded(8));
    let addr = socket_addr(&server);
    let mut idle = Vec::new();
    for _ in 0..8 {
        idle.push(H2Conn::to(&addr).await);
    }
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(
        closed(&idle),
        0,
        "the server closed some before it was full"
    );

    // A client with a token gets in, in the place of one of them.
    let mut clients = vec![client(&server).await.expect("a client was kept out")];
    assert_eq!(closed_by_now(&idle, 1).await, 1);
    // Each new client takes another's place, never a client's.
    for _ in 1..8 {
        clients.push(client(&server).await.expect("a client was kept out"));
    }
    assert_eq!(closed_by_now(&idle, 8).await, 8);
    // Every slot holds a connection that has shown its token: as before
    // eviction existed, one more is closed at once, and those stay.
    assert!(
        client(&server).await.is_err(),
        "a ninth connection was kept over a cap of 8"
    );
    for c in &clients {
        assert!(c.info().await.is_ok(), "a client lost its connection");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_connection_that_has_shown_a_token_is_never_closed_to_make_room() {
    use futures::StreamExt;
    let idict = IDict::new("watched-through-a-flood");
    idict.lock().insert("x", 0.0);
    idict.notify_update().unwrap();
    let (server, _dir) = serve_with(&idict, crowded(8));
    let addr = socket_addr(&server);
    let watcher = client(&server).await.unwrap();
    let mut updates = watcher.watch(Default::default()).await.unwrap();
    assert!(matches!(updates.next().await, Some(Ok(_))));

    // The run goes on publishing; the watch is read as it comes.
    let stop = Arc::new(AtomicBool::new(false));
    let publisher = {
        let idict = idict.clone();
        let stop = stop.clone();
        std::thread::spawn(move || {
            let mut i = 1u64;
            while !stop.load(Ordering::Relaxed) {
                idict.lock().insert("x", i as f64);
                let _ = idict.notify_update();
                i += 1;
                std::thread::sleep(Duration::from_millis(2));
            }
        })
    };
    let seen = Arc::new(AtomicU64::new(0));
    let reader = {
        let seen = seen.clone();
        tokio::spawn(async move {
            while let Some(update) = updates.next().await {
                match update {
                    Ok(u) => seen.store(u.version, Ordering::Relaxed),
                    Err(e) => return e.to_string(),
                }
            }
            "the stream ended".to_string()
        })
    };

    // 200 idle connections: past the 7 free slots, each takes the place
    // of one without a token.
    let mut idle = Vec::new();
    for _ in 0..200 {
        idle.push(H2Conn::to(&addr).await);
    }
    let after_flood = seen.load(Ordering::Relaxed);
    assert!(
        eventually(Duration::from_secs(5), || seen.load(Ordering::Relaxed)
            > after_flood)
        .await,
        "the watch stopped receiving updates"
    );
    assert!(!reader.is_finished(), "the watch ended");
    assert!(
        eventually(Duration::from_secs(2), || idle.len() - closed(&idle) <= 7).await,
        "{} idle connections open beside the watcher, over a cap of 8",
        idle.len() - closed(&idle)
    );
    // They were let in, each in the place of an older one (the old cap
    // closed every one over it at once): the newest is open.
    assert!(
        idle.last().is_some_and(|c| !c.is_closed()),
        "the newest idle connection was refused"
    );
    assert!(watcher.info().await.is_ok());
    stop.store(true, Ordering::Relaxed);
    publisher.join().unwrap();
    reader.abort();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_connection_without_a_valid_token_is_closed_after_the_auth_time() {
    let idict = IDict::new("impatient");
    let opts = ServeOptions {
        handshake_timeout: Duration::from_secs(5),
        auth_timeout: Duration::from_millis(500),
        ..ServeOptions::default()
    };
    let (server, _dir) = serve_with(&idict, opts);
    let addr = socket_addr(&server);
    let start = Instant::now();
    // Speaks HTTP/2, asks nothing.
    let idle = H2Conn::to(&addr).await;
    // Asks with a wrong token: refused, and no better than the idle one.
    let wrong = H2Conn::to(&addr).await;
    let refused = wrong.get_info(server.address(), "not-the-token").await;
    assert_eq!(refused.as_deref(), Ok("16"));
    // Asks with a valid token.
    let shown = H2Conn::to(&addr).await;
    let observer = server.tokens().observer.clone();
    let answered = shown.get_info(server.address(), &observer).await;
    assert_eq!(answered.as_deref(), Ok("0"));

    assert!(
        eventually(Duration::from_secs(5), || idle.is_closed()
            && wrong.is_closed())
        .await,
        "a connection without a valid token was still open after 5 s"
    );
    let took = start.elapsed();
    assert!(
        took >= Duration::from_millis(450),
        "closed after {took:?}, before the auth time"
    );
    // The one that showed its token stays, and is still answered.
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert!(
        !shown.is_closed(),
        "a connection that showed its token was closed"
    );
    let again = shown.get_info(server.address(), &observer).await;
    assert_eq!(again.as_deref(), Ok("0"));
}

/// Under TLS, tonic hands the gate the connection's `Peer` from inside its
/// `TlsConnectInfo`: a client's token must count there too.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn under_tls_a_connection_that_has_shown_a_token_keeps_its_slot() {
    use futures::StreamExt;
    let ck =
        rcgen::generate_simple_self_signed(vec!["localhost".to_string(), "127.0.0.1".to_string()])
            .expect("certificate");
    let ca = ck.cert.pem().into_bytes();
    let identity = idict::TlsIdentity {
        cert_pem: ca.clone(),
        key_pem: ck.signing_key.serialize_pem().into_bytes(),
    };
    let idict = IDict::new("crowded-tls");
    idict.lock().insert("x", 1.0);
    idict.notify_update().unwrap();
    let (server, _dir) = serve_with(&idict, crowded(4).tls(identity));
    assert!(server.address().starts_with("https://"));
    let connect = || {
        let target = Target::at(server.address(), Some(server.tokens().observer.clone()));
        let opts = ConnectOptions {
            tls_ca_pem: Some(ca.clone()),
            tls_domain: Some("localhost".into()),
            ..ConnectOptions::default()
        };
        Client::connect_target(target, opts)
    };
    let watcher = connect().await.unwrap();
    let mut updates = watcher.watch(Default::default()).await.unwrap();
    assert!(matches!(updates.next().await, Some(Ok(_))));
    // Bare connections, each stuck in its TLS handshake: past the 3 free
    // slots, each takes the place of one without a token.
    let addr = socket_addr(&server);
    let mut bare = Vec::new();
    for _ in 0..20 {
        bare.push(TcpStream::connect(&addr).await.unwrap());
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    // The watcher's connection is still served.
    idict.lock().insert("x", 2.0);
    idict.notify_update().unwrap();
    let next = tokio::time::timeout(Duration::from_secs(5), updates.next()).await;
    assert!(
        matches!(next, Ok(Some(Ok(_)))),
        "the watch over TLS broke or stalled"
    );
    // And a new TLS client still gets in.
    let other = connect().await.unwrap();
    assert!(other.info().await.is_ok());
}

#[cfg(unix)]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn on_a_unix_socket_idle_connections_give_way_to_a_client() {
    let dir = tempfile::tempdir().unwrap();
    let sock = dir.path().join("run.sock");
    let idict = IDict::new("crowded-uds");
    let opts = crowded(4).bind(idict::Bind::Unix(sock.clone()));
    let (server, _runs) = serve_with(&idict, opts);
    let mut idle = Vec::new();
    for _ in 0..4 {
        let io = tokio::net::UnixStream::connect(&sock).await.unwrap();
        idle.push(H2Conn::over(io).await);
    }
    tokio::time::sleep(Duration::from_millis(200)).await;
    let c = client(&server).await.expect("a client was kept out");
    assert_eq!(closed_by_now(&idle, 1).await, 1);
    assert!(c.info().await.is_ok());
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
