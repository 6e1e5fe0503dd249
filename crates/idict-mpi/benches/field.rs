//! A 512x512 f64 field decomposed in strips over 4 ranks: what it costs a
//! step while nobody watches (against the same job without the field), and
//! how many stitched frames a second reach a watcher:
//! `cargo bench -p idict-mpi --features mpi --bench field` (it runs itself
//! under `mpirun --oversubscribe -n 4`).

use futures::StreamExt;
use idict_mpi::MpiDict;
use mpi::traits::*;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

const MODE: &str = "IDICT_MPI_FIELD_BENCH_MODE";
const N: usize = 512;
const RANKS: usize = 4;
const RUN_FOR: Duration = Duration::from_secs(6);

fn main() {
    match std::env::var(MODE) {
        Ok(mode) => child(&mode),
        Err(_) => parent(),
    }
}

fn parent() {
    let Ok(exe) = std::env::current_exe() else {
        return;
    };
    println!(
        "a {N}x{N} f64 field over {RANKS} ranks (rank 0's p50 step; frames with the stitched field):"
    );
    for mode in ["none", "unwatched", "watched"] {
        let runs =
            std::env::temp_dir().join(format!("idict-field-bench-{}-{mode}", std::process::id()));
        let _ = std::fs::create_dir_all(&runs);
        let mut mpirun = Command::new("mpirun");
        mpirun.args(["--oversubscribe", "-n", &RANKS.to_string()]);
        // SAFETY: geteuid has no preconditions.
        if unsafe { geteuid() } == 0 {
            mpirun.arg("--allow-run-as-root");
        }
        let Ok(child) = mpirun
            .arg(&exe)
            .env(MODE, mode)
            .env("IDICT_RUNS_DIR", &runs)
            .stdout(Stdio::piped())
            .spawn()
        else {
            eprintln!("mpirun does not run");
            return;
        };
        let frames = if mode == "watched" {
            watch(&runs)
        } else {
            None
        };
        let out = child
            .wait_with_output()
            .map(|o| String::from_utf8_lossy(&o.stdout).into_owned());
        let _ = std::fs::remove_dir_all(&runs);
        let step = out.unwrap_or_default();
        match frames {
            Some(fps) => println!(
                "  {mode:<10} step {}   {fps:.1} frames/s with u (target >= 20)",
                step.trim()
            ),
            None => println!("  {mode:<10} step {}", step.trim()),
        }
    }
}

/// Watches the run for a while: stitched frames a second.
fn watch(runs: &std::path::Path) -> Option<f64> {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .ok()?;
    rt.block_on(async {
        let start = Instant::now();
        let file = loop {
            if let Ok(r) = idict::runfile::list_runs_in(runs)
                && let Some(r) = r.into_iter().next()
            {
                break r.path;
            }
            if start.elapsed() > Duration::from_secs(30) {
                return None;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        };
        let c = idict::client::Client::connect(&file.display().to_string())
            .await
            .ok()?;
        let mut w = c.watch(idict::client::WatchOptions::default()).await.ok()?;
        // The first second warms up; then count for three.
        let (mut frames, mut counting) = (0u32, None::<Instant>);
        while let Some(Ok(u)) = w.next().await {
            let t = counting.get_or_insert_with(Instant::now);
            if t.elapsed() > Duration::from_secs(3) {
                return Some(f64::from(frames) / t.elapsed().as_secs_f64());
            }
            if u.changed.iter().any(|(k, _)| k == "u") {
                frames += 1;
            }
        }
        None
    })
}

unsafe extern "C" {
    fn geteuid() -> u32;
}

fn child(mode: &str) {
    let Some(universe) = mpi::initialize() else {
        return;
    };
    let world = universe.world();
    let mut d = MpiDict::new("field-bench", &world);
    let (rank, size) = (d.rank() as usize, d.size() as usize);
    let (first, last) = (N * rank / size, N * (rank + 1) / size);
    let mut block = vec![0.0f64; (last - first) * N];
    if mode != "none"
        && d.field("u", &[N, N], &[first, 0], &[last - first, N])
            .is_err()
    {
        return;
    }
    if d.serve().is_err() {
        return;
    }
    let mut steps = Vec::new();
    let start = Instant::now();
    let mut i = 0u64;
    loop {
        let t = Instant::now();
        // Every rank stops at the same step: rank 0's clock decides.
        let mut go = u8::from(start.elapsed() < RUN_FOR);
        world.process_at_rank(0).broadcast_into(&mut go);
        if go == 0 || !d.wait() {
            break;
        }
        i += 1;
        for (k, v) in block.iter_mut().enumerate() {
            *v = (k as u64 + i) as f64;
        }
        {
            let mut map = d.lock();
            map.insert("step", i);
            map.insert("residual", 1.0 / i as f64);
            map.insert("energy", block[0]);
        }
        if d.stitching() && d.set_block("u", &block).is_err() {
            return;
        }
        if d.notify_update().is_err() {
            return;
        }
        steps.push(t.elapsed().as_nanos() as f64);
    }
    let _ = d.notify_update_final();
    if rank == 0 {
        steps.sort_by(f64::total_cmp);
        println!("{:.1} us", steps[steps.len() / 2] / 1e3);
    }
    d.close(Duration::from_secs(1));
}
