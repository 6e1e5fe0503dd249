//! Crafted and hostile requests against a real server: each gets a clear
//! gRPC status, and the run goes on untouched.

mod common;

use common::raw::RawCodec;
use common::serve;
use idict::client::{ClientError, ConnectOptions, Target};
use idict::proto::v1 as pb;
use idict::{IDict, RunState, Value};
use prost::Message;
use std::str::FromStr;
use std::time::Duration;
use tonic::codegen::http::uri::PathAndQuery;
use tonic::{Code, Status};

struct Hostile {
    channel: tonic::transport::Channel,
    token: String,
}

impl Hostile {
    async fn new(run: &common::Run) -> Self {
        let channel = tonic::transport::Endpoint::from_shared(run.server.address().to_string())
            .unwrap()
            .connect()
            .await
            .unwrap();
        Hostile {
            channel,
            token: run.server.tokens().controller.clone(),
        }
    }

    async fn call(&self, method: &str, body: Vec<u8>) -> Result<Vec<u8>, Status> {
        let mut grpc = tonic::client::Grpc::new(self.channel.clone())
            .max_encoding_message_size(usize::MAX)
            .max_decoding_message_size(usize::MAX);
        grpc.ready()
            .await
            .map_err(|e| Status::unavailable(e.to_string()))?;
        let mut req = tonic::Request::new(body);
        req.metadata_mut().insert(
            "authorization",
            format!("Bearer {}", self.token).parse().unwrap(),
        );
        let path = PathAndQuery::from_str(&format!("/idict.v1.Inspector/{method}")).unwrap();
        grpc.unary(req, path, RawCodec)
            .await
            .map(|r| r.into_inner())
    }
}

fn len_field(field: u32, body: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    prost::encoding::encode_key(field, prost::encoding::WireType::LengthDelimited, &mut out);
    prost::encoding::encode_varint(body.len() as u64, &mut out);
    out.extend_from_slice(body);
    out
}

/// A Value nested `depth` lists deep, encoded by hand (no recursion here).
fn nested_value(depth: usize) -> Vec<u8> {
    let mut v = pb::Value {
        kind: Some(pb::value::Kind::IntValue(1)),
    }
    .encode_to_vec();
    for _ in 0..depth {
        let list = len_field(1, &v); // ListValue.items
        v = len_field(8, &list); // Value.list_value
    }
    v
}

fn set_body(key: &[u8], value: &[u8]) -> Vec<u8> {
    let mut body = len_field(1, key);
    body.extend(len_field(2, value));
    body
}

fn array(dtype: i32, shape: Vec<u64>, data: Vec<u8>) -> pb::Value {
    pb::Value {
        kind: Some(pb::value::Kind::ArrayValue(pb::NdArray {
            dtype,
            shape,
            data: data.into(),
        })),
    }
}

