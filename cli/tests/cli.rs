//! The `idict` binary end to end, against real example computations served
//! on 127.0.0.1:0 with a private runs directory.

mod common;

use assert_cmd::Command;
use common::{HeatRun, small_heat};
use idict::{IDict, RunState, ServeOptions};
use idict_examples::heat::HeatConfig;
use serde_json::Value as Json;
use std::time::Duration;

/// A heat run and the runs directory its run file is in (dropped after it).
struct Run {
    heat: HeatRun,
    dir: tempfile::TempDir,
}

impl std::ops::Deref for Run {
    type Target = HeatRun;
    fn deref(&self) -> &HeatRun {
        &self.heat
    }
}

/// Serves a real heat simulation (small grid, paced) in this process.
fn heat_run(cfg: HeatConfig) -> Run {
    let dir = tempfile::tempdir().unwrap();
    let heat = HeatRun::serve("heat", dir.path(), ServeOptions::default(), cfg);
    Run { heat, dir }
}

fn small(rate: f64) -> HeatConfig {
    small_heat(24, rate)
}

impl Run {
    /// `idict ARGS` fails, saying `words` on stderr.
    fn refused(&self, args: &[&str], words: &str) {
        let out = self.idict().args(args).output().unwrap();
        assert!(!out.status.success(), "{args:?} succeeded");
        assert!(stderr_of(&out).contains(words), "{}", stderr_of(&out));
    }

    fn idict(&self) -> Command {
        let mut c = Command::cargo_bin("idict").unwrap();
        c.env("IDICT_RUNS_DIR", self.dir.path())
            .env_remove("IDICT_ADDR")
            .env_remove("IDICT_TOKEN")
            .timeout(Duration::from_secs(30));
        c
    }

    fn json(&self, args: &[&str]) -> Json {
        let out = self.idict().args(args).output().unwrap();
        assert!(
            out.status.success(),
            "{args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        serde_json::from_slice(&out.stdout).unwrap()
    }
}

/// A run served under `name` (its run file in the returned directory)
/// that has published nothing yet.
fn unpublished_run(name: &str) -> (tempfile::TempDir, IDict, idict::Server) {
    let dir = tempfile::tempdir().unwrap();
    let idict = IDict::new(name);
    let server = ServeOptions::default()
        .runs_dir(dir.path())
        .announce(false)
        .serve(&idict)
        .unwrap();
    (dir, idict, server)
}

/// `idict ARGS` started in the background on the runs in `runs`, its
/// output piped.
fn spawn_idict(runs: &std::path::Path, args: &[&str]) -> std::process::Child {
    std::process::Command::new(assert_cmd::cargo::cargo_bin("idict"))
        .env("IDICT_RUNS_DIR", runs)
        .env_remove("IDICT_ADDR")
        .env_remove("IDICT_TOKEN")
        .args(args)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap()
}

fn stderr_of(out: &std::process::Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

#[test]
fn ls_and_info_find_and_describe_the_run() {
    let run = heat_run(small(200.0));
    let out = run.idict().arg("ls").output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success());
    assert!(
        text.contains("heat") && text.contains(&std::process::id().to_string()),
        "{text}"
    );
    assert!(text.contains("running"), "{text}");

    let ls = run.json(&["ls", "--json"]);
    assert_eq!(ls[0]["name"], "heat");
    assert_eq!(ls[0]["address"], run.address.as_str());

    for target in ["heat", &std::process::id().to_string(), &run.address] {
        let info = run.json(&["info", target, "--json"]);
        assert_eq!(info["name"], "heat");
        assert_eq!(info["pid"], std::process::id());
        assert_eq!(info["address"], run.address.as_str());
        assert_eq!(info["status"], "running");
        assert!(info["version"].as_u64().unwrap() > 0);
        let keys = info["keys"].as_array().unwrap();
        let dt = keys.iter().find(|k| k["name"] == "dt").unwrap();
        assert_eq!(
            (dt["type"].as_str(), dt["writable"].as_bool()),
            (Some("float"), Some(true))
        );
        let u = keys.iter().find(|k| k["name"] == "u").unwrap();
        assert_eq!(
            (u["type"].as_str(), u["writable"].as_bool()),
            (Some("array"), Some(false))
        );
    }
    let out = run.idict().args(["info", "heat"]).output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("writable: 0 < dt <="), "{text}");
}

