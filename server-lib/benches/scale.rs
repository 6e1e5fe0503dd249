//! How idict's costs grow with the number of keys, on loopback with a real
//! server and real clients: `cargo bench -p idict --bench scale`
//! (`-- --quick` for a shorter run without the million-key state).
//!
//! Each figure is printed beside its target at 10, 1,000 and 100,000 keys,
//! so a cost that stops being flat shows here:
//! - a notify's cost per changed key (a run publishing K changed f64
//!   scalars per update, one watcher reading in another thread);
//! - a late watcher's first complete state, with every key's history (20
//!   samples a key) and without.

use futures::StreamExt;
use idict::client::{Client, ConnectOptions, Target, WatchOptions};
use idict::{IDict, ServeOptions, Server};
use std::time::{Duration, Instant};

/// Samples each key has when a late watcher asks for its history.
const HISTORY: u64 = 20;

struct Row {
    name: String,
    value: String,
    target: String,
    pass: Option<bool>,
}

fn serve(idict: &IDict) -> Server {
    ServeOptions::default()
        .write_run_file(false)
        .announce(false)
        .serve(idict)
        .expect("serve")
}

fn target(server: &Server) -> Target {
    Target::at(server.address(), Some(server.tokens().observer.clone()))
}

fn names(k: usize) -> Vec<String> {
    // Names like a many-rank job's: a quantity and a rank.
    (0..k)
        .map(|i| format!("rank{:05}.q{:02}", i / 24, i % 24))
        .collect()
}

/// One update: every key changed.
fn publish(idict: &IDict, keys: &[String], i: u64) {
    {
        let mut d = idict.lock();
        for (j, k) in keys.iter().enumerate() {
            d.insert(k, (i as f64) + j as f64 * 1e-6);
        }
    }
    idict.notify_update().expect("notify");
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    sorted[((sorted.len() - 1) as f64 * p).round() as usize]
}

/// A notify's cost per changed key, in ns (p50 and mean: one notify in
/// `BATCH_VERSIONS` also moves the batch's samples into the histories),
/// and an insert's p50, with one watcher reading every update.
fn notify_per_key(rt: &tokio::runtime::Runtime, k: usize, quick: bool) -> (f64, f64, f64) {
    let keys = names(k);
    let idict = IDict::new("bench-scale");
    let server = serve(&idict);
    publish(&idict, &keys, 0);
    let t = target(&server);
    let nobody = std::env::var_os("SCALE_NOBODY").is_some();
    let watcher = rt.spawn(async move {
        if nobody {
            return;
        }
        let c = Client::connect_target(t, ConnectOptions::default())
            .await
            .expect("connect");
        let mut w = c.watch(WatchOptions::default()).await.expect("watch");
        while let Some(Ok(u)) = w.next().await {
            if u.last {
                break;
            }
        }
    });
    // About the same number of changed keys at each size, and at least a
    // few tenths of a second of notifies: at 10 keys, 20,000 notifies took
    // 15 ms just after the process started, and their p50 swung with its
    // first page faults (40.5-43.8 ns a key; 36-39 over seconds).
    let budget = if quick { 2_000_000 } else { 10_000_000 };
    let updates = (budget / k).clamp(30, if quick { 20_000 } else { 400_000 });
    let warmup = updates / 10;
    let mut ns = Vec::with_capacity(updates);
    let mut insert_ns = Vec::with_capacity(updates);
    for i in 1..=(warmup + updates) as u64 {
        let t0 = Instant::now();
        {
            let mut d = idict.lock();
            for (j, key) in keys.iter().enumerate() {
                d.insert(key, (i as f64) + j as f64 * 1e-6);
            }
        }
        let t1 = Instant::now();
        idict.notify_update().expect("notify");
        if i as usize > warmup {
            insert_ns.push((t1 - t0).as_nanos() as f64 / k as f64);
            ns.push(t1.elapsed().as_nanos() as f64 / k as f64);
        }
    }
    idict.notify_update_final().expect("final");
    rt.block_on(watcher).expect("watcher");
    server.wait_then_close(Duration::from_secs(5));
    let mean = ns.iter().sum::<f64>() / ns.len() as f64;
    ns.sort_by(f64::total_cmp);
    insert_ns.sort_by(f64::total_cmp);
    (percentile(&ns, 0.5), mean, percentile(&insert_ns, 0.5))
}

