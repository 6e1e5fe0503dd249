//! `ssh://` for real: an OpenSSH server (Debian's `openssh-server`) started
//! on 127.0.0.1 with a host key and an authorized key made for the test, a
//! real heat run, and the CLI and the client library reaching it through
//! `ssh ... idict bridge RUN`, as a laptop reaches a cluster node.

#![cfg(unix)]

mod common;

use assert_cmd::Command;
use common::{HeatRun, outside_program, small_heat};
use idict::{RunState, ServeOptions};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// An sshd of the test's own on 127.0.0.1, killed when dropped.
struct Sshd {
    child: std::process::Child,
    dir: tempfile::TempDir,
    port: u16,
}

fn keygen(ssh_keygen: &Path, path: &Path) {
    let ok = std::process::Command::new(ssh_keygen)
        .args(["-q", "-t", "ed25519", "-N", "", "-f"])
        .arg(path)
        .status()
        .expect("ssh-keygen (OpenSSH's client) is installed")
        .success();
    assert!(ok, "ssh-keygen failed");
}

/// Our own sshd, or `None` (the test is left out, saying why) when
/// OpenSSH's server or client is not installed.
fn sshd() -> Option<Sshd> {
    let server = outside_program("sshd", &["/usr/sbin/sshd"], "openssh-server")?;
    let ssh_keygen = outside_program("ssh-keygen", &[], "openssh-client")?;
    outside_program("ssh", &[], "openssh-client")?;
    // sshd wants its privilege separation directory.
    let _ = std::fs::create_dir_all("/run/sshd");
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    keygen(&ssh_keygen, &d.join("host_key"));
    keygen(&ssh_keygen, &d.join("client_key"));
    std::fs::copy(d.join("client_key.pub"), d.join("authorized_keys")).unwrap();
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let config = format!(
        "Port {port}\nListenAddress 127.0.0.1\nHostKey {d}/host_key\n\
         AuthorizedKeysFile {d}/authorized_keys\nPidFile {d}/sshd.pid\nStrictModes no\n\
         UsePAM no\nPermitRootLogin prohibit-password\nPasswordAuthentication no\n\
         KbdInteractiveAuthentication no\nPubkeyAuthentication yes\nLogLevel ERROR\n",
        d = d.display()
    );
    std::fs::write(d.join("sshd_config"), config).unwrap();
    let child = std::process::Command::new(server)
        .arg("-D")
        .arg("-e")
        .arg("-f")
        .arg(d.join("sshd_config"))
        .stderr(std::fs::File::create(d.join("sshd.log")).unwrap())
        .spawn()
        .expect("sshd starts");
    let start = Instant::now();
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(
            start.elapsed() < Duration::from_secs(10),
            "sshd did not listen: {}",
            std::fs::read_to_string(d.join("sshd.log")).unwrap_or_default()
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    Some(Sshd { child, dir, port })
}

impl Sshd {
    /// IDICT_SSH_COMMAND for this server: its key, no host key checks.
    fn ssh_command(&self, key: &str) -> String {
        format!(
            "ssh -i {} -o StrictHostKeyChecking=no -o UserKnownHostsFile=/dev/null \
             -o BatchMode=yes -o LogLevel=ERROR",
            self.dir.path().join(key).display()
        )
    }
}

impl Drop for Sshd {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A heat run served in this process, with its run file in `runs`.
fn heat_run(runs: &Path) -> HeatRun {
    HeatRun::serve("heat", runs, ServeOptions::default(), small_heat(32, 100.0))
}

/// The far side's idict: this build, finding runs in `runs`.
fn remote(runs: &Path) -> String {
    format!(
        "env IDICT_RUNS_DIR={} {}",
        runs.display(),
        PathBuf::from(env!("CARGO_BIN_EXE_idict")).display()
    )
}

struct Near<'a> {
    sshd: &'a Sshd,
    runs: &'a Path,
    /// This side's own runs directory: empty, so nothing is found here.
    here: tempfile::TempDir,
}

impl Near<'_> {
    fn idict(&self) -> Command {
        let mut c = Command::cargo_bin("idict").unwrap();
        c.env("IDICT_RUNS_DIR", self.here.path())
            .env("IDICT_SSH_COMMAND", self.sshd.ssh_command("client_key"))
            .env("IDICT_REMOTE", remote(self.runs))
            .env_remove("IDICT_ADDR")
            .env_remove("IDICT_TOKEN")
            .timeout(Duration::from_secs(60));
        c
    }

    fn url(&self, run: &str) -> String {
        format!("ssh://127.0.0.1:{}/{run}", self.sshd.port)
    }

    fn ok(&self, args: &[&str]) -> String {
        let out = self.idict().args(args).output().unwrap();
        assert!(
            out.status.success(),
            "{args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    fn fails(&self, args: &[&str], env: &[(&str, &str)]) -> String {
        let out = self
            .idict()
            .args(args)
            .envs(env.iter().copied())
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(1), "{args:?} should fail");
        let err = String::from_utf8_lossy(&out.stderr).into_owned();
        assert_eq!(err.trim().lines().count(), 1, "one line: {err}");
        err
    }
}

