//! Whatever an observer (the read-only token) sends, to whichever RPC, a
//! real server in this process answers it with a gRPC status and goes on:
//! Set and Control are refused PERMISSION_DENIED before their bodies are
//! read, no request makes the process allocate more than 64 MiB (an
//! observer's Set once cost 2.2 GB before it was refused), and GetInfo
//! still answers afterwards. Requests go over a raw HTTP/2 connection, so
//! the fuzzer controls the whole body: gRPC headers that lie about their
//! length, truncated messages, bytes that are no message at all.
#![no_main]

use bytes::Bytes;
use idict::{IDict, ServeOptions, Server, Value};
use libfuzzer_sys::fuzz_target;
use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::OnceLock;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

/// Counts the bytes the whole process holds, and the most it has held
/// since the last reset: the server runs in this process.
struct Counting;

static HELD: AtomicUsize = AtomicUsize::new(0);
static PEAK: AtomicUsize = AtomicUsize::new(0);

unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        let p = unsafe { System.alloc(layout) };
        if !p.is_null() {
            let now = HELD.fetch_add(layout.size(), Ordering::Relaxed) + layout.size();
            PEAK.fetch_max(now, Ordering::Relaxed);
        }
        p
    }
    unsafe fn dealloc(&self, p: *mut u8, layout: Layout) {
        unsafe { System.dealloc(p, layout) };
        HELD.fetch_sub(layout.size(), Ordering::Relaxed);
    }
    unsafe fn realloc(&self, p: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        let q = unsafe { System.realloc(p, layout, new_size) };
        if !q.is_null() {
            if new_size >= layout.size() {
                let grow = new_size - layout.size();
                let now = HELD.fetch_add(grow, Ordering::Relaxed) + grow;
                PEAK.fetch_max(now, Ordering::Relaxed);
            } else {
                HELD.fetch_sub(layout.size() - new_size, Ordering::Relaxed);
            }
        }
        q
    }
}

#[global_allocator]
static ALLOC: Counting = Counting;

/// The most a single request may make the process allocate.
const MAX_GROWTH: usize = 64 << 20;

const RPCS: &[&str] = &[
    "/idict.v1.Inspector/Set",
    "/idict.v1.Inspector/Control",
    "/idict.v1.Inspector/GetInfo",
    "/idict.v1.Inspector/GetSnapshot",
    "/idict.v1.Inspector/Watch",
    "/idict.v1.Inspector/GetHistory",
    "/grpc.health.v1.Health/Check",
    "/grpc.reflection.v1.ServerReflection/ServerReflectionInfo",
    "/idict.v1.Inspector/NoSuchCall",
];

/// Needs the role the observer lacks.
fn controller_only(path: &str) -> bool {
    path.ends_with("/Set") || path.ends_with("/Control")
}

struct Harness {
    rt: tokio::runtime::Runtime,
    // Kept alive: the run and its server.
    _idict: IDict,
    _server: Server,
    _runs: tempfile::TempDir,
    addr: String,
    observer: String,
    h2: std::sync::Mutex<Option<h2::client::SendRequest<Bytes>>>,
    calls: AtomicUsize,
}

fn harness() -> &'static Harness {
    static H: OnceLock<Harness> = OnceLock::new();
    H.get_or_init(|| {
        let idict = IDict::new("fuzzed");
        idict.writable("x", Value::Float(1.0));
        idict.writable("names", Value::List(vec![Value::Str("a".into())]));
        for i in 0..20 {
            idict.lock().insert("x", Value::Float(i as f64));
            idict.notify_update().expect("publish");
        }
        let runs = tempfile::tempdir().expect("tempdir");
        let server = ServeOptions::default()
            .runs_dir(runs.path())
            .announce(false)
            .serve(&idict)
            .expect("serve");
        let addr = server.address().trim_start_matches("http://").to_string();
        let observer = server.tokens().observer.clone();
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("runtime");
        Harness {
            rt,
            _idict: idict,
            _server: server,
            _runs: runs,
            addr,
            observer,
            h2: std::sync::Mutex::new(None),
            calls: AtomicUsize::new(0),
        }
    })
}

/// A hang is a finding too: every wait is bounded.
const PATIENCE: Duration = Duration::from_secs(10);

async fn connect(addr: &str) -> h2::client::SendRequest<Bytes> {
    let tcp = tokio::time::timeout(PATIENCE, tokio::net::TcpStream::connect(addr))
        .await
        .expect("the server accepts within 10 s")
        .expect("the server accepts connections");
    let (h2, conn) = tokio::time::timeout(PATIENCE, h2::client::handshake(tcp))
        .await
        .expect("the HTTP/2 handshake ends within 10 s")
        .expect("the server speaks HTTP/2");
    tokio::spawn(async move {
        let _ = conn.await;
    });
    h2
}

