//! The inspector on a run of many keys, headless (egui_kittest) against a
//! real server: `cargo bench -p idict-inspector --bench scale` (100,000
//! keys; `-- 10000` for another count). Prints, beside their targets:
//! - how long the window takes from connecting to showing every key (the
//!   first state with every key's history, applied);
//! - what the window holds per key beyond the samples themselves (24 bytes
//!   a sample: value, version, time), counted by the allocator;
//! - a frame's time idle, while the values list scrolls, and while its
//!   filter is typed into.

use egui_kittest::Harness;
use idict::{IDict, ServeOptions};
use idict_inspector::InspectorApp;
use idict_inspector::model::Connection;
use idict_inspector::net::OpenSpec;
use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicIsize, Ordering};
use std::time::{Duration, Instant};

/// Bytes allocated and not yet freed, by anyone in the process.
static LIVE: AtomicIsize = AtomicIsize::new(0);

struct Counting;

unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        LIVE.fetch_add(layout.size() as isize, Ordering::Relaxed);
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        LIVE.fetch_sub(layout.size() as isize, Ordering::Relaxed);
        unsafe { System.dealloc(ptr, layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        LIVE.fetch_add(
            new_size as isize - layout.size() as isize,
            Ordering::Relaxed,
        );
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static ALLOCATOR: Counting = Counting;

/// Samples each key has when the window opens.
const HISTORY: u64 = 20;

fn percentile(sorted: &[f64], p: f64) -> f64 {
    sorted[((sorted.len() - 1) as f64 * p).round() as usize]
}

/// p50 and p99 of `frames` frames, in ms, each after `before` is applied.
fn frames(
    harness: &mut Harness<'static, Option<InspectorApp>>,
    n: usize,
    mut before: impl FnMut(&mut Harness<'static, Option<InspectorApp>>, usize),
) -> (f64, f64) {
    let mut ms: Vec<f64> = (0..n)
        .map(|i| {
            before(harness, i);
            let t = Instant::now();
            harness.step();
            t.elapsed().as_secs_f64() * 1e3
        })
        .collect();
    ms.sort_by(f64::total_cmp);
    (percentile(&ms, 0.5), percentile(&ms, 0.99))
}

/// The run, in a process of its own (this program again, with `--serve`):
/// what the window holds is then counted apart from the server's memory.
/// Prints its address and controller token, and serves until stdin closes.
fn serve(keys: usize) {
    let names: Vec<String> = (0..keys)
        .map(|i| format!("rank{:05}.q{:02}", i / 24, i % 24))
        .collect();
    let idict = IDict::new("bench-inspector-scale");
    for v in 0..HISTORY {
        {
            let mut d = idict.lock();
            for (j, k) in names.iter().enumerate() {
                d.insert(k, v as f64 + j as f64 * 1e-6);
            }
        }
        idict.notify_update().expect("notify");
    }
    let server = ServeOptions::default()
        .write_run_file(false)
        .announce(false)
        .serve(&idict)
        .expect("serve");
    println!("{} {}", server.address(), server.tokens().controller);
    let _ = std::io::stdin().read_line(&mut String::new());
    server.close();
}

fn main() {
    let keys: usize = std::env::args()
        .skip(1)
        .find_map(|a| a.parse().ok())
        .unwrap_or(100_000);
    if std::env::args().any(|a| a == "--serve") {
        serve(keys);
        return;
    }
    let mut child = std::process::Command::new(std::env::current_exe().expect("this program"))
        .args(["--serve", &keys.to_string()])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("the run's process");
    let mut line = String::new();
    if let Some(out) = child.stdout.take() {
        std::io::BufRead::read_line(&mut std::io::BufReader::new(out), &mut line)
            .expect("the run's address");
    }
    let mut words = line.split_whitespace();
    let (Some(address), Some(token)) = (words.next(), words.next()) else {
        panic!("the run said {line:?}, not its address and token");
    };
    let spec = OpenSpec {
        target: address.to_string(),
        token: Some(token.to_string()),
    };
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .expect("runtime");
    let handle = rt.handle().clone();
    let before = LIVE.load(Ordering::Relaxed);
    let start = Instant::now();
    let mut harness = Harness::builder()
        .with_size([1400.0, 860.0])
        .build_ui_state(
            move |ui, app: &mut Option<InspectorApp>| {
                let app = app.get_or_insert_with(|| {
                    let mut a =
                        InspectorApp::new(ui.ctx().clone(), handle.clone(), Default::default());
                    a.open(spec.clone());
                    a.selected = 0;
                    a
                });
                app.ui_root(ui);
            },
            None,
        );
    let shown = |h: &Harness<'static, Option<InspectorApp>>| {
        h.state().as_ref().is_some_and(|a| {
            let m = &a.tabs[0].model;
            m.connection == Connection::Connected && m.values.len() == keys
        })
    };
    while !shown(&harness) {
        harness.step();
        if start.elapsed() > Duration::from_secs(120) {
            panic!("the window did not show {keys} keys in 120 s");
        }
        std::thread::sleep(Duration::from_millis(1));
    }
    let opened = start.elapsed().as_secs_f64();
    // A few frames more: what the first frames build is kept.
    for _ in 0..5 {
        harness.step();
    }
    let held = (LIVE.load(Ordering::Relaxed) - before) as f64;
    let samples = harness.state().as_ref().map_or(0, |a| {
        a.tabs[0]
            .model
            .series
            .values()
            .map(|s| s.len())
            .sum::<usize>()
    });
    let per_key = (held - samples as f64 * 24.0) / keys as f64;

    let idle = frames(&mut harness, 60, |_, _| {});
    // The wheel over the values list, down then back up.
    let scrolling = frames(&mut harness, 120, |h, i| {
        h.event(egui::Event::PointerMoved(egui::pos2(150.0, 500.0)));
        let dy = if i < 60 { -400.0 } else { 400.0 };
        h.event(egui::Event::MouseWheel {
            unit: egui::MouseWheelUnit::Point,
            delta: egui::vec2(0.0, dy),
            modifiers: egui::Modifiers::NONE,
            phase: egui::TouchPhase::Move,
            source: egui::MouseWheelSource::Wheel,
        });
    });
    // A filter typed a letter at a time, then cleared.
    let typed = [
        "r", "ra", "ran", "rank", "rank0", "rank00", "rank001", "rank0012", "",
    ];
    let filtering = frames(&mut harness, typed.len() * 8, |h, i| {
        if let Some(app) = h.state_mut().as_mut() {
            app.tabs[0].values.filter = typed[i / 8].to_string();
        }
    });
    drop(harness);
    // The model alone: the first state applied, against what it holds.
    let t = idict::client::Target::at(address, Some(token.to_string()));
    let first = rt.block_on(async move {
        use futures::StreamExt;
        let c = idict::client::Client::connect_target(t, Default::default())
            .await
            .expect("connect");
        let mut w = c
            .watch(idict::client::WatchOptions {
                with_history: true,
                ..Default::default()
            })
            .await
            .expect("watch");
        w.next().await.expect("a first state").expect("no error")
    });
    let before_model = LIVE.load(Ordering::Relaxed);
    let t = Instant::now();
    let mut model = idict_inspector::model::RunModel::new("bench");
    model.apply(&first, Instant::now());
    let applied = t.elapsed().as_secs_f64();
    let model_bytes = (LIVE.load(Ordering::Relaxed) - before_model) as f64;
    let model_samples: usize = model.series.values().map(|s| s.len()).sum();
    let model_per_key = (model_bytes - model_samples as f64 * 24.0) / keys as f64;
    drop(model);
    drop(first);
    drop(rt);
    drop(child.stdin.take());
    let _ = child.wait();

    println!(
        "\nidict inspector scale benchmark: {keys} keys x {HISTORY} samples (the run in a process of its own)"
    );
    println!("{:<34} {:>16}   target", "figure", "value");
    let row = |name: &str, value: String, target: &str, pass: bool| {
        println!(
            "{name:<34} {value:>16}   {} {target}",
            if pass { "pass" } else { "MISS" }
        );
    };
    row(
        "open (connect -> every key shown)",
        format!("{:.2} s", opened),
        "<= 2 s after the first state",
        opened <= 2.0,
    );
    row(
        "first state applied to the model",
        format!("{:.0} ms", applied * 1e3),
        "",
        true,
    );
    row(
        "model per key beyond samples",
        format!("{model_per_key:.0} B"),
        "",
        true,
    );
    row(
        "held per key beyond samples",
        format!("{per_key:.0} B"),
        "<= 1024 B",
        per_key <= 1024.0,
    );
    for (name, (p50, p99)) in [
        ("frame idle", idle),
        ("frame scrolling the values", scrolling),
        ("frame filtering the values", filtering),
    ] {
        row(
            name,
            format!("{p50:.2} / {p99:.2} ms"),
            "p50 / p99 <= 16 ms",
            p99 <= 16.0,
        );
    }
}
