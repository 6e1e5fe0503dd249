//! Issue 15: a run killed and started again under the same name stayed
//! STALE on its dead address, and the new run was a separate entry. Now the
//! view follows it. A test binary of its own: it points the runs directory
//! (`IDICT_RUNS_DIR`) of the whole process at a temporary one.

use egui_kittest::Harness;
use egui_kittest::kittest::Queryable;
use idict::{IDict, ServeOptions, Value};
use idict_inspector::InspectorApp;
use idict_inspector::model::Connection;
use idict_inspector::net::OpenSpec;
use std::time::{Duration, Instant};

fn until(
    harness: &mut Harness<'static, Option<InspectorApp>>,
    what: &str,
    cond: impl Fn(&InspectorApp) -> bool,
) {
    let start = Instant::now();
    loop {
        harness.run_steps(1);
        if harness.state().as_ref().is_some_and(&cond) {
            return;
        }
        assert!(
            start.elapsed() < Duration::from_secs(20),
            "timed out waiting for {what}"
        );
        std::thread::sleep(Duration::from_millis(10));
    }
}

#[cfg(unix)]
#[test]
fn a_run_started_again_under_its_name_is_followed() {
    let dir = tempfile::tempdir().unwrap();
    // SAFETY: the only test of this binary sets it first, before any of
    // its threads (runtime, server) exist.
    unsafe { std::env::set_var("IDICT_RUNS_DIR", dir.path()) };
    let first = IDict::new("again");
    first.lock().insert("x", 1);
    first.notify_update().unwrap();
    let server = ServeOptions::default()
        .runs_dir(dir.path())
        .announce(false)
        .serve(&first)
        .unwrap();
    let path = idict::runfile::list_runs_in(dir.path()).unwrap()[0]
        .path
        .clone();

    // The window, opened on the run as the runs list opens one: its file.
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    let handle = rt.handle().clone();
    let spec = OpenSpec {
        target: path.display().to_string(),
        token: None,
    };
    let mut harness = Harness::builder()
        .with_size([1400.0, 900.0])
        .build_ui_state(
            move |ui, app: &mut Option<InspectorApp>| {
                let app = app.get_or_insert_with(|| {
                    let mut a =
                        InspectorApp::new(ui.ctx().clone(), handle.clone(), Default::default());
                    a.open(spec.clone());
                    a
                });
                app.ui_root(ui);
            },
            None,
        );
    let x = |a: &InspectorApp| a.tabs[0].model.values.get("x").cloned();
    until(&mut harness, "the first run", |a| {
        x(a) == Some(Value::Int(1))
    });
    let first_pid = harness.state().as_ref().unwrap().tabs[0].model.pid;

    // Killed: its server and run file go.
    drop(server);
    until(&mut harness, "the stale marker", |a| {
        matches!(a.tabs[0].model.connection, Connection::Disconnected { .. })
    });
    harness.run_steps(2);
    assert!(
        harness.query_by_label_contains("retrying in").is_some()
            || harness.query_by_label_contains("reconnecting").is_some(),
        "the header says what reconnecting does"
    );

    // Started again under the same name: another process's run (the
    // parent's pid, which is alive), on this host, started since.
    let second = IDict::new("again");
    second.lock().insert("x", 2);
    second.notify_update().unwrap();
    let server2 = ServeOptions::default()
        .write_run_file(false)
        .announce(false)
        .serve(&second)
        .unwrap();
    let now_ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64;
    let run = idict::runfile::RunFile {
        name: "again".into(),
        pid: std::os::unix::process::parent_id(),
        host: idict::runfile::host_name(),
        address: server2.address().to_string(),
        observer_token: server2.tokens().observer.clone(),
        controller_token: server2.tokens().controller.clone(),
        started_unix_ms: now_ms,
        protocol_version: 2,
        heartbeat_unix_ms: now_ms,
        metrics: None,
        ranks: 1,
    };
    idict::runfile::write_run_file(dir.path(), &run).unwrap();

    // The same view now shows the new run, and says so.
    until(&mut harness, "the restarted run", |a| {
        x(a) == Some(Value::Int(2)) && a.tabs[0].model.connection == Connection::Connected
    });
    let app = harness.state().as_ref().unwrap();
    assert_eq!(
        app.tabs.len(),
        1,
        "followed in the same view, not a new one"
    );
    assert_eq!(app.tabs[0].model.followed_from, Some(first_pid));
    harness.run_steps(2);
    assert!(harness.query_by_label_contains("was pid").is_some());
}