/// Seconds from a late watcher's connect to its first complete state, with
/// and without histories, on a run whose `k` keys have `HISTORY` samples.
fn first_state(rt: &tokio::runtime::Runtime, k: usize) -> (f64, f64) {
    let keys = names(k);
    let idict = IDict::new("bench-scale");
    let server = serve(&idict);
    for i in 0..HISTORY {
        publish(&idict, &keys, i);
    }
    let time = |with_history: bool| {
        let t = target(&server);
        rt.block_on(async move {
            let start = Instant::now();
            let c = Client::connect_target(t, ConnectOptions::default())
                .await
                .expect("connect");
            let mut w = c
                .watch(WatchOptions {
                    with_history,
                    ..WatchOptions::default()
                })
                .await
                .expect("watch");
            let first = w.next().await.expect("a first state").expect("no error");
            let took = start.elapsed().as_secs_f64();
            assert_eq!(first.changed.len(), k, "every key in the first state");
            if with_history {
                let samples: usize = first.samples.iter().map(|(_, s)| s.len()).sum();
                assert_eq!(samples as u64, k as u64 * HISTORY, "every sample");
            }
            took
        })
    };
    // The better of two tries each: the first connect warms the server.
    let without = time(false).min(time(false));
    let with = time(true).min(time(true));
    idict.notify_update_final().expect("final");
    server.wait_then_close(Duration::from_secs(5));
    (with, without)
}

fn main() {
    let quick = std::env::args().any(|a| a == "--quick");
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .expect("runtime");
    let start = Instant::now();
    let mut rows = Vec::new();
    let mut row = |name: String, value: String, target: &str, pass: Option<bool>| {
        rows.push(Row {
            name,
            value,
            target: target.to_string(),
            pass,
        })
    };
    // Any other argument picks sections ("notify", "first") or one size.
    let only: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| !a.starts_with('-'))
        .collect();
    let (sizes_only, sections): (Vec<&String>, Vec<&String>) =
        only.iter().partition(|o| o.parse::<usize>().is_ok());
    let run = |name: &str, k: usize| {
        (sections.is_empty() || sections.iter().any(|o| name.contains(o.as_str())))
            && (sizes_only.is_empty() || sizes_only.iter().any(|o| **o == k.to_string()))
    };
    for k in [10usize, 1_000, 100_000] {
        if !run("notify", k) {
            continue;
        }
        let (notify, mean, insert) = notify_per_key(&rt, k, quick);
        row(
            format!("notify per key p50, {k} keys"),
            format!("{notify:.1} ns"),
            "<= 40 ns",
            Some(notify <= 40.0),
        );
        row(
            format!("notify per key mean, {k} keys"),
            format!("{mean:.1} ns"),
            "",
            None,
        );
        row(
            format!("insert per key, {k} keys"),
            format!("{insert:.1} ns"),
            "",
            None,
        );
    }
    let sizes: &[usize] = if quick {
        &[10, 1_000, 100_000]
    } else {
        &[10, 1_000, 100_000, 1_000_000]
    };
    for &k in sizes {
        if !run("first", k) {
            continue;
        }
        let (with, without) = first_state(&rt, k);
        let limit = if k > 100_000 { 10.0 } else { 1.0 };
        row(
            format!("first state + history, {k} keys"),
            format!("{:.1} ms", with * 1e3),
            if k > 100_000 { "<= 10 s" } else { "<= 1 s" },
            Some(with <= limit),
        );
        row(
            format!("first state, {k} keys"),
            format!("{:.1} ms", without * 1e3),
            "",
            None,
        );
    }
    println!(
        "\nidict scale benchmark{} ({:.0} s)",
        if quick { " --quick" } else { "" },
        start.elapsed().as_secs_f64()
    );
    println!("{:<40} {:>14}   {:<6} target", "figure", "value", "");
    for r in &rows {
        let verdict = match r.pass {
            Some(true) => "pass",
            Some(false) => "MISS",
            None => "",
        };
        println!("{:<40} {:>14}   {verdict:<6} {}", r.name, r.value, r.target);
    }
}
