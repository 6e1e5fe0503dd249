//! End-to-end benchmark of idict on loopback with real servers and clients.
//! `cargo bench -p idict --bench e2e` prints each figure beside its target
//! from DESIGN.md and writes them to `target/idict-bench.json`.
//! `-- --quick` runs fewer iterations.
//!
//! One *update* is 10 changed f64 scalars.

use futures::StreamExt;
use idict::client::{Client, ConnectOptions, Target, WatchOptions};
use idict::{IDict, ServeOptions, Server};
use std::time::{Duration, Instant};

const KEYS: [&str; 10] = ["k0", "k1", "k2", "k3", "k4", "k5", "k6", "k7", "k8", "k9"];

fn serve(idict: &IDict) -> Server {
    ServeOptions::default()
        .write_run_file(false)
        .announce(false)
        .serve(idict)
        .expect("serve")
}

fn percentile(sorted: &[u64], p: f64) -> u64 {
    sorted[((sorted.len() - 1) as f64 * p).round() as usize]
}

/// Starts `n` watchers that read every update until the run ends; returns
/// once all have their first state.
fn start_watchers(
    rt: &tokio::runtime::Runtime,
    server: &Server,
    n: usize,
) -> Vec<tokio::task::JoinHandle<u64>> {
    let target = Target {
        address: server.address().to_string(),
        token: Some(server.tokens().observer.clone()),
        run: None,
    };
    let handles: Vec<_> = (0..n)
        .map(|_| {
            let target = target.clone();
            let (tx, rx) = std::sync::mpsc::channel();
            let h = rt.spawn(async move {
                let c = Client::connect_target(target, ConnectOptions::default())
                    .await
                    .expect("connect");
                let mut w = c.watch(WatchOptions::default()).await.expect("watch");
                let _ = w.next().await;
                let _ = tx.send(());
                let mut n = 0u64;
                while let Some(Ok(_)) = w.next().await {
                    n += 1;
                }
                n
            });
            (h, rx)
        })
        .collect();
    handles
        .into_iter()
        .map(|(h, rx)| {
            let _ = rx.recv();
            h
        })
        .collect()
}

/// Median and p99 cost of `notify_update` (10 changed scalars) with `watchers` watching.
fn notify_cost(
    rt: &tokio::runtime::Runtime,
    watchers: Option<usize>,
    iterations: usize,
) -> (u64, u64) {
    let idict = IDict::new("bench-notify");
    let server = watchers.map(|_| serve(&idict));
    let handles = match &server {
        Some(s) => start_watchers(rt, s, watchers.unwrap_or(0)),
        None => Vec::new(),
    };
    let mut ns = Vec::with_capacity(iterations);
    for i in 0..iterations {
        {
            let mut d = idict.lock();
            for (j, k) in KEYS.iter().enumerate() {
                d.insert(k, (i * 10 + j) as f64);
            }
        }
        let t = Instant::now();
        idict.notify_update().expect("notify");
        ns.push(t.elapsed().as_nanos() as u64);
    }
    idict.notify_update_final().expect("final");
    for h in handles {
        let _ = rt.block_on(h);
    }
    if let Some(server) = server {
        server.wait_then_close(Duration::from_secs(5));
    }
    ns.sort_unstable();
    (percentile(&ns, 0.5), percentile(&ns, 0.99))
}

fn main() {
    let quick = std::env::args().any(|a| a == "--quick");
    let iterations = if quick { 20_000 } else { 200_000 };
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .expect("runtime");
    let mut figures = serde_json::Map::new();
    println!("{:<28} {:>12} {:>12}   target", "figure", "value", "");
    let (p50, p99) = notify_cost(&rt, None, iterations);
    println!(
        "{:<28} {:>9} ns {:>9} ns   (not served: the floor)",
        "notify_ns_p50/p99_unserved", p50, p99
    );
    for w in [0usize, 1, 16] {
        let (p50, p99) = notify_cost(&rt, Some(w), iterations);
        println!(
            "{:<28} {:>9} ns {:>9} ns   p50 <= 1000 ns",
            format!("notify_ns_p50/p99_w{w}"),
            p50,
            p99
        );
        figures.insert(
            format!("notify_ns_p50_w{w}"),
            serde_json::json!({"value": p50, "target": "<= 1000", "pass": p50 <= 1000}),
        );
        figures.insert(
            format!("notify_ns_p99_w{w}"),
            serde_json::json!({"value": p99}),
        );
    }
    let out = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/idict-bench.json");
    if let Ok(json) = serde_json::to_string_pretty(&figures) {
        let _ = std::fs::write(&out, json);
    }
}