fn expect(r: Result<Vec<u8>, Status>, code: Code, needle: &str) {
    match r {
        Ok(_) => panic!("expected {code:?}, got a reply"),
        Err(s) => {
            assert_eq!(s.code(), code, "{}", s.message());
            assert!(
                s.message().contains(needle),
                "{:?}: {}",
                s.code(),
                s.message()
            );
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn crafted_requests_get_clear_statuses_and_the_run_goes_on() {
    let idict = IDict::new("hostile");
    idict.writable("dt", 0.1).range(0.0, 1.0);
    idict.writable("field", Value::array(vec![0.0f64; 3], vec![3]).unwrap());
    idict.lock().insert("x", 1);
    idict.notify_update().unwrap();
    let run = serve(&idict);
    let h = Hostile::new(&run).await;

    // Over the request size limit (64 MiB).
    let big = pb::SetRequest {
        key: "field".into(),
        value: Some(array(
            pb::Dtype::F64 as i32,
            vec![9 << 20],
            vec![0u8; 72 << 20],
        )),
        client_name: String::new(),
        at_step: None,
    };
    let r = h.call("Set", big.encode_to_vec()).await;
    assert!(
        matches!(&r, Err(s) if matches!(s.code(), Code::OutOfRange | Code::ResourceExhausted)),
        "{r:?}"
    );

    // 10,000-deep nesting.
    expect(
        h.call("Set", set_body(b"dt", &nested_value(10_000))).await,
        Code::InvalidArgument,
        "malformed message: recursion limit reached",
    );
    // Deep, but within what prost decodes: our own depth limit.
    expect(
        h.call("Set", set_body(b"dt", &nested_value(40))).await,
        Code::InvalidArgument,
        "nested deeper",
    );
    // Array bytes that do not match shape × dtype.
    let bad = array(pb::Dtype::F64 as i32, vec![3], vec![0u8; 16]);
    expect(
        h.call("Set", set_body(b"field", &bad.encode_to_vec()))
            .await,
        Code::InvalidArgument,
        "needs 24 bytes, got 16",
    );
    // A shape whose product overflows.
    let huge = array(pb::Dtype::F64 as i32, vec![1 << 62, 1 << 62], vec![]);
    expect(
        h.call("Set", set_body(b"field", &huge.encode_to_vec()))
            .await,
        Code::InvalidArgument,
        "overflows",
    );
    // Empty, but with a dimension no viewer (numpy) can make.
    let empty_huge = array(pb::Dtype::U8 as i32, vec![0, 1 << 63], vec![]);
    expect(
        h.call("Set", set_body(b"field", &empty_huge.encode_to_vec()))
            .await,
        Code::InvalidArgument,
        "overflows",
    );
    // More dimensions than an array may have.
    let many = array(pb::Dtype::U8 as i32, vec![1; 33], vec![0]);
    expect(
        h.call("Set", set_body(b"field", &many.encode_to_vec()))
            .await,
        Code::InvalidArgument,
        "33 dimensions",
    );
    // A huge value of the wrong type: the error names it, never echoes it.
    let huge_text = pb::Value {
        kind: Some(pb::value::Kind::StrValue("x".repeat(12 << 20))),
    };
    let r = h
        .call("Set", set_body(b"dt", &huge_text.encode_to_vec()))
        .await;
    let Err(s) = r else {
        panic!("a string for a float key was accepted")
    };
    assert_eq!(s.code(), Code::InvalidArgument);
    assert!(
        s.message().contains("dt expects float, got str"),
        "{}",
        s.message()
    );
    assert!(
        s.message().len() < 300,
        "a {} byte error",
        s.message().len()
    );
    // Small on the wire, huge decoded: 2 M empty values in 4 MiB. Counted
    // before prost builds any (a controller's 63 MiB of them took 2.2 GB).
    let empties = pb::Value {
        kind: Some(pb::value::Kind::ListValue(pb::ListValue {
            items: vec![pb::Value::default(); 2 << 20],
        })),
    };
    expect(
        h.call("Set", set_body(b"field", &empties.encode_to_vec()))
            .await,
        Code::ResourceExhausted,
        "more than 1048576 elements",
    );
    // An unknown dtype.
    let odd = array(99, vec![1], vec![0]);
    expect(
        h.call("Set", set_body(b"field", &odd.encode_to_vec()))
            .await,
        Code::InvalidArgument,
        "unknown array dtype 99",
    );
    // A key that is not UTF-8, and a huge one.
    let one = pb::Value {
        kind: Some(pb::value::Kind::FloatValue(0.5)),
    }
    .encode_to_vec();
    expect(
        h.call("Set", set_body(&[0xff, 0xfe], &one)).await,
        Code::InvalidArgument,
        "malformed",
    );
    expect(
        h.call("Set", set_body("k".repeat(1 << 20).as_bytes(), &one))
            .await,
        Code::InvalidArgument,
        "longer than the limit",
    );
    // Garbage that is not a message at all.
    expect(
        h.call("Set", vec![0xff; 64]).await,
        Code::InvalidArgument,
        "malformed",
    );
    // Unknown control actions, and steps of 0.
    let control = |action: i32, steps: u64| {
        pb::ControlRequest {
            action,
            steps,
            ..Default::default()
        }
        .encode_to_vec()
    };
    expect(
        h.call("Control", control(99, 0)).await,
        Code::InvalidArgument,
        "unknown action 99",
    );
    expect(
        h.call("Control", control(pb::Action::Step as i32, 0)).await,
        Code::InvalidArgument,
        "steps >= 1",
    );

    // The run went on untouched.
    assert_eq!(idict.lock().get("dt"), Some(&Value::Float(0.1)));
    idict.wait();
    assert_eq!(
        idict.lock().get("dt"),
        Some(&Value::Float(0.1)),
        "nothing was queued"
    );
    assert_eq!(idict.notify_update(), Ok(2));
    assert_eq!(idict.status().state, RunState::Running);

    // Step by 2^63 is a valid request: the run pauses with that many to go.
    let reply = h
        .call("Control", control(pb::Action::Step as i32, 1 << 63))
        .await
        .unwrap();
    let reply = pb::ControlReply::decode(reply.as_slice()).unwrap();
    let status = reply.status.unwrap();
    assert_eq!(status.state, pb::RunState::Paused as i32);
    assert!(status.steps_pending >= (1 << 63) - 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn writes_to_a_key_the_run_removed_are_refused() {
    let idict = IDict::new("removed");
    idict.writable("gain", 1.0);
    idict.notify_update().unwrap();
    idict.lock().remove("gain");
    idict.notify_update().unwrap();
    let run = serve(&idict);
    let client = run.controller().await;
    let e = client.set("gain", 2.0).await.unwrap_err();
    assert!(
        matches!(&e, ClientError::FailedPrecondition(m) if m.contains("removed")),
        "{e}"
    );
    idict.lock().insert("gain", 1.5);
    idict.notify_update().unwrap();
    assert!(
        client.set("gain", 2.0).await.is_ok(),
        "published again, it takes writes"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_response_larger_than_the_client_accepts_is_a_clear_error() {
    let idict = IDict::new("toolarge");
    idict.lock().insert("u", vec![1.0f64; 1 << 20]);
    idict.notify_update().unwrap();
    let run = serve(&idict);
    let opts = ConnectOptions {
        max_receive_bytes: 1 << 20,
        ..ConnectOptions::default()
    };
    let target = Target::at(
        run.server.address(),
        Some(run.server.tokens().observer.clone()),
    );
    let c = idict::client::Client::connect_target(target, opts)
        .await
        .unwrap();
    let e = c.snapshot("").await.unwrap_err();
    assert!(
        matches!(
            e,
            ClientError::Rpc {
                code: Code::OutOfRange,
                ..
            }
        ),
        "{e}"
    );
    assert_eq!(
        c.info().await.unwrap().version,
        1,
        "the connection and the run go on"
    );
}

/// Whatever a client sends, and however long the run's own texts are, a
/// refusal is a short status: it travels in a header a client stops
/// reading past its limit.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refusals_are_short_whatever_was_sent() {
    let idict = IDict::new("short");
    for i in 0..500 {
        idict.writable(format!("knob{i:03}"), 1.0);
    }
    idict
        .writable("checked", 1.0)
        .validate(|_| Err("too much ".repeat(20_000)));
    idict.lock().insert("x", 1.0);
    idict.notify_update().unwrap();
    let run = serve(&idict);
    let h = Hostile::new(&run).await;
    let short = |r: Result<Vec<u8>, Status>, code: Code, needle: &str| {
        let Err(s) = r else {
            panic!("expected {code:?}")
        };
        assert_eq!(s.code(), code, "{}", s.message());
        assert!(s.message().contains(needle), "{}", s.message());
        assert!(
            s.message().len() <= 1100,
            "a {} byte status",
            s.message().len()
        );
    };
    // GetHistory echoed every key it did not know, of any length.
    let huge_key = pb::GetHistoryRequest {
        keys: vec!["k".repeat(1 << 20)],
        ..Default::default()
    };
    short(
        h.call("GetHistory", huge_key.encode_to_vec()).await,
        Code::InvalidArgument,
        "key",
    );
    let many_keys = pb::GetHistoryRequest {
        keys: (0..5000).map(|i| format!("k{i}")).collect(),
        ..Default::default()
    };
    short(
        h.call("GetHistory", many_keys.encode_to_vec()).await,
        Code::InvalidArgument,
        "at most 4096",
    );
    let client = run.controller().await;
    // Not writable, in a run with 500 writable keys: a few are named.
    let e = client.set("nope", 1.0).await.unwrap_err();
    assert!(
        matches!(&e, ClientError::PermissionDenied(m) if m.contains("and 481 more") && m.len() < 1100),
        "{e}"
    );
    // The run's validator refuses with 180 KB of text: clipped.
    let e = client.set("checked", 2.0).await.unwrap_err();
    assert!(
        matches!(&e, ClientError::InvalidArgument(m) if m.contains("too much") && m.len() <= 1100),
        "{}",
        e.to_string().len()
    );
    // And the run goes on.
    assert!(client.info().await.is_ok());
}

/// The token and the role are checked before a byte of the body is read:
/// an observer's Set used to be decoded in full (2.2 GB for a list of 33 M
/// empty values) before it was refused. Here the body never completes: a
/// server that reads it first would never answer.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_observer_is_refused_before_its_request_is_read() {
    use tonic::codegen::http;
    let idict = IDict::new("gate");
    idict.writable("field", Value::List(vec![]));
    idict.notify_update().unwrap();
    let run = serve(&idict);
    let addr = run
        .server
        .address()
        .trim_start_matches("http://")
        .to_string();
    let tcp = tokio::net::TcpStream::connect(&addr).await.unwrap();
    let (h2, conn) = h2::client::handshake(tcp).await.unwrap();
    tokio::spawn(conn);
    let mut h2 = h2.ready().await.unwrap();
    let call = |rpc: &str, token: &str| {
        http::Request::post(format!("http://{addr}/idict.v1.Inspector/{rpc}"))
            .header("content-type", "application/grpc")
            .header("te", "trailers")
            .header("authorization", format!("Bearer {token}"))
            .body(())
            .unwrap()
    };
    // A message that announces 60 MiB, and only its first KiB.
    let mut head = vec![0u8];
    head.extend_from_slice(&(60u32 << 20).to_be_bytes());
    head.extend(vec![0u8; 1024]);
    // The same behind an empty first message: the fuzzer found that only
    // the first message's length was checked.
    let mut second = vec![0u8; 5];
    second.extend(&head);
    let observer = run.server.tokens().observer.clone();
    for (rpc, token, sent, status) in [
        ("Set", observer.as_str(), &head, "7"), // PERMISSION_DENIED
        ("Control", observer.as_str(), &head, "7"), // PERMISSION_DENIED
        ("Set", "not-the-token", &head, "16"),  // UNAUTHENTICATED
        ("GetInfo", observer.as_str(), &head, "8"), // RESOURCE_EXHAUSTED: 64 KiB at most
        ("GetInfo", observer.as_str(), &second, "8"),
        ("GetHistory", observer.as_str(), &second, "8"), // 5 MiB at most
    ] {
        let (reply, mut body) = h2.send_request(call(rpc, token), false).unwrap();
        body.send_data(sent.clone().into(), false).unwrap();
        let reply = tokio::time::timeout(Duration::from_secs(20), reply)
            .await
            .unwrap_or_else(|_| panic!("{rpc}: the server waited for the whole body"))
            .unwrap();
        let code = reply
            .headers()
            .get("grpc-status")
            .map(|v| v.to_str().unwrap().to_owned());
        let code = match code {
            Some(c) => c,
            // Not trailers-only: the status comes in the trailers.
            None => {
                let mut b = reply.into_body();
                while b.data().await.is_some() {}
                let t = b.trailers().await.unwrap().unwrap();
                t.get("grpc-status").unwrap().to_str().unwrap().to_owned()
            }
        };
        assert_eq!(code, status, "{rpc} with {token}");
        h2 = h2.ready().await.unwrap();
    }
    // The run goes on, and a real client still gets in.
    assert!(run.controller().await.info().await.is_ok());
}