#[test]
fn the_cli_watches_pauses_sets_and_terminates_a_run_over_ssh() {
    let Some(sshd) = sshd() else { return };
    let runs = tempfile::tempdir().unwrap();
    let heat = heat_run(runs.path());
    let near = Near {
        sshd: &sshd,
        runs: runs.path(),
        here: tempfile::tempdir().unwrap(),
    };
    let run = near.url("heat");

    // The far host's runs.
    let ls = near.ok(&["ls", &format!("ssh://127.0.0.1:{}", sshd.port)]);
    assert!(
        ls.contains("HOST") && ls.lines().any(|l| l.starts_with("heat")),
        "{ls}"
    );

    let info = near.ok(&["info", &run, "--json"]);
    let info: serde_json::Value = serde_json::from_str(&info).unwrap();
    assert_eq!(info["name"], "heat");
    assert_eq!(info["pid"], std::process::id());
    assert_eq!(info["role"], "controller", "{info}");

    // Watch: a JSON line per update (three, then stop reading).
    let mut watch = std::process::Command::new(env!("CARGO_BIN_EXE_idict"))
        .args(["watch", &run, "step", "--json"])
        .env("IDICT_RUNS_DIR", near.here.path())
        .env("IDICT_SSH_COMMAND", sshd.ssh_command("client_key"))
        .env("IDICT_REMOTE", remote(runs.path()))
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = std::io::BufRead::lines(std::io::BufReader::new(watch.stdout.take().unwrap()));
    for _ in 0..3 {
        let line = lines.next().expect("an update").unwrap();
        let update: serde_json::Value = serde_json::from_str(&line).unwrap();
        assert!(update["version"].as_u64().unwrap() > 0, "{line}");
    }
    let _ = watch.kill();
    let _ = watch.wait();

    // Control and steering go through as well.
    assert!(near.ok(&["pause", &run]).contains("paused"));
    let start = Instant::now();
    while heat.idict.status().state != RunState::Paused {
        assert!(start.elapsed() < Duration::from_secs(10));
        std::thread::sleep(Duration::from_millis(10));
    }
    let set = near.ok(&["set", &run, "source", "2.5"]);
    assert!(set.contains("accepted"), "{set}");
    assert!(near.ok(&["resume", &run]).contains("running"));
    let start = Instant::now();
    while heat.idict.lock().get("source").and_then(|v| v.as_f64()) != Some(2.5) {
        assert!(
            start.elapsed() < Duration::from_secs(10),
            "the write was not applied"
        );
        std::thread::sleep(Duration::from_millis(10));
    }
    assert!(near.ok(&["terminate", &run, "--wait"]).contains("finished"));
    assert_eq!(heat.idict.status().state, RunState::Finished);
}

#[test]
fn ssh_failures_say_what_went_wrong() {
    let Some(sshd) = sshd() else { return };
    let runs = tempfile::tempdir().unwrap();
    let _heat = heat_run(runs.path());
    let near = Near {
        sshd: &sshd,
        runs: runs.path(),
        here: tempfile::tempdir().unwrap(),
    };
    let err = near.fails(&["info", &near.url("nosuch")], &[]);
    assert!(
        err.contains("no run named 'nosuch'") && err.contains("heat"),
        "{err}"
    );
    let err = near.fails(
        &["info", &near.url("heat")],
        &[("IDICT_REMOTE", "no-such-idict")],
    );
    assert!(err.contains("not on the PATH"), "{err}");
    let wrong_key = sshd.ssh_command("host_key");
    let err = near.fails(
        &["info", &near.url("heat")],
        &[("IDICT_SSH_COMMAND", &wrong_key)],
    );
    assert!(err.contains("could not log in"), "{err}");
    let err = near.fails(
        &["info", &near.url("heat")],
        &[("IDICT_SSH_COMMAND", "/no/such/ssh")],
    );
    assert!(err.contains("no ssh command"), "{err}");
    let closed = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let err = near.fails(&["info", &format!("ssh://127.0.0.1:{closed}/heat")], &[]);
    assert!(err.contains("could not reach"), "{err}");
}

#[test]
fn the_client_library_reaches_a_run_over_ssh() {
    let Some(sshd) = sshd() else { return };
    let runs = tempfile::tempdir().unwrap();
    let heat = heat_run(runs.path());
    let opts = idict::client::ConnectOptions {
        ssh: idict::client::ssh::SshOptions {
            ssh_command: Some(sshd.ssh_command("client_key")),
            remote: Some(remote(runs.path())),
        },
        ..Default::default()
    };
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        use futures::StreamExt;
        let url = format!("ssh://127.0.0.1:{}/heat", sshd.port);
        let client = idict::client::Client::connect_with(&url, opts)
            .await
            .unwrap();
        assert_eq!(client.address(), url);
        let info = client.info().await.unwrap();
        assert_eq!((info.name.as_str(), info.pid), ("heat", std::process::id()));
        let mut w = client
            .watch(idict::client::WatchOptions::default())
            .await
            .unwrap();
        let first = w.next().await.unwrap().unwrap();
        assert!(first.reset);
        // The 32x32 field arrives whole.
        let u = first.changed.iter().find(|(k, _)| k == "u").unwrap();
        assert_eq!(u.1.as_array().unwrap().shape(), [32, 32]);
        client.pause().await.unwrap();
        assert_eq!(client.resume().await.unwrap().state, RunState::Running);
    });
    drop(heat);
}