/// Sends one request and returns its grpc-status, or None when the
/// response is a stream that is still open (a Watch that was accepted).
async fn call(h: &Harness, path: &str, body: Bytes) -> Option<u32> {
    let cached = h.h2.lock().expect("not poisoned").take();
    let h2 = match cached {
        Some(h2) => h2,
        None => connect(&h.addr).await,
    };
    let ready = tokio::time::timeout(PATIENCE, h2.ready()).await;
    let mut h2 = match ready.expect("the connection is ready within 10 s") {
        Ok(h2) => h2,
        // The server may close a connection it has had enough of (GOAWAY):
        // a new one must be let in.
        Err(_) => tokio::time::timeout(PATIENCE, connect(&h.addr).await.ready())
            .await
            .expect("a new connection is ready within 10 s")
            .expect("a new connection"),
    };
    let req = http::Request::post(format!("http://{}{path}", h.addr))
        .header("content-type", "application/grpc")
        .header("te", "trailers")
        .header("authorization", format!("Bearer {}", h.observer))
        .body(())
        .expect("request");
    let (reply, mut send) = h2.send_request(req, false).expect("send");
    *h.h2.lock().expect("not poisoned") = Some(h2);
    let _ = send.send_data(body, true);
    let reply = tokio::time::timeout(PATIENCE, reply)
        .await
        .unwrap_or_else(|_| panic!("{path}: no answer in 10 s"));
    let reply = match reply {
        Ok(r) => r,
        // A reset stream (e.g. a body larger than the call takes) is an
        // answer, and cost the server nothing to give.
        Err(e) if e.is_reset() => return None,
        Err(e) => panic!("{path}: the connection failed: {e}"),
    };
    if let Some(code) = reply.headers().get("grpc-status") {
        return code.to_str().ok().and_then(|c| c.parse().ok());
    }
    let mut body = reply.into_body();
    let read = async {
        while let Some(chunk) = body.data().await {
            let Ok(chunk) = chunk else { return None };
            let _ = body.flow_control().release_capacity(chunk.len());
        }
        let trailers = body.trailers().await.ok()??;
        trailers
            .get("grpc-status")?
            .to_str()
            .ok()
            .and_then(|c| c.parse().ok())
    };
    // A watch goes on until the run ends: stop reading it soon (the stream
    // is reset). Any other answer must end.
    if path.ends_with("/Watch") {
        tokio::time::timeout(Duration::from_millis(20), read)
            .await
            .ok()
            .flatten()
    } else {
        tokio::time::timeout(PATIENCE, read)
            .await
            .unwrap_or_else(|_| panic!("{path}: the answer did not end in 10 s"))
    }
}

fuzz_target!(|data: &[u8]| {
    let Some((&pick, rest)) = data.split_first() else {
        return;
    };
    let Some((&how, rest)) = rest.split_first() else {
        return;
    };
    let path = RPCS[pick as usize % RPCS.len()];
    // Half the inputs get a true gRPC header, so the fuzzer reaches the
    // decoders; the rest are sent as they are, headers and all.
    let body = if how & 1 == 1 {
        let mut framed = Vec::with_capacity(rest.len() + 5);
        framed.push(0);
        framed.extend_from_slice(&(rest.len() as u32).to_be_bytes());
        framed.extend_from_slice(rest);
        Bytes::from(framed)
    } else {
        Bytes::copy_from_slice(rest)
    };
    let h = harness();
    let before = HELD.load(Ordering::Relaxed);
    PEAK.store(before, Ordering::Relaxed);
    let code = h.rt.block_on(call(h, path, body));
    let grew = PEAK.load(Ordering::Relaxed).saturating_sub(before);
    assert!(
        grew < MAX_GROWTH,
        "{path}: the process grew {grew} bytes for a {}-byte request",
        data.len()
    );
    if controller_only(path) {
        assert_eq!(
            code,
            Some(7),
            "{path}: an observer must get PERMISSION_DENIED"
        );
    }
    // And the run goes on answering.
    if h.calls.fetch_add(1, Ordering::Relaxed) % 128 == 0 {
        // An empty GetInfoRequest: its 5-byte gRPC header and nothing more.
        let empty = Bytes::from_static(&[0, 0, 0, 0, 0]);
        let code = h.rt.block_on(call(h, "/idict.v1.Inspector/GetInfo", empty));
        assert_eq!(code, Some(0), "GetInfo after fuzzed requests");
    }
});