#[test]
fn get_prints_values_and_summarises_arrays() {
    let run = heat_run(small(200.0));
    let all = run.json(&["get", "heat", "--json"]);
    assert_eq!(all["status"], "running");
    assert!(all["version"].as_u64().unwrap() > 0);
    assert_eq!(all["values"]["n"], 24);
    let u = &all["values"]["u"];
    assert_eq!(u["dtype"], "f64");
    assert_eq!(u["shape"], serde_json::json!([24, 24]));
    assert!(u.get("data").is_none(), "arrays summarised without --full");

    let full = run.json(&["get", "heat", "u", "--json", "--full"]);
    assert_eq!(full["values"]["u"]["data"].as_array().unwrap().len(), 24);
    assert_eq!(full["values"].as_object().unwrap().len(), 1);

    let out = run
        .idict()
        .args(["get", "heat", "n", "u"])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("n  24") && text.contains("f64[24, 24]"),
        "{text}"
    );

    let out = run.idict().args(["get", "heat", "nope"]).output().unwrap();
    assert!(!out.status.success());
    assert!(
        stderr_of(&out).contains("no key 'nope'"),
        "{}",
        stderr_of(&out)
    );
}

#[test]
fn watch_prints_a_json_line_per_update_and_exits_zero_when_the_run_ends() {
    let run = heat_run(HeatConfig {
        max_steps: 40,
        ..small(100.0)
    });
    let out = run
        .idict()
        .args(["watch", "heat", "step", "--json"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr_of(&out));
    let lines: Vec<Json> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert!(lines.len() >= 2);
    for l in &lines {
        assert!(l["version"].is_u64() && l["status"].is_string() && l["removed"].is_array());
        let changed = l["changed"].as_object().unwrap();
        assert!(
            changed.keys().all(|k| k == "step"),
            "only the keys asked for"
        );
    }
    let last = lines.last().unwrap();
    assert_eq!(last["status"], "finished");
    let versions: Vec<u64> = lines
        .iter()
        .map(|l| l["version"].as_u64().unwrap())
        .collect();
    assert!(versions.windows(2).all(|w| w[0] <= w[1]));
}

#[test]
fn history_gives_the_samples_as_csv_and_json() {
    let run = heat_run(small(500.0));
    run.wait_for("20 steps", |d| d.version() >= 20);
    let h = run.json(&["history", "heat", "residual", "step", "--json"]);
    let residual = h["residual"].as_array().unwrap();
    assert!(residual.len() >= 20);
    assert_eq!(residual[0][0], 1, "[version, t, value] from the start");
    assert_eq!(h["step"][0][2], 1.0);

    let out = run
        .idict()
        .args(["history", "heat", "step", "--csv"])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    let mut lines = text.lines();
    assert_eq!(lines.next(), Some("version,t,step"));
    assert!(lines.next().unwrap().starts_with("1,"));

    let out = run.idict().args(["history", "heat", "u"]).output().unwrap();
    assert!(!out.status.success());
    assert!(
        stderr_of(&out).contains("no history"),
        "{}",
        stderr_of(&out)
    );
}

#[test]
fn pause_step_resume_and_terminate_control_the_run() {
    let run = heat_run(small(300.0));
    run.idict()
        .args(["pause", "heat"])
        .assert()
        .success()
        .stdout("paused\n");
    run.wait_for("held", |d| d.status().held);
    let v = run.idict.version();
    std::thread::sleep(Duration::from_millis(50));
    assert_eq!(run.idict.version(), v);
    let got = run.json(&["get", "heat", "step", "--json"]);
    assert_eq!(got["status"], "paused");

    run.idict().args(["step", "heat", "2"]).assert().success();
    run.wait_for("two steps", |d| d.version() == v + 2 && d.status().held);
    run.idict().args(["step", "heat"]).assert().success();
    run.wait_for("one step", |d| d.version() == v + 3 && d.status().held);
    let out = run.idict().args(["step", "heat", "0"]).output().unwrap();
    assert!(!out.status.success() && stderr_of(&out).contains("N must be"));

    run.idict()
        .args(["resume", "heat"])
        .assert()
        .success()
        .stdout("running\n");
    run.wait_for("running again", |d| d.version() > v + 10);

    run.idict()
        .args(["terminate", "heat", "--wait"])
        .assert()
        .success();
    assert_eq!(run.idict.status().state, RunState::Finished);
}

#[test]
fn set_is_accepted_then_applied_and_refused_with_a_reason() {
    let run = heat_run(small(200.0));
    let out = run
        .idict()
        .args(["set", "heat", "dt", "1e-5", "--wait"])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{}", stderr_of(&out));
    assert!(
        text.contains("accepted") && text.contains("applied in version"),
        "{text}"
    );
    let got = run.json(&["get", "heat", "dt", "--json"]);
    assert_eq!(got["values"]["dt"], 1e-5);

    let out = run
        .idict()
        .args(["set", "heat", "residual", "0"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(
        stderr_of(&out).contains("not writable"),
        "{}",
        stderr_of(&out)
    );

    let out = run
        .idict()
        .args(["set", "heat", "dt", "1"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(
        stderr_of(&out).contains("above the maximum"),
        "{}",
        stderr_of(&out)
    );

    let out = run
        .idict()
        .args(["set", "heat", "source", "lots"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(
        stderr_of(&out).contains("source expects float, got str"),
        "{}",
        stderr_of(&out)
    );
}

#[test]
fn failures_are_one_clear_line_and_a_non_zero_exit() {
    let run = heat_run(small(100.0));
    let check = |args: &[&str], envs: &[(&str, &str)], needle: &str| {
        let mut c = run.idict();
        for (k, v) in envs {
            c.env(k, v);
        }
        let out = c.args(args).output().unwrap();
        let err = stderr_of(&out);
        assert!(!out.status.success(), "{args:?} should fail");
        assert!(err.contains(needle), "{args:?}: {err}");
        assert!(
            !err.contains("panicked") && !err.contains("RUST_BACKTRACE"),
            "{err}"
        );
    };
    check(&["info", "nosuchrun"], &[], "no run named 'nosuchrun'");
    check(&["info", "127.0.0.1:9"], &[], "cannot reach the run");
    check(
        &["info", &run.address, "--token", "wrong"],
        &[],
        "unauthenticated",
    );
    check(
        &["pause", "heat", "--token", &run.observer_token],
        &[],
        "permission denied",
    );
    check(&["info"], &[], "missing RUN");
    check(
        &["info"],
        &[("IDICT_ADDR", &run.address), ("IDICT_TOKEN", "nope")],
        "unauthenticated",
    );
    // An unset shell variable must not pick the only live run.
    check(&["terminate", "", "--wait"], &[], "the RUN given is empty");
    check(&["terminate", " "], &[], "the RUN given is empty");
    assert!(!run.idict.terminated());
    // A token for another run is not sent to the address a run file names.
    check(
        &["info", "heat", "--token", "for-some-other-run"],
        &[],
        "is sent only to the address it came with",
    );
    // IDICT_ADDR set but empty means no address: RUN is looked up.
    let mut c = run.idict();
    c.env("IDICT_ADDR", "");
    let out = c.args(["info", "heat"]).output().unwrap();
    assert!(out.status.success(), "{}", stderr_of(&out));
    // Usage errors are one line and exit 1 too, not clap's page and exit 2.
    for args in [&["info", "-1"][..], &["step", "heat", "-5"][..]] {
        check(args, &[], "unexpected argument");
        let out = run.idict().args(args).output().unwrap();
        assert_eq!(out.status.code(), Some(1), "{args:?}");
        assert_eq!(stderr_of(&out).trim_end().lines().count(), 1, "{args:?}");
    }
    // A directory is not a run file (it used to be "readable by other users").
    let dir = run.dir.path().to_str().unwrap().to_owned();
    check(&["info", &dir], &[], "a directory, not a run file");
    // Watching a key the run does not have says so instead of printing
    // empty updates.
    check(
        &["watch", "heat", "nokey"],
        &[],
        "no key 'nokey' in this run",
    );
    // With the address and a token from the environment, RUN is left out.
    let mut c = run.idict();
    c.env("IDICT_ADDR", &run.address)
        .env("IDICT_TOKEN", &run.observer_token);
    let out = c.args(["get", "n", "--json"]).output().unwrap();
    assert!(out.status.success(), "{}", stderr_of(&out));
    assert!(!run.idict.terminated());
}

/// A run's name comes from its program: it must not drive the terminal.
#[test]
fn control_characters_in_names_are_escaped() {
    let dir = tempfile::tempdir().unwrap();
    let idict = IDict::new("evil\u{1b}[2J\u{7}");
    idict.notify_update().unwrap();
    let _server = ServeOptions::default()
        .runs_dir(dir.path())
        .announce(false)
        .serve(&idict)
        .unwrap();
    let out = Command::cargo_bin("idict")
        .unwrap()
        .env("IDICT_RUNS_DIR", dir.path())
        .env_remove("IDICT_ADDR")
        .env_remove("IDICT_TOKEN")
        .timeout(Duration::from_secs(30))
        .arg("ls")
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success());
    assert!(
        !text.chars().any(|c| c.is_control() && c != '\n'),
        "{text:?}"
    );
    assert!(text.contains("evil\\u{1b}[2J\\u{7}"), "{text}");
}

/// After `step 2^64-1` the run goes on for good: its status says so.
#[test]
fn a_run_with_steps_left_reads_stepping() {
    let run = heat_run(small(100.0));
    let out = run
        .idict()
        .args(["step", "heat", "18446744073709551615"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr_of(&out));
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains(": stepping"), "{text}");
    let out = run.idict().arg("ls").output().unwrap();
    assert!(String::from_utf8_lossy(&out.stdout).contains("stepping"));
}

#[test]
fn a_tls_run_is_reached_with_its_ca() {
    let ck =
        rcgen::generate_simple_self_signed(vec!["localhost".to_string(), "127.0.0.1".to_string()])
            .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let ca = dir.path().join("ca.pem");
    std::fs::write(&ca, ck.cert.pem()).unwrap();
    let idict = IDict::new("secure");
    idict.lock().insert("x", 7);
    idict.notify_update().unwrap();
    let server = ServeOptions::default()
        .runs_dir(dir.path())
        .announce(false)
        .tls(idict::TlsIdentity {
            cert_pem: ck.cert.pem().into_bytes(),
            key_pem: ck.signing_key.serialize_pem().into_bytes(),
        })
        .serve(&idict)
        .unwrap();
    let idict_cmd = || {
        let mut c = Command::cargo_bin("idict").unwrap();
        c.env("IDICT_RUNS_DIR", dir.path())
            .env_remove("IDICT_ADDR")
            .env_remove("IDICT_TOKEN")
            .env_remove("IDICT_CA")
            .timeout(Duration::from_secs(30));
        c
    };
    let out = idict_cmd().args(["get", "secure", "x"]).output().unwrap();
    assert!(!out.status.success());
    assert!(stderr_of(&out).contains("--ca"), "{}", stderr_of(&out));
    let out = idict_cmd()
        .args(["get", "secure", "x", "--json", "--ca"])
        .arg(&ca)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr_of(&out));
    let v: Json = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["values"]["x"], 7);
    assert!(server.address().starts_with("https://"));
}

/// Issue 14: with a home directory shared by a cluster's nodes, run files
/// of other hosts counted as live for ever, and resolving one dialled
/// 127.0.0.1 here. Now: listed with their host while their heartbeat is
/// fresh, never dialled, and naming one says how to reach it.
#[test]
fn runs_on_other_hosts_are_listed_by_host_and_never_dialled_here() {
    let run = heat_run(small(200.0));
    let elsewhere = |name: &str, heartbeat_ms_ago: i64| idict::runfile::RunFile {
        name: name.into(),
        pid: 4242,
        host: "node17".into(),
        address: "http://127.0.0.1:1".into(),
        observer_token: "o".into(),
        controller_token: "c".into(),
        started_unix_ms: idict::runfile::now_unix_ms() - 60_000,
        protocol_version: 2,
        heartbeat_unix_ms: idict::runfile::now_unix_ms() - heartbeat_ms_ago,
        metrics: None,
        ranks: 1,
    };
    idict::runfile::write_run_file(run.dir.path(), &{
        let mut lbm = elsewhere("lbm", 2_000);
        // Its loopback metrics address means something only on node17.
        lbm.metrics = Some("127.0.0.1:9464".into());
        lbm
    })
    .unwrap();
    idict::runfile::write_run_file(run.dir.path(), &{
        let mut dead = elsewhere("crashed", 10 * 60_000);
        dead.pid = 4343;
        dead
    })
    .unwrap();

    let out = run.idict().arg("ls").output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{}", stderr_of(&out));
    assert!(text.contains("HOST"), "{text}");
    let lbm = text
        .lines()
        .find(|l| l.starts_with("lbm"))
        .expect("lbm listed");
    assert!(lbm.contains("node17") && lbm.contains("elsewhere"), "{lbm}");
    assert!(
        !text.contains("crashed"),
        "a stale heartbeat is a dead run: {text}"
    );
    assert!(
        stderr_of(&out).contains("ssh://node17/lbm"),
        "{}",
        stderr_of(&out)
    );

    let sd = run.idict().arg("prometheus-sd").output().unwrap();
    assert!(sd.status.success());
    assert!(
        !String::from_utf8_lossy(&sd.stdout).contains("9464"),
        "another host's loopback metrics are not a target"
    );

    let out = run.idict().args(["info", "lbm"]).output().unwrap();
    assert_eq!(out.status.code(), Some(1));
    let err = stderr_of(&out);
    assert!(
        err.contains("lives on host node17") && err.contains("ssh://node17/lbm"),
        "{err}"
    );
    assert_eq!(err.lines().count(), 1, "{err}");
}

/// `idict watch RUN KEY` started before the run's first update (as a job
/// script may, or CI under valgrind did) waits for it instead of saying
/// the run has no such key.
#[test]
fn watching_a_key_before_the_first_update_waits_for_it() {
    let (dir, idict, server) = unpublished_run("early");
    let watch = spawn_idict(dir.path(), &["watch", "early", "x"]);
    // Give the watch time to connect to the run at version 0.
    std::thread::sleep(Duration::from_millis(500));
    for x in 1..=3 {
        idict.lock().insert("x", x);
        idict.notify_update().unwrap();
    }
    idict.notify_update_final().unwrap();
    server.wait_then_close(Duration::from_secs(5));
    let out = watch.wait_with_output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(text.contains("x=3"), "{text}");
}

#[test]
fn a_nan_trigger_added_by_the_cli_pauses_a_heat_run_steered_into_instability() {
    let run = heat_run(HeatConfig {
        unstable_dt: true,
        // No steady state before it is steered.
        tolerance: 0.0,
        ..small(300.0)
    });
    let text = |out: &std::process::Output| String::from_utf8_lossy(&out.stdout).into_owned();
    // A bad condition says where it is wrong, and nothing is added.
    run.refused(
        &[
            "trigger",
            "heat",
            "add",
            "nan",
            "isnan(residual) &&",
            "--pause",
        ],
        "bad condition at column",
    );
    let out = run
        .idict()
        .args([
            "trigger",
            "heat",
            "add",
            "nan",
            "isnan(residual)",
            "--pause",
        ])
        .args(["--message", "the field blew up"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr_of(&out));
    assert!(
        text(&out).starts_with("added trigger 'nan': isnan(residual) → pause"),
        "{}",
        text(&out)
    );
    let out = run
        .idict()
        .args(["trigger", "heat", "add", "typo", "isnan(residul)"])
        .output()
        .unwrap();
    assert!(
        text(&out).contains("note: the run has no key 'residul' yet"),
        "{}",
        text(&out)
    );
    let ls = text(
        &run.idict()
            .args(["trigger", "heat", "ls"])
            .output()
            .unwrap(),
    );
    assert!(
        ls.contains("nan ") && ls.contains("client") && ls.contains("pause"),
        "{ls}"
    );
    run.idict()
        .args(["trigger", "heat", "rm", "typo"])
        .assert()
        .success();
    run.refused(
        &["trigger", "heat", "rm", "typo"],
        "no trigger named 'typo'",
    );

    // A script waiting on it: not within the timeout, exit 1.
    let out = run
        .idict()
        .args(["wait-for", "heat", "isnan(residual)", "--timeout", "200ms"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1), "{}", stderr_of(&out));
    // Two scripts wait: for the NaN, and for what never comes.
    let waiting = |condition: &str| {
        let mut c = run.idict();
        c.args(["wait-for", "heat", condition, "--timeout", "25s"]);
        std::thread::spawn(move || c.output().unwrap())
    };
    let nan_waiter = waiting("isnan(residual)");
    let never = waiting("step < 0");
    std::thread::sleep(Duration::from_millis(300));
    // Steered past the stability limit, it blows up and holds itself at
    // the first NaN.
    let dt = run.json(&["get", "heat", "dt", "--json"])["values"]["dt"]
        .as_f64()
        .unwrap_or(0.0);
    run.idict()
        .args(["set", "heat", "dt", &format!("{}", dt * 20.0)])
        .assert()
        .success();
    run.wait_for("the trigger to hold the run", |d| d.status().held);
    let out = nan_waiter.join().unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", stderr_of(&out));
    assert!(
        text(&out).starts_with("isnan(residual): true at v"),
        "{}",
        text(&out)
    );
    let got = run.json(&["get", "heat", "residual", "--json"]);
    assert_eq!(got["status"], "paused");
    let info = run.idict.triggers();
    assert_eq!(info[0].fired, 1);
    assert_eq!(
        info[0].last_fired_version,
        run.idict.version(),
        "held at the version that made it true"
    );
    assert!(
        run.idict
            .history("residual")
            .and_then(|s| s.last())
            .is_some_and(|s| s.value.is_nan()),
        "the last published residual is the NaN"
    );
    let ls = text(
        &run.idict()
            .args(["trigger", "heat", "ls"])
            .output()
            .unwrap(),
    );
    assert!(
        ls.contains(&format!("1 (last v{})", run.idict.version())),
        "{ls}"
    );
    // The run ends before `step < 0` holds: exit 2.
    run.idict()
        .args(["terminate", "heat", "--wait"])
        .assert()
        .success();
    let out = never.join().unwrap();
    assert_eq!(out.status.code(), Some(2), "{}", stderr_of(&out));
}

#[test]
fn getting_a_key_before_the_first_update_waits_for_it() {
    // A job asked as soon as its run file appears (an MPI job's rank 0
    // serves before its ranks have agreed on their keys): `get` answers
    // from the first update instead of saying the key is not there.
    let (dir, idict, server) = unpublished_run("early");
    let get = spawn_idict(dir.path(), &["get", "early", "step"]);
    std::thread::sleep(Duration::from_millis(500));
    idict.lock().insert("step", 1);
    idict.notify_update().unwrap();
    let out = get.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(String::from_utf8_lossy(&out.stdout), "step  1\n");
    idict.notify_update_final().unwrap();
    server.wait_then_close(Duration::from_secs(5));
}
