//! Fleets in Prometheus, for real: two runs serve metrics, `idict
//! prometheus-sd` writes the file-based discovery targets, and a real
//! Prometheus (Debian's `prometheus`, started here on 127.0.0.1 with a
//! generated config) scrapes them; each run's `residual` is read back from
//! Prometheus's query API.

#![cfg(unix)]

mod common;

use assert_cmd::Command;
use common::{HeatRun, outside_program};
use idict::ServeOptions;
use idict_examples::heat::HeatConfig;
use serde_json::Value as Json;
use std::io::{Read, Write};
use std::time::{Duration, Instant};

/// A heat run serving metrics on 127.0.0.1, its run file in `runs`.
fn heat_run(name: &str, runs: &std::path::Path) -> HeatRun {
    let options = ServeOptions {
        metrics: Some("127.0.0.1:0".parse().unwrap()),
        ..Default::default()
    };
    let cfg = HeatConfig {
        n: 16,
        rate: 50.0,
        tolerance: 0.0,
        ..HeatConfig::default()
    };
    let run = HeatRun::serve(name, runs, options, cfg);
    assert!(run.metrics_address.is_some());
    run
}

struct Killed(std::process::Child);
impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// GET `path` from 127.0.0.1:`port`; the body, if the answer is 200.
fn get(port: u16, path: &str) -> Option<String> {
    let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
    write!(s, "GET {path} HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n").ok()?;
    let mut answer = String::new();
    s.read_to_string(&mut answer).ok()?;
    let (head, body) = answer.split_once("\r\n\r\n")?;
    head.starts_with("HTTP/1.1 200")
        .then(|| body.to_string())
        .or_else(|| head.starts_with("HTTP/1.0 200").then(|| body.to_string()))
}

#[test]
fn prometheus_scrapes_two_runs_found_through_prometheus_sd() {
    let Some(prometheus) = outside_program("prometheus", &["/usr/bin/prometheus"], "prometheus")
    else {
        return;
    };
    let runs = tempfile::tempdir().unwrap();
    let a = heat_run("heat-a", runs.path());
    let b = heat_run("heat-b", runs.path());
    let dir = tempfile::tempdir().unwrap();
    let sd = dir.path().join("idict.json");
    let out = Command::cargo_bin("idict")
        .unwrap()
        .env("IDICT_RUNS_DIR", runs.path())
        .args(["prometheus-sd", "--out"])
        .arg(&sd)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let targets: Json = serde_json::from_str(&std::fs::read_to_string(&sd).unwrap()).unwrap();
    assert_eq!(targets.as_array().unwrap().len(), 2, "{targets}");

    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let config = format!(
        "global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\n\
         scrape_configs:\n  - job_name: idict\n    file_sd_configs:\n      \
         - files: ['{}']\n        refresh_interval: 1s\n",
        sd.display()
    );
    std::fs::write(dir.path().join("prometheus.yml"), config).unwrap();
    let _prometheus = Killed(
        std::process::Command::new(&prometheus)
            .arg(format!(
                "--config.file={}",
                dir.path().join("prometheus.yml").display()
            ))
            .arg(format!(
                "--storage.tsdb.path={}",
                dir.path().join("data").display()
            ))
            .arg(format!("--web.listen-address=127.0.0.1:{port}"))
            .arg("--log.level=error")
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("prometheus starts"),
    );
    // Each run's residual, as Prometheus has it.
    let query = "/api/v1/query?query=idict_value%7Bkey%3D%22residual%22%7D";
    let start = Instant::now();
    let results = loop {
        if let Some(body) = get(port, query)
            && let Ok(answer) = serde_json::from_str::<Json>(&body)
            && let Some(r) = answer["data"]["result"].as_array()
            && r.len() == 2
        {
            break r.clone();
        }
        assert!(
            start.elapsed() < Duration::from_secs(90),
            "Prometheus did not get both runs' residual"
        );
        std::thread::sleep(Duration::from_millis(250));
    };
    let mut names: Vec<&str> = results
        .iter()
        .map(|r| r["metric"]["run"].as_str().unwrap())
        .collect();
    names.sort();
    assert_eq!(names, ["heat-a", "heat-b"]);
    for r in &results {
        let value: f64 = r["value"][1].as_str().unwrap().parse().unwrap();
        // The residual starts at 1 and falls as the run converges.
        assert!(value > 0.0 && value <= 1.0, "{r}");
        assert_eq!(r["metric"]["pid"], std::process::id().to_string());
        assert_eq!(r["metric"]["host"], idict::runfile::host_name());
    }
    // Their state too.
    let state = get(
        port,
        "/api/v1/query?query=idict_state%7Bstate%3D%22running%22%7D%3D%3D1",
    )
    .expect("a state query");
    let state: Json = serde_json::from_str(&state).unwrap();
    assert_eq!(
        state["data"]["result"].as_array().map(Vec::len),
        Some(2),
        "{state}"
    );
    // Every query of the Grafana dashboard runs, and finds both runs.
    let dashboard: Json = serde_json::from_str(
        &std::fs::read_to_string(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../docs/grafana-dashboard.json"
        ))
        .unwrap(),
    )
    .unwrap();
    for panel in dashboard["panels"].as_array().unwrap() {
        for target in panel["targets"].as_array().unwrap() {
            let expr = target["expr"]
                .as_str()
                .unwrap()
                .replace("$run", ".*")
                .replace("$key", "residual");
            let body = get(port, &format!("/api/v1/query?query={}", url_encode(&expr)))
                .unwrap_or_else(|| panic!("{expr}: no answer"));
            let answer: Json = serde_json::from_str(&body).unwrap();
            assert_eq!(answer["status"], "success", "{expr}: {answer}");
            assert!(
                !answer["data"]["result"].as_array().unwrap().is_empty(),
                "{expr} finds nothing"
            );
        }
    }
    drop((a, b));
}

fn url_encode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}
