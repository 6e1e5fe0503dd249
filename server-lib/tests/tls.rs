//! TLS: a run served over TLS talks to clients that trust its CA, and to
//! nobody else.

use idict::client::{Client, ClientError, ConnectOptions, Target};
use idict::{IDict, ServeOptions, TlsIdentity};

fn self_signed() -> (TlsIdentity, Vec<u8>) {
    let ck =
        rcgen::generate_simple_self_signed(vec!["localhost".to_string(), "127.0.0.1".to_string()])
            .expect("certificate");
    let cert = ck.cert.pem().into_bytes();
    let identity = TlsIdentity {
        cert_pem: cert.clone(),
        key_pem: ck.signing_key.serialize_pem().into_bytes(),
    };
    (identity, cert)
}

fn options() -> ServeOptions {
    ServeOptions::default()
        .write_run_file(false)
        .announce(false)
}

fn with_ca(ca: Option<Vec<u8>>) -> ConnectOptions {
    ConnectOptions {
        tls_ca_pem: ca,
        tls_domain: Some("localhost".into()),
        ..ConnectOptions::default()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tls_run_talks_only_to_clients_that_trust_its_ca() {
    let (identity, ca) = self_signed();
    let idict = IDict::new("secure");
    idict.lock().insert("x", 42);
    idict.notify_update().unwrap();
    let server = options().tls(identity).serve(&idict).unwrap();
    assert!(
        server.address().starts_with("https://"),
        "{}",
        server.address()
    );
    let token = server.tokens().observer.clone();

    let ok = Client::connect_target(
        Target::at(server.address(), Some(token.clone())),
        with_ca(Some(ca)),
    )
    .await
    .unwrap();
    assert_eq!(
        ok.snapshot("").await.unwrap().values["x"],
        idict::Value::Int(42)
    );

    // No CA given: refused before any byte is sent.
    let e = Client::connect_target(
        Target::at(server.address(), Some(token.clone())),
        with_ca(None),
    )
    .await
    .unwrap_err();
    assert!(
        matches!(&e, ClientError::Tls(m) if m.contains("--ca")),
        "{e}"
    );

    // A CA that did not sign it: the handshake fails.
    let (_, other_ca) = self_signed();
    let r = async {
        let c = Client::connect_target(
            Target::at(server.address(), Some(token.clone())),
            with_ca(Some(other_ca)),
        )
        .await?;
        c.info().await
    }
    .await;
    assert!(
        r.is_err(),
        "a client trusting another CA must not get through"
    );

    // Plaintext to a TLS server: no answer.
    let plain = server.address().replace("https://", "http://");
    let r = async {
        let c = Client::connect_target(
            Target::at(&plain, Some(token.clone())),
            ConnectOptions::default(),
        )
        .await?;
        c.info().await
    }
    .await;
    assert!(r.is_err(), "a plaintext client must not get through");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tls_client_does_not_talk_to_a_plaintext_server() {
    let (_, ca) = self_signed();
    let idict = IDict::new("plain");
    let server = options().serve(&idict).unwrap();
    let tls_addr = server.address().replace("http://", "https://");
    let r = async {
        let c = Client::connect_target(
            Target::at(&tls_addr, Some(server.tokens().observer.clone())),
            with_ca(Some(ca)),
        )
        .await?;
        c.info().await
    }
    .await;
    assert!(r.is_err());
}
