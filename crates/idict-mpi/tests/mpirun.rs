//! Real MPI jobs of the heat example (`mpirun --oversubscribe`, on
//! loopback), driven by the real client: one run for the job, every rank
//! held, stepped and steered at the same step, terminated with mpirun
//! exiting 0. Needs the `mpi` feature and Open MPI's `mpirun` (.ci/run
//! installs both): `cargo test -p idict-mpi --features mpi`.
#![cfg(feature = "mpi")]

use idict::client::Client;
use idict::{TriggerActions, Value};
use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// One job at a time: each takes the machine's cores.
static ONE_JOB: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

struct Job {
    child: Child,
    runs: tempfile::TempDir,
}

impl Job {
    /// `mpirun -n RANKS heat_mpi ARGS`, its run file in a directory of its own.
    fn start(ranks: usize, args: &[&str]) -> Job {
        Job::start_with(ranks, args, &[])
    }

    /// Like `start`, with environment variables for the ranks.
    fn start_with(ranks: usize, args: &[&str], env: &[(&str, &str)]) -> Job {
        let runs = tempfile::tempdir().expect("tempdir");
        let mut mpirun = Command::new("mpirun");
        mpirun.args(["--oversubscribe", "-n", &ranks.to_string()]);
        // Open MPI refuses root unless told (CI runs as root).
        // SAFETY: geteuid has no preconditions.
        if unsafe { libc_geteuid() } == 0 {
            mpirun.arg("--allow-run-as-root");
        }
        for (k, v) in env {
            // Open MPI passes -x VARs on to every rank.
            mpirun.args(["-x", &format!("{k}={v}")]);
        }
        let child = mpirun
            .arg(env!("CARGO_BIN_EXE_heat_mpi"))
            .args(args)
            .env("IDICT_RUNS_DIR", runs.path())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("mpirun (Open MPI's openmpi-bin) runs");
        Job { child, runs }
    }

