//! Soak: a run updating at full speed while client processes connect, watch
//! and are killed (SIGKILL, not a clean close), for a bounded time.
//!
//! `cargo run --release -p idict --example soak -- [--seconds 20] [--clients 1000]`
//!
//! It reports the run's update rate under load against its rate at rest, the
//! server's memory before, at the peak and after, and whether every watcher
//! that survived got the final update; it exits non-zero if any check fails.

use futures::StreamExt;
use idict::client::{Client, ConnectOptions, Target, WatchOptions};
use idict::{IDict, ServeOptions};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

#[path = "../benches/support/rss.rs"]
mod rss;
use rss::rss;

/// Watchers per client process.
const PER_PROCESS: usize = 50;

fn arg(name: &str, default: u64) -> u64 {
    let args: Vec<String> = std::env::args().collect();
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// The client side: `soak --client ADDRESS TOKEN`. Opens PER_PROCESS
/// watches and reads them until the run ends; exits 0 only if every one got
/// the final update.
fn client(address: &str, token: &str) -> ! {
    // Clients run at the lowest priority (`spawn_client` starts them under
    // SCHED_IDLE): on this one machine they stand for clients elsewhere,
    // and must not take the run's CPU from it.
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let ok = rt.block_on(async {
        let target = Target::at(address, Some(token.to_string()));
        let c = match Client::connect_target(target, ConnectOptions::default()).await {
            Ok(c) => c,
            Err(_) => return false,
        };
        let mut tasks = Vec::new();
        for _ in 0..PER_PROCESS {
            let Ok(mut w) = c.watch(WatchOptions::default()).await else {
                return false;
            };
            tasks.push(tokio::spawn(async move {
                let mut last = false;
                while let Some(Ok(u)) = w.next().await {
                    last = u.last;
                }
                last
            }));
        }
        let mut all = true;
        for t in tasks {
            all &= t.await.unwrap_or(false);
        }
        all
    });
    std::process::exit(if ok { 0 } else { 1 });
}

fn spawn_client(address: &str, token: &str, control: bool) -> std::io::Result<Child> {
    if control {
        // The control: a process that only burns CPU, in a client's place.
        return Command::new("chrt")
            .args(["--idle", "0", "sh", "-c", "while :; do :; done"])
            .spawn();
    }
    // Under SCHED_IDLE from the start (exec and loading included): it runs
    // only when nothing else wants the core, and never preempts the run,
    // as a client on another machine would not.
    Command::new("chrt")
        .args(["--idle", "0"])
        .arg(std::env::current_exe()?)
        .args(["--client", address, token])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if args.get(1).map(String::as_str) == Some("--client") {
        client(&args[2], &args[3]);
    }
    let seconds = arg("--seconds", 20);
    let clients = arg("--clients", 1000) as usize;
    let processes = clients.div_ceil(PER_PROCESS);
    // `--no-kill`: the same watchers, without the churn (to tell load from churn).
    let no_kill = std::env::args().any(|a| a == "--no-kill");
    // `--control`: busy processes that touch nothing of the run in the
    // clients' place, to tell what any busy neighbour costs on this machine.
    let control = std::env::args().any(|a| a == "--control");

    let idict = IDict::new("soak");
    let server = ServeOptions::default()
        .write_run_file(false)
        .announce(false)
        .serve(&idict)
        .expect("serve");
    let (address, token) = (
        server.address().to_string(),
        server.tokens().observer.clone(),
    );

    // The computation: 10 scalars per update, as fast as it goes.
    let updates = Arc::new(AtomicU64::new(0));
    let stop = Arc::new(AtomicBool::new(false));
    let computation = {
        let (idict, updates, stop) = (idict.clone(), updates.clone(), stop.clone());
        std::thread::spawn(move || {
            let mut i = 0u64;
            while !stop.load(Ordering::Relaxed) {
                {
                    let mut d = idict.lock();
                    for k in 0..10 {
                        d.insert(format!("k{k}"), (i * 10 + k) as f64);
                    }
                }
                idict.notify_update().expect("notify");
                updates.fetch_add(1, Ordering::Relaxed);
                i += 1;
            }
        })
    };
    // This thread only measures and starts and kills clients: it must not
    // take the computation's core either.
    #[cfg(target_os = "linux")]
    let _ = rustix::process::setpriority_process(Some(rustix::thread::gettid()), 5);
    let rate_over = |d: Duration| {
        let before = updates.load(Ordering::Relaxed);
        std::thread::sleep(d);
        (updates.load(Ordering::Relaxed) - before) as f64 / d.as_secs_f64()
    };

    std::thread::sleep(Duration::from_millis(500));
    let baseline_rate = rate_over(Duration::from_secs(2));
    let baseline_rss = rss();
    println!(
        "before any client: {baseline_rate:.0} updates/s, server RSS {:.1} MiB",
        baseline_rss as f64 / 1048576.0
    );

    let mut alive: Vec<Child> = (0..processes)
        .filter_map(|_| spawn_client(&address, &token, control).ok())
        .collect();
    let deadline = Instant::now() + Duration::from_secs(20);
    while !control && server.watchers() < clients && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(50));
    }
    println!("{} watchers attached", server.watchers());

    // The run's rate moves by ±10% from second to second on a shared VM,
    // so it is compared with itself: load phases (clients reading, one
    // SIGKILLed and replaced every window) alternate with rest phases (the
    // same clients SIGSTOPped: connections open, nothing read). The first
    // window of each phase, the transition, is not counted.
    let signal_all = |alive: &[Child], sig: rustix::process::Signal| {
        for c in alive {
            if let Some(pid) = rustix::process::Pid::from_raw(c.id() as i32) {
                let _ = rustix::process::kill_process(pid, sig);
            }
        }
    };
    let (mut killed, mut peak_rss) = (0usize, baseline_rss);
    let (mut load_rates, mut rest_rates) = (Vec::new(), Vec::new());
    let mut x = 0x9e37_79b9_7f4a_7c15u64;
    for phase in 0..seconds {
        let load = phase % 2 == 0;
        signal_all(
            &alive,
            if load {
                rustix::process::Signal::CONT
            } else {
                rustix::process::Signal::STOP
            },
        );
        for window in 0..4 {
            let rate = rate_over(Duration::from_millis(250));
            peak_rss = peak_rss.max(rss());
            if window > 0 {
                if load {
                    &mut load_rates
                } else {
                    &mut rest_rates
                }
                .push(rate);
            }
            if !load || no_kill {
                continue;
            }
            x = x
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            let victim = (x >> 33) as usize % alive.len().max(1);
            if let Some(mut child) = (!alive.is_empty()).then(|| alive.swap_remove(victim)) {
                let _ = child.kill();
                let _ = child.wait();
                killed += 1;
            }
            if let Ok(c) = spawn_client(&address, &token, control) {
                alive.push(c);
            }
        }
    }
    let median = |v: &mut Vec<f64>| {
        v.sort_by(f64::total_cmp);
        v.get(v.len() / 2).copied().unwrap_or(f64::NAN)
    };
    let (churn_rate, rest_rate) = (median(&mut load_rates), median(&mut rest_rates));
    // Let the survivors settle, then end the run: they must all get it.
    signal_all(&alive, rustix::process::Signal::CONT);
    std::thread::sleep(Duration::from_secs(2));
    let during_watchers = server.watchers();
    stop.store(true, Ordering::Relaxed);
    computation.join().expect("computation");
    idict.notify_update_final().expect("final");
    if control {
        for c in &mut alive {
            let _ = c.kill();
        }
    }
    let survivors = if control { 0 } else { alive.len() };
    let mut got_final = 0;
    for mut c in alive {
        if c.wait().map(|s| s.success()).unwrap_or(false) {
            got_final += 1;
        }
    }
    let deadline = Instant::now() + Duration::from_secs(10);
    while server.watchers() > 0 && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(50));
    }
    // The server returns freed heap to the OS within two seconds.
    std::thread::sleep(Duration::from_millis(2500));
    let after_rss = rss();

    let slowdown = 1.0 - churn_rate / rest_rate;
    let grown = after_rss.saturating_sub(baseline_rss) as f64 / 1048576.0;
    println!(
        "churn for {seconds} s: {killed} client processes killed ({} watchers), {during_watchers} watchers at the end",
        killed * PER_PROCESS
    );
    println!(
        "run rate: {churn_rate:.0} updates/s under load and churn, {rest_rate:.0} at rest ({:+.1}%)",
        -slowdown * 100.0
    );
    println!(
        "server RSS: baseline {:.1} MiB, peak {:.1} MiB, after {:.1} MiB ({grown:+.1} MiB)",
        baseline_rss as f64 / 1048576.0,
        peak_rss as f64 / 1048576.0,
        after_rss as f64 / 1048576.0
    );
    println!(
        "surviving client processes that got the final update on every watch: {got_final}/{survivors}"
    );
    let mut ok = true;
    if got_final != survivors {
        eprintln!("FAIL: not every surviving watcher got the final update");
        ok = false;
    }
    if server.watchers() != 0 {
        eprintln!(
            "FAIL: {} watch streams still open after the end",
            server.watchers()
        );
        ok = false;
    }
    // What the server holds is bounded: history (pinned for lagging
    // watchers, at most 8x its budget per key) and one message per watcher.
    let peak_mib = peak_rss as f64 / 1048576.0;
    if peak_mib > 512.0 {
        eprintln!("FAIL: the server's memory peaked at {peak_mib:.0} MiB");
        ok = false;
    }
    drop(server);
    std::process::exit(if ok { 0 } else { 1 });
}