    /// The run file rank 0 writes.
    fn run_file(&self) -> PathBuf {
        let start = Instant::now();
        loop {
            if let Ok(runs) = idict::runfile::list_runs_in(self.runs.path())
                && let Some(r) = runs.into_iter().next()
            {
                return r.path;
            }
            assert!(
                start.elapsed() < Duration::from_secs(60),
                "no run file from rank 0"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Waits for mpirun: its exit code and what the ranks printed.
    fn finish(mut self) -> (Option<i32>, String) {
        let start = Instant::now();
        let status = loop {
            if let Some(s) = self.child.try_wait().expect("wait for mpirun") {
                break s;
            }
            if start.elapsed() > Duration::from_secs(60) {
                let _ = self.child.kill();
                panic!("mpirun did not end within 60 s of the terminate");
            }
            std::thread::sleep(Duration::from_millis(50));
        };
        let mut out = String::new();
        if let Some(mut stdout) = self.child.stdout.take() {
            let _ = stdout.read_to_string(&mut out);
        }
        if !status.success()
            && let Some(mut stderr) = self.child.stderr.take()
        {
            let _ = stderr.read_to_string(&mut out);
        }
        (status.code(), out)
    }
}

impl Drop for Job {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

unsafe extern "C" {
    #[link_name = "geteuid"]
    fn libc_geteuid() -> u32;
}

async fn until(what: &str, mut f: impl AsyncFnMut() -> bool) {
    let start = Instant::now();
    while !f().await {
        assert!(
            start.elapsed() < Duration::from_secs(60),
            "timed out waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Each rank's value of `key` (the `KEY@ranks` array rank 0 publishes).
async fn per_rank(c: &Client, key: &str) -> Vec<f64> {
    match c
        .snapshot("")
        .await
        .expect("snapshot")
        .values
        .get(&format!("{key}@ranks"))
    {
        Some(Value::Array(a)) => a.to_f64_vec(),
        other => panic!("no {key}@ranks: {other:?}"),
    }
}

async fn held(c: &Client) -> bool {
    c.info().await.is_ok_and(|i| i.status.held)
}

/// Every rank's "rank R: ended at step S": the steps. mpirun forwards the
/// ranks' lines as they come, and two may share a line.
fn ended_at(out: &str) -> Vec<u64> {
    out.split("ended at step ")
        .skip(1)
        .filter_map(|rest| {
            let digits: String = rest.chars().take_while(char::is_ascii_digit).collect();
            digits.parse().ok()
        })
        .collect()
}

async fn connect(path: &Path) -> Client {
    Client::connect(&path.display().to_string())
        .await
        .expect("connect to rank 0")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn four_ranks_are_one_run_held_stepped_and_steered_at_one_step() {
    let _one = ONE_JOB.lock().await;
    let job = Job::start(4, &["32", "400"]);
    let c = connect(&job.run_file()).await;

    // One run, of 4 ranks.
    let runs = idict::runfile::list_runs_in(job.runs.path()).expect("runs");
    assert_eq!(runs.len(), 1, "one run file for the job");
    assert_eq!(runs[0].run.ranks, 4);
    assert_eq!(c.info().await.expect("info").ranks, 4);

    // Paused at a step: every rank holds having done exactly that many.
    until("a few steps", async || {
        c.info().await.is_ok_and(|i| i.status.step > 5)
    })
    .await;
    let at = c.info().await.expect("info").status.step + 50;
    c.pause_at(at).await.expect("pause at");
    until("the hold", async || held(&c).await).await;
    assert_eq!(c.info().await.expect("info").status.step, at);
    assert_eq!(
        per_rank(&c, "step").await,
        vec![at as f64; 4],
        "every rank at step {at}"
    );
    // A key set once, before the loop, stays its ranks' sum: the 30
    // interior rows of the 32-point grid, whatever the updates since.
    let snapshot = c.snapshot("rows").await.expect("snapshot");
    assert_eq!(snapshot.values.get("rows"), Some(&Value::Int(30)));
    assert_eq!(per_rank(&c, "rows").await.iter().sum::<f64>(), 30.0);

    // A write scheduled two steps on, then 3 steps: every rank takes the
    // new dt at the same step, and holds again 3 steps on.
    let dt = per_rank(&c, "dt").await[0];
    let new = dt / 2.0;
    c.set_at("dt", new, at + 2).await.expect("scheduled write");
    c.step(3).await.expect("step 3");
    until("3 steps", async || {
        held(&c).await && c.info().await.is_ok_and(|i| i.status.step == at + 3)
    })
    .await;
    assert_eq!(
        per_rank(&c, "step").await,
        vec![(at + 3) as f64; 4],
        "every rank 3 steps on"
    );
    assert_eq!(
        per_rank(&c, "dt").await,
        vec![new; 4],
        "every rank has the new dt"
    );
    // Never a step where some ranks had it and others not: the mean of dt
    // was only ever the old or the new value.
    let history = c.history(&["dt"], 0).await.expect("history");
    for s in history.get("dt").expect("dt's history").iter() {
        assert!(
            s.value == dt || s.value == new,
            "a mixed step: mean dt {}",
            s.value
        );
    }

    // Terminated a few steps on: mpirun exits 0, every rank at that step.
    let end = at + 10;
    c.terminate_at(end).await.expect("terminate at");
    c.resume().await.expect("resume");
    let (code, out) = job.finish();
    assert_eq!(code, Some(0), "{out}");
    assert_eq!(ended_at(&out), vec![end; 4], "{out}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_trigger_on_the_reduced_values_holds_every_rank_at_the_step_it_fired() {
    let _one = ONE_JOB.lock().await;
    let job = Job::start(4, &["32", "400"]);
    let c = connect(&job.run_file()).await;
    until("a few steps", async || {
        c.info().await.is_ok_and(|i| i.status.step > 5)
    })
    .await;
    // Conditions read the reduced values rank 0 publishes.
    let at = c.info().await.expect("info").status.step + 40;
    let condition = format!("step >= {at} && isfinite(residual)");
    c.add_trigger("there", &condition, &TriggerActions::pause())
        .await
        .expect("add a trigger");
    until("the hold", async || held(&c).await).await;
    let info = c.info().await.expect("info");
    assert_eq!(info.triggers[0].fired, 1);
    assert_eq!(
        per_rank(&c, "step").await,
        vec![at as f64; 4],
        "every rank held at the step the trigger fired"
    );
    c.terminate().await.expect("terminate");
    let (code, out) = job.finish();
    assert_eq!(code, Some(0), "{out}");
    assert_eq!(ended_at(&out), vec![at; 4], "{out}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sixteen_ranks_on_two_cores_pause_and_terminate_cleanly() {
    let _one = ONE_JOB.lock().await;
    let job = Job::start(16, &["64", "100"]);
    let c = connect(&job.run_file()).await;
    assert_eq!(c.info().await.expect("info").ranks, 16);
    until("a step", async || {
        c.info().await.is_ok_and(|i| i.status.step > 1)
    })
    .await;
    c.pause().await.expect("pause");
    until("the hold", async || held(&c).await).await;
    let at = c.info().await.expect("info").status.step;
    assert_eq!(per_rank(&c, "step").await, vec![at as f64; 16]);
    c.terminate().await.expect("terminate");
    let (code, out) = job.finish();
    assert_eq!(code, Some(0), "{out}");
    assert_eq!(ended_at(&out), vec![at; 16], "{out}");
}

/// The pid of rank `rank` of the job whose run files go to `runs`, from
/// the environment Open MPI gives each rank.
fn pid_of_rank(runs: &Path, rank: usize) -> Option<u32> {
    let want_rank = format!("OMPI_COMM_WORLD_RANK={rank}");
    let want_runs = format!("IDICT_RUNS_DIR={}", runs.display());
    std::fs::read_dir("/proc")
        .ok()?
        .flatten()
        .find_map(|entry| {
            let pid: u32 = entry.file_name().to_str()?.parse().ok()?;
            let environ = std::fs::read(entry.path().join("environ")).ok()?;
            let vars: Vec<&[u8]> = environ.split(|&b| b == 0).collect();
            let has = |v: &str| vars.contains(&v.as_bytes());
            (has(&want_rank) && has(&want_runs)).then_some(pid)
        })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rank_killed_fails_the_run_naming_it_and_no_watcher_hangs() {
    use futures::StreamExt;
    let _one = ONE_JOB.lock().await;
    let job = Job::start(4, &["32", "200"]);
    let c = connect(&job.run_file()).await;
    until("a few steps", async || {
        c.info().await.is_ok_and(|i| i.status.step > 5)
    })
    .await;
    let mut watch = c
        .watch(idict::client::WatchOptions::default())
        .await
        .expect("watch");
    let pid = pid_of_rank(job.runs.path(), 2).expect("rank 2's process");
    // SAFETY: kill has no memory preconditions.
    assert_eq!(unsafe { kill(pid as i32, 9) }, 0, "kill -9 rank 2");
    let last = tokio::time::timeout(Duration::from_secs(30), async {
        while let Some(u) = watch.next().await {
            match u {
                Ok(u) if u.last => return Some(u.status),
                Ok(_) => {}
                Err(_) => return None,
            }
        }
        None
    })
    .await
    .expect("the watch ended (no hang)");
    let status = last.expect("a final update, not a dropped connection");
    assert_eq!(status.state, idict::RunState::Failed, "{status:?}");
    assert!(status.message.starts_with("rank 2: "), "{}", status.message);
    let (code, _) = job.finish();
    assert_ne!(code, Some(0), "mpirun reports the killed rank");
}

unsafe extern "C" {
    fn kill(pid: i32, signal: i32) -> i32;
}

/// A pause asked while a rank is still computing its step: the status says
/// which rank rank 0 is waiting for, until it arrives.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_held_job_says_which_ranks_it_waits_for() {
    let _one = ONE_JOB.lock().await;
    let job = Job::start_with(4, &["32", "0"], &[("HEAT_SLOW_RANK", "3:700")]);
    let c = connect(&job.run_file()).await;
    until("a step", async || {
        c.info().await.is_ok_and(|i| i.status.step >= 1)
    })
    .await;
    c.pause().await.expect("pause");
    until("rank 0 waiting for rank 3", async || {
        c.info().await.is_ok_and(|i| {
            i.status.held && i.status.ranks_behind == 1 && i.status.ranks_behind_first == [3]
        })
    })
    .await;
    until("rank 3 to arrive", async || {
        c.info()
            .await
            .is_ok_and(|i| i.status.held && i.status.ranks_behind == 0)
    })
    .await;
    let at = c.info().await.expect("info").status.step;
    assert_eq!(per_rank(&c, "step").await, vec![at as f64; 4]);
    c.terminate().await.expect("terminate");
    let (code, out) = job.finish();
    assert_eq!(code, Some(0), "{out}");
}

/// The field decomposed in strips over 4 ranks reaches a watcher whole:
/// its shape is the global one and its sum is the energy the ranks'
/// strips add up to, at the same version.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_watched_field_is_stitched_from_every_ranks_block() {
    use futures::StreamExt;
    let _one = ONE_JOB.lock().await;
    let n = 40;
    let job = Job::start(4, &[&n.to_string(), "200"]);
    let c = connect(&job.run_file()).await;
    let mut watch = c
        .watch(idict::client::WatchOptions::default())
        .await
        .expect("watch");
    let h = 1.0 / (n - 1) as f64;
    let mut values: std::collections::BTreeMap<String, Value> = Default::default();
    let checked = tokio::time::timeout(Duration::from_secs(30), async {
        while let Some(Ok(u)) = watch.next().await {
            let stitched = u.changed.iter().any(|(k, _)| k == "u");
            for (k, v) in u.changed {
                values.insert(k, v);
            }
            let (Some(Value::Array(field)), Some(energy)) = (
                values.get("u"),
                values.get("energy").and_then(Value::as_f64),
            ) else {
                continue;
            };
            if stitched && u.version > 20 {
                assert_eq!(field.shape(), &[n, n]);
                let sum: f64 = field.to_f64_vec().iter().sum::<f64>() * h * h;
                assert!(
                    (sum - energy).abs() <= 1e-12 * energy.abs().max(1.0),
                    "{sum} vs {energy}"
                );
                assert!(energy > 0.0);
                return true;
            }
        }
        false
    })
    .await
    .expect("a stitched field within 30 s");
    assert!(checked, "the watch ended before a stitched field came");
    c.terminate().await.expect("terminate");
    let (code, out) = job.finish();
    assert_eq!(code, Some(0), "{out}");
}
