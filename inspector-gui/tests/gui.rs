//! The inspector, headless with egui_kittest, against a real in-process
//! server running a real computation (the heat simulation).

use egui_kittest::Harness;
use egui_kittest::kittest::Queryable;
use idict::{IDict, RunState, ServeOptions, Server, Value};
use idict_examples::heat::{self, HeatConfig};
use idict_inspector::InspectorApp;
use idict_inspector::model::Connection;
use idict_inspector::net::OpenSpec;
use idict_inspector::views::plots::plot_lines;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

/// A heat simulation served on 127.0.0.1:0.
struct Sim {
    idict: IDict,
    address: String,
    token: String,
    thread: Option<std::thread::JoinHandle<()>>,
}

fn options() -> ServeOptions {
    ServeOptions::default()
        .write_run_file(false)
        .announce(false)
}

fn start(opts: ServeOptions) -> Sim {
    let idict = IDict::new("gui-heat");
    let server = opts.serve(&idict).unwrap();
    let (address, token) = (
        server.address().to_string(),
        server.tokens().controller.clone(),
    );
    let handle = idict.clone();
    let thread = std::thread::spawn(move || {
        let cfg = HeatConfig {
            n: 16,
            rate: 100.0,
            tolerance: 0.0,
            ..HeatConfig::default()
        };
        if heat::run(&handle, &cfg).is_ok() {
            let _ = handle.notify_update_final();
        }
        server.wait_then_close(Duration::from_secs(2));
    });
    Sim {
        idict,
        address,
        token,
        thread: Some(thread),
    }
}

impl Drop for Sim {
    fn drop(&mut self) {
        self.idict.terminate();
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

struct Gui {
    harness: Harness<'static, Option<InspectorApp>>,
    _rt: tokio::runtime::Runtime,
}

fn gui(address: &str, token: &str) -> Gui {
    gui_with(vec![OpenSpec {
        target: address.to_string(),
        token: Some(token.to_string()),
    }])
}

/// The app, headless, with these runs open (the first selected).
fn gui_with(specs: Vec<OpenSpec>) -> Gui {
    gui_set_up(specs, |_| {})
}

/// The same, with `set_up` applied to the app as it is made (what a
/// command-line flag does).
fn gui_set_up(specs: Vec<OpenSpec>, set_up: fn(&mut InspectorApp)) -> Gui {
    gui_remembering(specs, set_up, Default::default())
}

/// The same, launched with `settings` remembered from an earlier launch.
fn gui_remembering(
    specs: Vec<OpenSpec>,
    set_up: fn(&mut InspectorApp),
    settings: idict_inspector::Settings,
) -> Gui {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    let handle = rt.handle().clone();
    let harness = Harness::builder()
        .with_size([1400.0, 900.0])
        .build_ui_state(
            move |ui, app: &mut Option<InspectorApp>| {
                let app = app.get_or_insert_with(|| {
                    let mut a =
                        InspectorApp::new(ui.ctx().clone(), handle.clone(), settings.clone());
                    for s in &specs {
                        a.open(s.clone());
                    }
                    a.selected = 0;
                    set_up(&mut a);
                    a
                });
                app.ui_root(ui);
            },
            None,
        );
    Gui { harness, _rt: rt }
}

/// A run with one key, `x = 1`, published and served.
fn one_key_run(name: &str) -> (IDict, Server) {
    let idict = IDict::new(name);
    idict.lock().insert("x", 1);
    idict.notify_update().unwrap();
    let server: Server = options().serve(&idict).unwrap();
    (idict, server)
}

/// The window attached to `server`, once it shows `x = 1`.
fn gui_on(server: &Server) -> Gui {
    let mut g = gui(server.address(), &server.tokens().controller);
    g.until("connected", |g| {
        g.connected() && g.value("x") == Some(Value::Int(1))
    });
    g
}

impl Gui {
    fn app(&self) -> &InspectorApp {
        self.harness.state().as_ref().unwrap()
    }

    /// Runs frames until `cond` holds (20 s at most).
    fn until(&mut self, what: &str, cond: impl Fn(&Self) -> bool) {
        let start = Instant::now();
        loop {
            self.harness.run_steps(1);
            if cond(self) {
                return;
            }
            assert!(
                start.elapsed() < Duration::from_secs(20),
                "timed out waiting for {what}"
            );
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// File > Open recording, in `dir` (as `IDICT_RECORD` would), picks
    /// `path`'s file and opens it.
    fn pick_recording(&mut self, dir: &std::path::Path, path: &std::path::Path) {
        if let Some(app) = self.harness.state_mut().as_mut() {
            app.recordings_dir = Some(dir.to_path_buf());
        }
        self.harness.get_by_label("File").click();
        self.harness.run_steps(2);
        self.harness.get_by_label("Open recording…").click();
        self.harness.run_steps(3);
        let name = path.file_name().unwrap().to_string_lossy().to_string();
        self.harness.get_by_label_contains(&name).click();
        self.harness.run_steps(2);
        self.harness.get_by_label("Open").click();
    }

    /// Opens the first plot's Keys menu.
    fn open_first_keys_menu(&mut self) {
        self.harness
            .get_all_by_label_contains("Keys (")
            .next()
            .unwrap()
            .click();
        self.harness.run_steps(2);
    }

    fn value(&self, key: &str) -> Option<Value> {
        self.app().tabs[0].model.values.get(key).cloned()
    }

    fn connected(&self) -> bool {
        self.app().tabs[0].model.connection == Connection::Connected
    }

    /// The lock the network task and the UI thread share for the first run.
    fn shared(&self) -> std::sync::Arc<parking_lot::Mutex<impl Send + 'static>> {
        self.app().tabs[0].handle.inbox.clone()
    }
}

/// Issue 29: a run of many keys. The values list lays out only the rows on
/// screen (every row of 100,000 keys was a frame's work of its own), its
/// filter finds any key, and the Keys menu lists the first matches of its
/// search and says how many more there are.
#[test]
fn a_run_of_many_keys_shows_the_rows_on_screen_and_finds_any_key() {
    let keys = 20_000;
    let idict = IDict::new("many-keys");
    {
        let mut d = idict.lock();
        for i in 0..keys {
            d.insert(format!("rank{:04}.q{:02}", i / 24, i % 24), i as f64);
        }
    }
    idict.notify_update().unwrap();
    let server: Server = options().serve(&idict).unwrap();
    let mut g = gui(server.address(), &server.tokens().controller);
    g.until("every key", |g| {
        g.connected() && g.app().tabs[0].model.values.len() == keys
    });
    g.harness.run_steps(2);
    let rows = g.harness.query_all_by_label_contains("rank0").count();
    assert!(rows > 5 && rows < 200, "{rows} rows laid out");

    let wanted = "rank0777.q13";
    assert!(
        g.harness.query_by_label(wanted).is_none(),
        "far down the list"
    );
    g.harness.state_mut().as_mut().unwrap().tabs[0]
        .values
        .filter = "0777.Q1".into();
    g.harness.run_steps(2);
    assert!(g.harness.query_by_label(wanted).is_some());
    let shown = g.harness.query_all_by_label_contains("rank0777.q1").count();
    assert_eq!(shown, 10, "q10..q19 of rank 777, one row each");

    // The Keys menu of the first plot: its search narrows 20,000 keys.
    g.open_first_keys_menu();
    let more = format!("and {} more: narrow the search", keys - 200);
    assert!(g.harness.query_by_label(&more).is_some(), "{more}");
    let ticks = g
        .harness
        .query_all_by_role(egui::accesskit::Role::CheckBox)
        .count();
    assert!((200..=210).contains(&ticks), "{ticks} checkboxes");
}

#[test]
fn attach_and_see_values_appear_and_change_and_plots_have_the_history() {
    let sim = start(options());
    let mut g = gui(&sim.address, &sim.token);
    g.until("the first values", |g| g.value("step").is_some());
    let first = g.value("step").unwrap();
    assert!(g.harness.get_all_by_label("residual").count() >= 1);
    g.until("step to change", |g| g.value("step") != Some(first.clone()));
    assert!(
        g.harness.get_all_by_label_contains("f64[16×16]").count() >= 1,
        "the array is summarised"
    );

    // Add max_u to the first plot through its Keys menu.
    g.until("plots", |g| !g.app().tabs[0].plots.plots.is_empty());
    g.open_first_keys_menu();
    g.harness
        .get_by_role_and_label(egui::accesskit::Role::CheckBox, "max_u")
        .click();
    g.harness.run_steps(2);
    // The menu stays open for the next key (it closed after each tick).
    g.harness
        .get_by_role_and_label(egui::accesskit::Role::CheckBox, "t")
        .click();
    g.harness.run_steps(2);
    let tab = &g.app().tabs[0];
    let cfg = tab.plots.plots[0].clone();
    assert!(cfg.keys.contains(&"max_u".to_string()), "{:?}", cfg.keys);
    assert!(cfg.keys.contains(&"t".to_string()), "{:?}", cfg.keys);
    // The plot holds every sample of the run's history (few enough to draw as is).
    let m = &tab.model;
    let lines = plot_lines(m, &cfg, 0.0, 1e12, 2000);
    let (_, pts) = lines.iter().find(|(k, _)| k == "max_u").unwrap();
    let history = sim.idict.history("max_u").unwrap();
    assert!(pts.len() >= history.len().min(m.series["max_u"].len()));
    assert_eq!(
        pts[0][0], 1.0,
        "the curve starts at the run's first version"
    );
}

#[test]
fn pause_step_set_and_terminate_from_the_window() {
    let sim = start(options());
    let mut g = gui(&sim.address, &sim.token);
    g.until("connected with values", |g| {
        g.connected() && g.value("step").is_some()
    });

    // Writable keys get an editor; read-only keys are not offered one.
    assert!(g.harness.query_by_label("Set dt").is_some());
    assert!(g.harness.query_by_label("Set residual").is_none());
    assert!(g.harness.query_by_label("Set step").is_none());

    let rate_shown = |g: &Gui| g.harness.query_by_label_contains("updates/s").is_some();
    g.until("the rate while it runs", rate_shown);
    g.harness.get_by_label("Pause").click();
    g.until("paused and held", |_| sim.idict.status().held);
    let held_at = sim.idict.version();
    g.until("the window to show it", |g| {
        g.harness.query_by_label("Resume").is_some()
    });
    // Issue 30: no rate that outlives the state while paused.
    g.harness.run_steps(2);
    assert!(!rate_shown(&g), "a paused run shows no update rate");
    std::thread::sleep(Duration::from_millis(100));
    assert_eq!(sim.idict.version(), held_at, "paused: the version stops");

    g.harness.state_mut().as_mut().unwrap().tabs[0]
        .controls
        .step_n = 3;
    g.harness.get_by_label("Step").click();
    g.until("three steps", |_| {
        sim.idict.version() == held_at + 3 && sim.idict.status().held
    });
    std::thread::sleep(Duration::from_millis(100));
    assert_eq!(
        sim.idict.version(),
        held_at + 3,
        "Step 3 advances exactly three"
    );

    g.harness.get_by_label("Resume").click();
    g.until("running again", |_| {
        sim.idict.status().state == RunState::Running
    });

    // Pause at a step ahead: the run holds having done exactly that many.
    let at = sim.idict.status().step + 30;
    g.harness.state_mut().as_mut().unwrap().tabs[0]
        .controls
        .pause_at = at;
    g.harness.get_by_label("Pause at").click();
    g.until("held at the step", |_| sim.idict.status().held);
    assert_eq!(sim.idict.status().step, at, "held having done {at} steps");
    g.until("the window to show it", |g| {
        g.harness.query_by_label("Resume").is_some()
    });
    g.harness.get_by_label("Resume").click();
    g.until("running again", |_| {
        sim.idict.status().state == RunState::Running
    });

    // Steer dt: a bad value is refused before sending, a good one is applied.
    g.harness
        .get_by_role_and_label(egui::accesskit::Role::TextInput, "dt")
        .focus();
    g.harness
        .get_by_role_and_label(egui::accesskit::Role::TextInput, "dt")
        .type_text("1e9");
    g.harness.run_steps(2);
    g.harness.get_by_label("Set dt").click();
    g.until("a local refusal", |g| {
        g.harness
            .query_by_label_contains("above the maximum")
            .is_some()
    });
    g.harness
        .get_by_role_and_label(egui::accesskit::Role::TextInput, "dt")
        .focus();
    for _ in 0..20 {
        g.harness.key_press(egui::Key::Backspace);
    }
    g.harness.run_steps(22);
    g.harness
        .get_by_role_and_label(egui::accesskit::Role::TextInput, "dt")
        .type_text("1e-4");
    g.harness.run_steps(2);
    g.harness.get_by_label("Set dt").click();
    g.until("dt applied in the run", |_| {
        sim.idict.lock().get("dt") == Some(&Value::Float(1e-4))
    });
    g.until("the window to show it", |g| {
        g.value("dt") == Some(Value::Float(1e-4))
    });

    g.harness.get_by_label("Terminate").click();
    g.harness.run_steps(2);
    g.harness.get_by_label("Terminate run").click();
    g.until("finished", |g| {
        sim.idict.status().state == RunState::Finished
            && g.app().tabs[0].model.status.as_ref().map(|s| s.state) == Some(RunState::Finished)
    });
}

/// Issue 30: with `dt = 4e-5` pending on a paused run, typing `abc` and
/// pressing Set still read "pending"; the refusal showed only after the
/// run resumed. A refusal shows at once, beside the write still pending.
#[test]
fn a_refused_value_shows_at_once_while_a_write_is_pending() {
    // A run that never reaches its next wait(): what is set stays pending.
    let idict = IDict::new("pending");
    idict.writable("dt", 1e-4);
    idict.notify_update().unwrap();
    let server = options().serve(&idict).unwrap();
    let mut g = gui(server.address(), &server.tokens().controller);
    g.until("the editor", |g| {
        g.connected() && g.harness.query_by_label("Set dt").is_some()
    });
    let set = |g: &mut Gui, text: &str| {
        let field = || (egui::accesskit::Role::TextInput, "dt");
        g.harness
            .get_by_role_and_label(field().0, field().1)
            .focus();
        g.harness
            .key_press_modifiers(egui::Modifiers::COMMAND, egui::Key::A);
        g.harness
            .get_by_role_and_label(field().0, field().1)
            .type_text(text);
        g.harness.run_steps(2);
        g.harness.get_by_label("Set dt").click();
        g.harness.run_steps(2);
    };
    set(&mut g, "4e-5");
    let pending = |g: &Gui| {
        g.harness
            .query_by_label_contains("pending: applied")
            .is_some()
    };
    g.until("the write pending", pending);
    set(&mut g, "abc");
    assert!(
        g.harness
            .query_by_label_contains("'abc' is not a number")
            .is_some(),
        "the refusal is not shown while a write is pending"
    );
    assert!(pending(&g), "the pending write is still said");
}

#[test]
fn an_observer_token_greys_the_controls_out() {
    let idict = IDict::new("observed");
    idict.writable("rate", 1.0);
    idict.notify_update().unwrap();
    let server: Server = options().serve(&idict).unwrap();
    let mut g = gui(server.address(), &server.tokens().observer.clone());
    g.until("connected", |g| {
        g.connected() && g.app().tabs[0].model.role.is_some()
    });
    g.harness.run_steps(2);
    g.harness.get_by_label("Pause").click();
    g.harness.run_steps(3);
    assert!(
        !idict.status().held && idict.status().state == RunState::Running,
        "a disabled button does nothing"
    );
    assert!(g.harness.query_by_label("Set rate").is_some());
}

#[test]
fn a_killed_server_shows_stale_state_and_a_restarted_one_is_reconnected() {
    // Find a free port, then serve there twice with the same tokens.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let addr = SocketAddr::from(([127, 0, 0, 1], port));
    let opts = options()
        .bind(idict::Bind::Tcp(addr))
        .tokens("obs-token", "ctl-token");
    let idict = IDict::new("restartable");
    idict.lock().insert("x", 1);
    idict.notify_update().unwrap();
    let server = opts.serve(&idict).unwrap();
    let mut g = gui(server.address(), "ctl-token");
    g.until("connected", |g| {
        g.connected() && g.value("x") == Some(Value::Int(1))
    });

    drop(server);
    g.until("the stale marker", |g| {
        g.harness.query_by_label_contains("STALE").is_some()
    });
    // What is known: the state when last seen, and no rate any more.
    g.harness.run_steps(2);
    assert!(
        g.harness
            .query_all_by_label_contains("last seen RUNNING")
            .count()
            > 0
    );
    assert!(g.harness.query_by_label_contains("updates/s").is_none());
    assert!(g.harness.query_by_label("Reconnect").is_some());
    assert_eq!(
        g.value("x"),
        Some(Value::Int(1)),
        "the last state stays visible"
    );

    idict.lock().insert("x", 2);
    idict.notify_update().unwrap();
    let _server = opts.serve(&idict).unwrap();
    g.until("reconnected", |g| {
        g.connected() && g.value("x") == Some(Value::Int(2))
    });
    g.until("the marker to go", |g| {
        g.harness.query_by_label_contains("STALE").is_none()
    });
}

/// A run file that is a FIFO: reading it blocks until someone writes it, so
/// whoever resolves it is stuck in blocking file I/O for as long as the test
/// likes (as on a slow network home directory).
#[cfg(unix)]
struct FifoRunFile {
    _dir: tempfile::TempDir,
    path: std::path::PathBuf,
}

#[cfg(unix)]
fn fifo_run_file() -> FifoRunFile {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("slow.json");
    let made = std::process::Command::new("mkfifo")
        .arg("-m")
        .arg("600")
        .arg(&path)
        .status()
        .unwrap();
    assert!(made.success(), "mkfifo failed");
    FifoRunFile { _dir: dir, path }
}

/// Writes `run` into the FIFO once a reader has opened it, but first checks
/// that `rt` still runs tasks while that reader is blocked. Returns whether
/// it did. The timeout is a watchdog, not a measurement: a runtime whose
/// only worker is stuck in the read never answers, and without it the test
/// would hang (the reader waits on the writer, the writer on the runtime)
/// instead of failing.
#[cfg(unix)]
fn feed_when_read(
    fifo: &FifoRunFile,
    rt: tokio::runtime::Handle,
    run: idict::runfile::RunFile,
) -> std::thread::JoinHandle<bool> {
    use std::io::Write;
    let path = fifo.path.clone();
    std::thread::spawn(move || {
        // Opening a FIFO for writing returns once a reader has opened it.
        let mut file = std::fs::OpenOptions::new().write(true).open(&path).unwrap();
        let (tx, rx) = std::sync::mpsc::channel();
        rt.spawn(async move {
            let _ = tx.send(());
        });
        let free = rx.recv_timeout(Duration::from_secs(10)).is_ok();
        file.write_all(&serde_json::to_vec(&run).unwrap()).unwrap();
        free
    })
}

#[cfg(unix)]
fn run_file_for(server: &Server, name: &str) -> idict::runfile::RunFile {
    idict::runfile::RunFile {
        name: name.into(),
        pid: std::process::id(),
        host: idict::runfile::host_name(),
        address: server.address().to_string(),
        observer_token: server.tokens().observer.clone(),
        controller_token: server.tokens().controller.clone(),
        started_unix_ms: 0,
        protocol_version: 1,
        heartbeat_unix_ms: idict::runfile::now_unix_ms(),
        metrics: None,
        ranks: 1,
    }
}

#[cfg(unix)]
#[test]
fn connecting_by_run_file_leaves_the_async_worker_free() {
    let (_idict, server) = one_key_run("by-run-file");
    let fifo = fifo_run_file();
    // One thread for everything async: a blocking read on it stops it all.
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let feeder = feed_when_read(&fifo, rt.handle().clone(), run_file_for(&server, "slow"));
    let target = fifo.path.display().to_string();
    let client = rt
        .block_on(idict::client::Client::connect_with(
            &target,
            idict::client::ConnectOptions::default(),
        ))
        .unwrap();
    assert!(
        feeder.join().unwrap(),
        "the runtime ran nothing while the run file was being read"
    );
    let snapshot = rt.block_on(client.snapshot("")).unwrap();
    assert_eq!(snapshot.values.get("x"), Some(&Value::Int(1)));
}

#[cfg(unix)]
#[test]
fn the_inspector_reads_run_files_off_its_network_worker() {
    let (_idict, server) = one_key_run("by-run-file");
    let fifo = fifo_run_file();
    let mut g = gui(
        &fifo.path.display().to_string(),
        &server.tokens().controller,
    );
    let feeder = feed_when_read(&fifo, g._rt.handle().clone(), run_file_for(&server, "slow"));
    // The first frame opens the run; its task starts resolving it.
    g.harness.run_steps(1);
    assert!(
        feeder.join().unwrap(),
        "the network runtime ran nothing while the run file was being read"
    );
    g.until("connected through the run file", |g| {
        g.connected() && g.value("x") == Some(Value::Int(1))
    });
}

#[test]
fn frames_go_on_while_the_network_holds_the_shared_lock() {
    let sim = start(options());
    let mut g = gui(&sim.address, &sim.token);
    g.until("connected with values", |g| {
        g.connected() && g.value("step").is_some()
    });
    // Stand in for a network task that holds the lock (applying a large
    // update, say) for as long as the UI draws frames.
    let shared = g.shared();
    let (locked_tx, locked_rx) = std::sync::mpsc::channel();
    let (release_tx, release_rx) = std::sync::mpsc::channel::<()>();
    let holder = std::thread::spawn(move || {
        let _guard = shared.lock();
        locked_tx.send(()).unwrap();
        // A watchdog, not a measurement: a UI that waits for this lock
        // never releases us, and the test should fail, not hang.
        release_rx.recv_timeout(Duration::from_secs(10)).is_ok()
    });
    locked_rx.recv().unwrap();
    g.harness.run_steps(3);
    let _ = release_tx.send(());
    assert!(
        holder.join().unwrap(),
        "a frame waited for the lock the network task held"
    );
    g.until("the updates held back to show", |g| {
        g.value("step").is_some() && g.connected()
    });
}

#[test]
fn no_frame_holds_the_shared_lock() {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
    let (_idict, server) = one_key_run("goes-away");
    let mut g = gui_on(&server);
    // While the run is unreachable the header asks for a repaint each
    // frame, from the middle of drawing: that is where we look.
    drop(server);
    g.until("the stale marker", |g| {
        g.harness.query_by_label_contains("STALE").is_some()
    });
    let shared = g.shared();
    let ui_thread = std::thread::current().id();
    let (probes, held) = (
        Arc::new(AtomicUsize::new(0)),
        Arc::new(AtomicBool::new(false)),
    );
    let (p, h) = (probes.clone(), held.clone());
    g.harness.ctx.set_repaint_observer(move |_| {
        if std::thread::current().id() != ui_thread || h.load(Ordering::Relaxed) {
            return;
        }
        p.fetch_add(1, Ordering::Relaxed);
        // Not try_lock: the network task may hold the lock for a moment.
        // Not lock: the lock is not re-entrant, and if this thread holds it
        // that would never return. A lock still taken after seconds is held
        // by the frame itself.
        if shared.try_lock_for(Duration::from_secs(5)).is_none() {
            h.store(true, Ordering::Relaxed);
        }
    });
    g.harness.run_steps(3);
    assert!(
        probes.load(Ordering::Relaxed) > 0,
        "no repaint was asked for while drawing"
    );
    assert!(
        !held.load(Ordering::Relaxed),
        "a frame held the lock the network task needs"
    );
}

/// The size of the heat map's texture, if there is one.
fn heatmap_texture_size(g: &Gui) -> Option<[usize; 2]> {
    g.harness
        .ctx
        .tex_manager()
        .read()
        .allocated()
        .find(|(_, meta)| meta.name.starts_with("heatmap-"))
        .map(|(_, meta)| meta.size)
}

#[test]
fn a_heat_map_larger_than_the_largest_texture_is_downsampled_to_fit() {
    let (idict, server) = one_key_run("wide");
    let mut g = gui_on(&server);
    // Below the default (2048), to see that the context's limit is the one
    // used; set before the array arrives, so every texture is made under it.
    g.harness.input_mut().max_texture_side = Some(1024);
    g.harness.run_steps(1);
    assert_eq!(g.harness.ctx.input(|i| i.max_texture_side), 1024);

    let wide: Vec<f64> = (0..20_000).map(f64::from).collect();
    idict
        .lock()
        .insert("wide", Value::array(wide, vec![1, 20_000]).unwrap());
    idict.notify_update().unwrap();
    g.until("the heat map", |g| heatmap_texture_size(g).is_some());
    assert_eq!(heatmap_texture_size(&g), Some([1024, 1]));
    // Drawn as a strip one can see, not at its 20000:1 aspect (a fiftieth
    // of a point tall).
    g.harness.run_steps(1);
    let shown = g.harness.get_by_label("Heat map of wide").rect();
    assert!(shown.height() >= 10.0 && shown.width() >= 80.0, "{shown:?}");

    // A new version of the key re-fills the same texture: as tall now.
    let tall: Vec<f64> = (0..40_000).map(f64::from).collect();
    idict
        .lock()
        .insert("wide", Value::array(tall, vec![20_000, 2]).unwrap());
    idict.notify_update().unwrap();
    g.until("the new shape", |g| {
        heatmap_texture_size(g) == Some([2, 1024])
    });
}

#[test]
fn a_1d_arrays_plot_points_are_built_once_per_version_of_it() {
    let curve = |k: f64| Value::array((0..1000).map(|i| k * f64::from(i)).collect(), vec![1000]);
    let idict = IDict::new("line");
    idict.lock().insert("curve", curve(1.0).unwrap());
    idict.lock().insert("x", 0);
    idict.notify_update().unwrap();
    let server: Server = options().serve(&idict).unwrap();
    let mut g = gui(server.address(), &server.tokens().controller.clone());
    g.until("the array", |g| g.value("curve").is_some());
    g.harness.state_mut().as_mut().unwrap().tabs[0]
        .values
        .selected_array = Some("curve".into());
    g.harness.run_steps(1);
    let builds = |g: &Gui| g.app().tabs[0].values.line_builds();
    assert_eq!(builds(&g), 1);
    // New versions of the run, the array unchanged: frames, no rebuilds.
    for i in 1..=5 {
        idict.lock().insert("x", i);
        idict.notify_update().unwrap();
        g.until("x to change", |g| g.value("x") == Some(Value::Int(i)));
    }
    g.harness.run_steps(3);
    assert_eq!(builds(&g), 1, "rebuilt while the array did not change");
    // The array changes: one rebuild.
    idict.lock().insert("curve", curve(2.0).unwrap());
    idict.notify_update().unwrap();
    g.until("the new array", |g| g.value("curve") == curve(2.0).ok());
    g.harness.run_steps(3);
    assert_eq!(builds(&g), 2);
}

/// Issue 15: a finished run showed its last rate and a Reconnect button.
#[test]
fn a_finished_run_shows_no_rate_and_nothing_to_reconnect() {
    let idict = IDict::new("finishing");
    idict.lock().insert("x", 1);
    idict.notify_update().unwrap();
    let server: Server = options().serve(&idict).unwrap();
    let mut g = gui(server.address(), &server.tokens().controller.clone());
    g.until("connected", |g| g.connected() && g.value("x").is_some());
    g.harness.run_steps(2);
    assert!(g.harness.query_by_label_contains("updates/s").is_some());
    idict.notify_update_final().unwrap();
    g.until("finished", |g| {
        g.app().tabs[0]
            .model
            .status
            .as_ref()
            .is_some_and(|s| s.state == RunState::Finished)
    });
    g.harness.run_steps(2);
    assert!(g.harness.query_all_by_label_contains("FINISHED").count() > 0);
    assert!(g.harness.query_by_label_contains("updates/s").is_none());
    assert!(g.harness.query_by_label("Reconnect").is_none());
    drop(server);
}

/// Issue 30 (after 15): the wheel over a plot zoomed it, so a column of
/// plots could be scrolled only over their toolbars. The wheel scrolls the
/// plots; Ctrl/⌘+wheel zooms the plot under the pointer in time, which
/// leaves follow mode; the (?) hint says so.
#[test]
fn the_wheel_scrolls_the_plots_and_ctrl_wheel_zooms_one() {
    let sim = start(options());
    let mut g = gui(&sim.address, &sim.token);
    g.until("plots", |g| {
        g.value("step").is_some() && !g.app().tabs[0].plots.plots.is_empty()
    });
    // A column taller than the window.
    {
        let plots = &mut g.harness.state_mut().as_mut().unwrap().tabs[0].plots.plots;
        for _ in 0..4 {
            plots.push(idict_inspector::views::plots::PlotConfig::of(vec![
                "residual".into(),
            ]));
        }
    }
    g.harness.run_steps(3);
    g.harness
        .get_all_by_role_and_label(egui::accesskit::Role::CheckBox, "Follow latest")
        .next()
        .unwrap()
        .click();
    g.harness.run_steps(2);
    assert!(g.app().tabs[0].plots.plots[0].follow);
    let target = g.app().tabs[0].model.target.clone();
    let id = idict_inspector::views::plots::plot_id(&target, 0);
    let memory =
        |g: &Gui| egui_plot::PlotMemory::load(&g.harness.ctx, id).expect("the first plot's memory");
    let frame = memory(&g).transform().frame().to_owned();
    let inside = frame.center();
    g.harness.hover_at(inside);
    g.harness.run_steps(1);
    let wheel = |g: &Gui, modifiers: egui::Modifiers| {
        g.harness.event(egui::Event::MouseWheel {
            unit: egui::MouseWheelUnit::Point,
            delta: egui::vec2(0.0, -80.0),
            modifiers,
            phase: egui::TouchPhase::Move,
            source: egui::MouseWheelSource::Wheel,
        });
    };
    let width = memory(&g).bounds().width();
    wheel(&g, egui::Modifiers::NONE);
    // Smooth scrolling spreads the wheel over a few frames.
    g.harness.run_steps(10);
    let scrolled = memory(&g).transform().frame().to_owned();
    assert!(
        scrolled.top() < frame.top() - 20.0,
        "the plots did not scroll: the first plot's top {} -> {}",
        frame.top(),
        scrolled.top()
    );
    assert!(
        g.app().tabs[0].plots.plots[0].follow,
        "the wheel left follow mode"
    );
    assert!(
        (memory(&g).bounds().width() - width).abs() < width * 0.01,
        "the wheel zoomed"
    );
    // Ctrl+wheel over the plot (now higher up) zooms it in time.
    g.harness
        .hover_at(egui::pos2(scrolled.center().x, scrolled.bottom() - 10.0));
    g.harness.run_steps(1);
    wheel(
        &g,
        egui::Modifiers {
            ctrl: true,
            command: true,
            ..Default::default()
        },
    );
    g.harness.run_steps(10);
    assert!(
        !g.app().tabs[0].plots.plots[0].follow,
        "Ctrl+wheel did not reach the plot"
    );
    let after = memory(&g).bounds().width();
    assert!(
        (after - width).abs() > width * 0.01,
        "x width {width} -> {after}"
    );
    assert!(idict_inspector::views::plots::NAVIGATION_HINT.contains("Ctrl/⌘+wheel: zoom time"));
}

/// Issues 15 and 30: at 800x500 the values list shrank to 3 rows, plot
/// toolbars wrapped to three rows and the second plot was ~40 px; at
/// 1280x800 "+ Add plot" sat half under Messages; made large again, the
/// values panel stayed narrow. At both sizes, after a resize from a large
/// window: nothing is cut at the window's edges, the controls and "+ Add
/// plot" are in view, the plots in view are at least 120 px tall, the
/// values list shows its rows, and the panels come back to their sizes.
#[test]
fn the_layout_fits_800x500_and_1280x800_after_resizes() {
    let sim = start(options());
    let mut g = gui(&sim.address, &sim.token);
    g.until("plots and steering", |g| {
        g.value("step").is_some()
            && !g.app().tabs[0].plots.plots.is_empty()
            && g.harness.query_by_label("Set dt").is_some()
    });
    g.harness.run_steps(5);
    let chosen = g.app().settings.panels.values.size;
    for (w, h) in [(800.0, 500.0), (1280.0, 800.0)] {
        g.harness.set_size(egui::vec2(w, h));
        g.harness.run_steps(10);
        let window = egui::Rect::from_min_size(egui::Pos2::ZERO, egui::vec2(w, h));
        let at = format!("at {w}x{h}");
        // Nothing reaches past the window's right edge.
        for node in g
            .harness
            .query_all(egui_kittest::kittest::by().predicate(|n| n.bounding_box().is_some()))
        {
            let r = node.rect();
            if r.is_positive() {
                assert!(
                    r.right() <= window.right() + 0.5,
                    "{at}: {node:?} ends at x = {}",
                    r.right()
                );
            }
        }
        for label in [
            "Set dt",
            "Set source",
            "Pause",
            "Terminate",
            "Save window as PNG",
            "+ Add plot",
            "Filter",
        ] {
            let rect = g.harness.get_by_label(label).rect();
            assert!(window.contains_rect(rect), "{at}: {label} at {rect:?}");
        }
        let messages = g.harness.get_by_label_contains("Messages (").rect();
        let add = g.harness.get_by_label("+ Add plot").rect();
        assert!(
            add.bottom() <= messages.top(),
            "{at}: + Add plot at {add:?} is under Messages at {messages:?}"
        );
        // Every plot frame in view is a readable height; the first is whole.
        let target = g.app().tabs[0].model.target.clone();
        for i in 0..g.app().tabs[0].plots.plots.len() {
            let id = idict_inspector::views::plots::plot_id(&target, i);
            let Some(mem) = egui_plot::PlotMemory::load(&g.harness.ctx, id) else {
                continue;
            };
            let frame = *mem.transform().frame();
            assert!(frame.height() >= 120.0, "{at}: plot {i} is {frame:?}");
            assert!(frame.width() >= 250.0, "{at}: plot {i} is {frame:?}");
            if i == 0 {
                assert!(window.contains_rect(frame), "{at}: plot 0 at {frame:?}");
            }
        }
        // The values list shows its rows (it kept 3 at 800x500).
        let shown = g.app().tabs[0]
            .model
            .values
            .keys()
            .filter(|k| !matches!(k.as_str(), "dt" | "source"))
            .filter(|k| {
                g.harness
                    .query_all_by_label(k)
                    .any(|n| window.contains_rect(n.rect()))
            })
            .count();
        assert!(shown >= 5, "{at}: {shown} rows of values in view");
    }
    // Large again: the values panel is as wide as before (it stayed at
    // what 800x500 allowed).
    let values = g.app().settings.panels.values;
    assert_eq!(values.size, chosen, "the chosen width is kept");
    let shown = values.shown().unwrap();
    assert!(
        (shown - chosen).abs() < 1.0,
        "the values panel is {shown} px wide, chosen {chosen}"
    );
}

/// Issue 15: the inspector never went idle (35% of a core with every run
/// paused). With nothing changing, nothing asks for a frame: not the UI,
/// not the network task (its once-a-second info poll asks only when what
/// the header shows moved).
#[test]
fn nothing_asks_for_a_frame_when_nothing_changes() {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};
    let (_idict, server) = one_key_run("still");
    let mut g = gui_on(&server);
    // Past the highlight of the first values and a first info poll.
    let settle = Instant::now();
    while settle.elapsed() < Duration::from_secs(3) {
        g.harness.run_steps(1);
        std::thread::sleep(Duration::from_millis(50));
    }
    let asked = Arc::new(AtomicUsize::new(0));
    let count = asked.clone();
    g.harness.ctx.set_repaint_observer(move |_| {
        count.fetch_add(1, Ordering::Relaxed);
    });
    // Two and a half seconds: two info polls fall in it.
    let start = Instant::now();
    while start.elapsed() < Duration::from_millis(2500) {
        g.harness.run_steps(1);
        std::thread::sleep(Duration::from_millis(100));
    }
    assert_eq!(
        asked.load(Ordering::Relaxed),
        0,
        "frames were asked for while nothing changed"
    );
}

/// Issue 16: a recording opens in the inspector as a replay, held at its
/// start; Resume runs it to the end, and the view has the recorded run's
/// values and curves.
#[test]
fn a_recording_opens_as_a_replay_with_a_timeline_to_scrub() {
    let (_dir, path) = recorded_with_marks();
    let replay = idict_inspector::demo::Replay::start(&path).unwrap();
    let mut g = gui(&replay.address, &replay.controller_token);
    g.until("the replay, held at its start", |g| {
        g.connected()
            && g.app().tabs[0].model.status.as_ref().map(|s| s.state) == Some(RunState::Paused)
            && g.app().tabs[0].model.replay.is_some()
    });
    g.harness.run_steps(2);
    assert!(g.harness.query_by_label_contains("replay of").is_some());
    let marks = &g.app().tabs[0].model.replay.as_ref().unwrap().marks;
    assert_eq!(marks.len(), 3, "a write, a pause and a resume: {marks:?}");
    g.harness.get_by_label("Resume").click();
    g.until("the end of the replay, held there", |g| {
        let m = &g.app().tabs[0].model;
        m.version == 101 && m.status.as_ref().map(|s| s.state) == Some(RunState::Paused)
    });
    assert_eq!(g.value("step"), Some(Value::Int(99)));
    assert_eq!(g.app().tabs[0].model.series["step"].len(), 100);
    // Scrub back to v40: the values and the curve as they were then.
    g.harness
        .get_by_label("Replay position")
        .set_value_accesskit(40.0);
    g.until("the state at v40", |g| {
        g.app().tabs[0].model.version == 40 && g.value("step") == Some(Value::Int(39))
    });
    assert_eq!(g.app().tabs[0].model.series["step"].len(), 40);
    // And to the end again.
    g.harness.get_by_label("End").click();
    g.until("the state at the end", |g| {
        g.app().tabs[0].model.version == 101
    });
    // The same place as before, again: sent again (it once was not).
    g.harness
        .get_by_label("Replay position")
        .set_value_accesskit(40.0);
    g.until("the state at v40, again", |g| {
        g.app().tabs[0].model.version == 40
    });
    drop(replay);
}

/// Issue 30: a write at v203 was marked where the handle reads v237 (the
/// marks were spread over the slider and its label). A mark sits where
/// the handle is at its version: hovering there names it, and a press on
/// it (a little off, with several versions a pixel) goes to exactly that
/// version, with no seek to the pixel's version first (which, past the
/// mark, made the replay start over).
#[test]
fn a_timeline_mark_sits_where_the_handle_reads_its_version() {
    let (_dir, path) = recorded_with_marks_over(3000);
    let replay = idict_inspector::demo::Replay::start(&path).unwrap();
    let mut g = gui(&replay.address, &replay.controller_token);
    g.until("the replay with its marks", |g| {
        g.connected()
            && g.app().tabs[0].model.role == Some(idict::Role::Controller)
            && g.app().tabs[0]
                .model
                .replay
                .as_ref()
                .is_some_and(|t| t.marks.len() == 3)
    });
    g.harness.run_steps(2);
    let t = g.app().tabs[0].model.replay.clone().unwrap();
    let write = t
        .marks
        .iter()
        .find(|m| m.kind == idict::MarkKind::Write)
        .unwrap()
        .version;
    let rail = g.harness.get_by_label("Replay position").rect();
    let x = idict_inspector::views::timeline::mark_x(&rail, t.first_version, t.last_version, write);
    let at = egui::pos2(x, rail.center().y);
    g.harness.hover_at(at);
    g.harness.run_steps(2);
    assert!(
        g.harness
            .query_by_label_contains(&format!("v{write}: gain"))
            .is_some(),
        "no mark under the pointer where the handle reads v{write}"
    );
    // Pressed 3 px right of the mark: ~12 versions past it.
    let off = egui::pos2(x + 3.0, rail.center().y);
    let generation = g.app().tabs[0].model.generation;
    g.harness.hover_at(off);
    g.harness.run_steps(1);
    g.harness.drag_at(off);
    g.harness.run_steps(1);
    g.harness.drop_at(off);
    g.harness.run_steps(1);
    g.until("the replay at the mark's version", |g| {
        g.app().tabs[0].model.version == write
    });
    std::thread::sleep(Duration::from_millis(300));
    g.harness.run_steps(3);
    let m = &g.app().tabs[0].model;
    assert_eq!(m.version, write, "went on past the mark");
    assert_eq!(
        m.generation, generation,
        "the replay started over: it was sent past the mark first"
    );
}

/// A run that published `step` = 0..100, with a write of `gain` from a
/// client at its 31st wait and a pause and resume at its 61st, recorded:
/// the directory and the recording.
fn recorded_with_marks() -> (tempfile::TempDir, std::path::PathBuf) {
    recorded_with_marks_over(100)
}

/// The same over `steps` updates: the write at 30% of them, the pause and
/// resume at 60%.
fn recorded_with_marks_over(steps: i64) -> (tempfile::TempDir, std::path::PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let run = IDict::new("recorded");
    run.writable("gain", 1.0);
    let server = options().record(dir.path()).serve(&run).unwrap();
    let path = server.recording().unwrap().to_path_buf();
    // A write and a pause/resume from a client: marks on the timeline.
    let rt = tokio::runtime::Runtime::new().unwrap();
    let client = rt.block_on(async {
        idict::client::Client::connect_target(
            idict::client::Target::at(server.address(), Some(server.tokens().controller.clone())),
            Default::default(),
        )
        .await
        .unwrap()
    });
    for i in 0..steps {
        if i == steps * 3 / 10 {
            rt.block_on(client.set("gain", 2.0)).unwrap();
        }
        if i == steps * 6 / 10 {
            rt.block_on(client.pause()).unwrap();
            rt.block_on(client.resume()).unwrap();
        }
        run.wait();
        run.lock().insert("step", i);
        run.notify_update().unwrap();
    }
    run.notify_update_final().unwrap();
    drop(client);
    server.close();
    (dir, path)
}

/// Issue 16: a plot lays the same key of another open run over its own,
/// a legend entry per run.
#[test]
fn a_plot_compares_a_key_across_two_runs() {
    let runs: Vec<(IDict, Server)> = ["first", "second"]
        .iter()
        .enumerate()
        .map(|(n, name)| {
            let idict = IDict::new(*name);
            for i in 0..50 {
                idict
                    .lock()
                    .insert("residual", 1.0 / (i + 1 + n * 10) as f64);
                idict.notify_update().unwrap();
            }
            let server = options().serve(&idict).unwrap();
            (idict, server)
        })
        .collect();
    let specs: Vec<OpenSpec> = runs
        .iter()
        .map(|(_, s)| OpenSpec {
            target: s.address().to_string(),
            token: Some(s.tokens().observer.clone()),
        })
        .collect();
    let mut g = gui_with(specs);
    g.until("both runs with their curves", |g| {
        let tabs = &g.app().tabs;
        tabs.len() == 2
            && tabs.iter().all(|t| {
                t.model
                    .series
                    .get("residual")
                    .is_some_and(|s| s.len() == 50)
            })
            && !tabs[0].plots.plots.is_empty()
    });
    g.harness.get_by_label("Compare (0)").click();
    g.harness.run_steps(2);
    let pid = std::process::id();
    g.harness
        .get_by_role_and_label(
            egui::accesskit::Role::CheckBox,
            &format!("second (pid {pid})"),
        )
        .click();
    g.harness.run_steps(3);
    let cfg = &g.app().tabs[0].plots.plots[0];
    assert_eq!(cfg.compare, [runs[1].1.address().to_string()]);
    // Both runs in the legend, named.
    assert!(
        g.harness
            .query_by_label(&format!("residual · first (pid {pid})"))
            .is_some()
    );
    assert!(
        g.harness
            .query_by_label(&format!("residual · second (pid {pid})"))
            .is_some()
    );
}

/// What opens these replays in the window.
fn opening(replays: &[idict_inspector::demo::Replay]) -> Vec<OpenSpec> {
    replays
        .iter()
        .map(|r| OpenSpec {
            target: r.address.clone(),
            token: Some(r.controller_token.clone()),
        })
        .collect()
}

/// A run called `name` that published `key` = `value(i)` for i in 0..n,
/// recorded into a directory of its own; the directory and the recording.
fn recorded(
    name: &str,
    n: i64,
    key: &str,
    value: impl Fn(i64) -> Value,
) -> (tempfile::TempDir, std::path::PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let run = IDict::new(name);
    let server = options().record(dir.path()).serve(&run).unwrap();
    let path = server.recording().unwrap().to_path_buf();
    for i in 0..n {
        run.lock().insert(key, value(i));
        run.notify_update().unwrap();
    }
    run.notify_update_final().unwrap();
    server.close();
    (dir, path)
}

/// A run called `name` that published `step` = 0..n, recorded.
fn recorded_steps(name: &str, n: i64) -> (tempfile::TempDir, std::path::PathBuf) {
    recorded(name, n, "step", Value::Int)
}

/// Issue 16: a recording's path in the Connect field opens it as a
/// replay (read off the UI thread); a missing one says why.
#[test]
fn a_recording_opens_from_the_connect_field() {
    let (dir, path) = recorded_steps("on-disk", 20);
    let mut g = gui_with(Vec::new());
    g.harness.run_steps(2);
    let missing = dir.path().join("missing.idrec");
    g.harness.get_by_label("Address").focus();
    g.harness
        .get_by_label("Address")
        .type_text(&missing.display().to_string());
    g.harness.run_steps(1);
    g.harness.get_by_label("Connect").click();
    g.until("a notice", |g| {
        g.app()
            .notice
            .as_deref()
            .is_some_and(|n| n.contains("missing.idrec"))
    });
    assert!(g.app().tabs.is_empty());
    g.harness.get_by_label("Address").focus();
    g.harness
        .key_press_modifiers(egui::Modifiers::COMMAND, egui::Key::A);
    g.harness
        .get_by_label("Address")
        .type_text(&path.display().to_string());
    g.harness.run_steps(1);
    g.harness.get_by_label("Connect").click();
    g.until("the replay, open", |g| {
        g.app().tabs.len() == 1
            && g.app().tabs[0].model.replay.is_some()
            && g.app().tabs[0].model.name == "on-disk"
    });
    assert!(g.app().notice.is_none());
}

/// Issue 16: File > Open recording shows the recordings where they are
/// (`IDICT_RECORD`'s directory, `runs/`; here one given); picking one
/// replays it.
#[test]
fn file_open_picks_a_recording() {
    let (dir, path) = recorded_steps("picked", 10);
    let mut g = gui_with(Vec::new());
    g.harness.run_steps(2);
    g.pick_recording(dir.path(), &path);
    g.until("the picked recording, open", |g| {
        g.app().tabs.len() == 1 && g.app().tabs[0].model.name == "picked"
    });
}

/// `--compare` opens recordings whole: held at their end, not their start.
#[test]
fn a_recording_opened_to_compare_is_held_at_its_end() {
    let (_dir, path) = recorded_steps("whole", 30);
    let replay =
        idict_inspector::demo::Replay::start_at(&path, Some(idict::SeekTo::Version(u64::MAX)))
            .unwrap();
    let start = Instant::now();
    while !(replay.idict.version() == 31 && replay.idict.status().state == RunState::Paused) {
        assert!(
            start.elapsed() < Duration::from_secs(20),
            "not held at its end"
        );
        std::thread::sleep(Duration::from_millis(10));
    }
    assert_eq!(replay.idict.history("step").unwrap().len(), 30);
}

/// Issue 30: two recordings open were both listed as "heat (PID)", with
/// the inspector's own pid (replays run in its process). A replay is
/// listed by its recorded run and its file, and described on hover.
#[test]
fn replays_are_told_apart_in_the_runs_list() {
    let (_a_dir, a) = recorded_steps("same", 10);
    let (_b_dir, b) = recorded_steps("same", 10);
    let replays = [
        idict_inspector::demo::Replay::start(&a).unwrap(),
        idict_inspector::demo::Replay::start(&b).unwrap(),
    ];
    let specs = opening(&replays);
    let mut g = gui_with(specs);
    g.until("both replays with their info", |g| {
        g.app().tabs.len() == 2 && g.app().tabs.iter().all(|t| t.model.replay.is_some())
    });
    g.harness.run_steps(2);
    let pid = std::process::id();
    assert!(
        g.harness.query_by_label(&format!("same ({pid})")).is_none(),
        "a replay listed by the inspector's pid"
    );
    for path in [&a, &b] {
        let file = path.file_name().unwrap().to_string_lossy();
        let label = format!("same (recorded pid {pid}) · {file}");
        assert!(
            g.harness.query_by_label(&label).is_some(),
            "no \"{label}\" in the Runs list"
        );
    }
    assert!(a.file_name() != b.file_name());
    let m = &g.app().tabs[0].model;
    assert!(
        m.describe()
            .starts_with(&format!("A replay of {}", a.display()))
    );
}

/// A run opened again from the Recent list (by name) selects the live
/// run of that name if it is open, and never a replay of one.
#[test]
fn a_name_from_recent_is_never_taken_for_a_replay_of_it() {
    let (_dir, path) = recorded_steps("twin", 5);
    let replay = idict_inspector::demo::Replay::start(&path).unwrap();
    let mut g = gui_with(opening(std::slice::from_ref(&replay)));
    g.until("the replay, named", |g| {
        g.app().tabs[0].model.replay.is_some() && g.app().tabs[0].model.name == "twin"
    });
    let by_name = OpenSpec {
        target: "twin".into(),
        token: None,
    };
    if let Some(app) = g.harness.state_mut().as_mut() {
        app.open(by_name.clone());
    }
    assert_eq!(g.app().tabs.len(), 2, "the replay was taken for the run");
    assert_eq!(g.app().selected, 1);
    // Asked again: the tab opened for it is selected, not a third.
    if let Some(app) = g.harness.state_mut().as_mut() {
        app.selected = 0;
        app.open(by_name);
    }
    assert_eq!(g.app().tabs.len(), 2);
    assert_eq!(g.app().selected, 1);
}

/// Issue 30: Recent never changed (runs opened from the list and
/// recordings never got in), File > Open started in the working directory
/// each time, and the window and panels came back at their old sizes. The
/// settings saved hold the runs opened (by name, a recording by its path),
/// the last folder, the window's size and the panels' chosen sizes; a
/// launch with them lists the runs to open again, opens the file dialog
/// where the last recording was, and gives the panels their sizes back.
#[test]
fn the_window_remembers_recent_runs_the_last_folder_and_its_sizes() {
    let (dir, recording) = recorded_steps("recorded-one", 10);
    let (_idict, server) = one_key_run("live-one");
    let runs = tempfile::tempdir().unwrap();
    let run_file =
        idict::runfile::write_run_file(runs.path(), &run_file_for(&server, "live-one")).unwrap();
    let mut g = gui_with(vec![OpenSpec {
        target: run_file.display().to_string(),
        token: None,
    }]);
    g.until("the run opened by its run file", |g| {
        g.connected() && g.value("x") == Some(Value::Int(1))
    });
    g.pick_recording(dir.path(), &recording);
    let name = recording.file_name().unwrap().to_string_lossy().to_string();
    g.until("the recording, open", |g| {
        g.app().tabs.len() == 2 && g.app().tabs[1].model.replay.is_some()
    });
    g.harness.set_size(egui::vec2(1280.0, 800.0));
    g.harness.run_steps(5);
    // Widen the values panel by dragging its edge 20 px.
    let before = g.app().settings.panels.values.size;
    // The values panel ends where the plots' panel (and its 8 px margin)
    // begins.
    let edge = g.harness.get_by_label("+ Add plot").rect().left() - 8.0;
    let y = 400.0;
    g.harness.hover_at(egui::pos2(edge, y));
    g.harness.run_steps(1);
    g.harness.drag_at(egui::pos2(edge, y));
    g.harness.run_steps(1);
    for dx in [10.0, 20.0] {
        g.harness.hover_at(egui::pos2(edge + dx, y));
        g.harness.run_steps(1);
    }
    g.harness.drop_at(egui::pos2(edge + 20.0, y));
    g.harness.run_steps(2);
    // Widening the runs list narrows what the values panel may take: the
    // width it is squeezed to is not taken as its chosen one.
    let chosen = g.app().settings.panels.values.size;
    let runs = g.app().settings.panels.runs.shown().unwrap();
    g.harness.hover_at(egui::pos2(runs, y));
    g.harness.run_steps(1);
    g.harness.drag_at(egui::pos2(runs, y));
    g.harness.run_steps(1);
    for dx in [15.0, 30.0, 45.0] {
        g.harness.hover_at(egui::pos2(runs + dx, y));
        g.harness.run_steps(1);
    }
    g.harness.drop_at(egui::pos2(runs + 45.0, y));
    g.harness.run_steps(2);
    let panels = g.app().settings.panels;
    assert!(
        panels.runs.size > runs + 25.0,
        "the runs list was {runs} wide, dragged 45 px: {}",
        panels.runs.size
    );
    assert!(
        panels.values.shown().unwrap() < chosen - 1.0,
        "the values panel was not squeezed: {panels:?}"
    );
    assert_eq!(
        panels.values.size, chosen,
        "the squeezed width was taken as chosen"
    );
    let saved = g.app().settings_to_save();
    assert!(
        (saved.panels.values.size - (before + 20.0)).abs() < 2.0,
        "the values panel was {before} wide, dragged 20 px: {}",
        saved.panels.values.size
    );
    assert_eq!(saved.window, Some([1280.0, 800.0]));
    assert_eq!(
        saved.recent,
        [recording.display().to_string(), "live-one".to_string()],
        "newest first: the recording by its path, the run by its name"
    );
    assert_eq!(saved.last_folder.as_deref(), Some(dir.path()));
    drop(g);

    // The next launch, nothing open.
    let mut g = gui_remembering(Vec::new(), |_| {}, saved.clone());
    g.harness.set_size(egui::vec2(1280.0, 800.0));
    g.harness.run_steps(3);
    assert!(g.harness.query_by_label("live-one").is_some());
    let listed = |g: &Gui| g.harness.query_all_by_label_contains(&name).count();
    let in_recent = listed(&g);
    assert_eq!(in_recent, 1, "the recording in the Recent list");
    g.harness.get_by_label("File").click();
    g.harness.run_steps(2);
    g.harness.get_by_label("Open recording…").click();
    g.harness.run_steps(3);
    assert!(
        listed(&g) > in_recent,
        "File > Open does not start in the last folder"
    );
    g.harness.key_press(egui::Key::Escape);
    g.harness.run_steps(2);
    g.harness
        .get_by_label(&recording.display().to_string())
        .click();
    g.until("the recording, open again from Recent", |g| {
        g.app().tabs.len() == 1 && g.app().tabs[0].model.replay.is_some()
    });
    g.harness.run_steps(3);
    // As wide as saved, or as the window allows beside the (wider) list.
    let panels = g.app().settings.panels;
    let runs = panels.runs.shown().unwrap();
    assert!((runs - saved.panels.runs.size).abs() < 1.0, "{panels:?}");
    let want = saved.panels.values.size.min(panels.values.cap().unwrap());
    let shown = panels.values.shown().unwrap();
    assert!(
        (shown - want).abs() < 1.0,
        "the values panel opens {shown} px wide, saved {} ({want} here)",
        saved.panels.values.size
    );
}

/// Two recordings compared, at 800x500: the plot and its Compare and CSV
/// buttons stay inside the window.
#[test]
fn compared_replays_fit_800x500() {
    let (_a_dir, a) = recorded_decay("first", 0.01);
    let (_b_dir, b) = recorded_decay("second", 0.02);
    let whole = Some(idict::SeekTo::Version(u64::MAX));
    let replays = [
        idict_inspector::demo::Replay::start_at(&a, whole).unwrap(),
        idict_inspector::demo::Replay::start_at(&b, whole).unwrap(),
    ];
    let specs = opening(&replays);
    let mut g = gui_set_up(specs, InspectorApp::compare_with_others_on_open);
    g.until("both runs whole, compared", |g| {
        let tabs = &g.app().tabs;
        tabs.len() == 2
            && tabs.iter().all(|t| t.model.version == 301)
            && tabs[0]
                .plots
                .plots
                .first()
                .is_some_and(|p| !p.compare.is_empty())
    });
    g.harness.run_steps(5);
    g.harness.set_size(egui::vec2(800.0, 500.0));
    g.harness.run_steps(10);
    let window = egui::Rect::from_min_size(egui::Pos2::ZERO, egui::vec2(800.0, 500.0));
    let target = g.app().tabs[0].model.target.clone();
    let id = idict_inspector::views::plots::plot_id(&target, 0);
    let frame = egui_plot::PlotMemory::load(&g.harness.ctx, id)
        .expect("the first plot is drawn")
        .transform()
        .frame()
        .to_owned();
    assert!(
        frame.right() <= window.right() + 0.5,
        "the plot ends at {}",
        frame.right()
    );
    for rect in g.harness.query_all_by_label("CSV").map(|n| n.rect()) {
        assert!(window.contains_rect(rect), "CSV at {rect:?}");
    }
}

/// A run called `name` whose `residual` decays at `rate` over 300 updates,
/// recorded.
fn recorded_decay(name: &str, rate: f64) -> (tempfile::TempDir, std::path::PathBuf) {
    recorded(name, 300, "residual", |i| {
        Value::Float((-rate * i as f64).exp())
    })
}

/// Issue 30: a compared replay scrubbed to v237 drew its curve to there
/// and stopped, the legend silent. Its legend entry says how far it is
/// shown, and a line marks where it stops.
#[test]
fn a_compared_replay_shown_in_part_says_where_it_stops() {
    let (_a_dir, a) = recorded_decay("first", 0.01);
    let (_b_dir, b) = recorded_decay("second", 0.02);
    let replays = [
        idict_inspector::demo::Replay::start_at(&a, Some(idict::SeekTo::Version(u64::MAX)))
            .unwrap(),
        idict_inspector::demo::Replay::start_at(&b, Some(idict::SeekTo::Version(120))).unwrap(),
    ];
    let specs = opening(&replays);
    let mut g = gui_set_up(specs, InspectorApp::compare_with_others_on_open);
    g.until("the first whole, the second at v120, compared", |g| {
        let tabs = &g.app().tabs;
        tabs.len() == 2
            && tabs[0].model.version == 301
            && tabs[1].model.version == 120
            && tabs[1].model.replay.is_some()
            && tabs[0]
                .plots
                .plots
                .first()
                .is_some_and(|p| !p.compare.is_empty())
    });
    g.harness.run_steps(3);
    let pid = std::process::id();
    let legend = format!("residual · second (recorded pid {pid}) · shown to v120 of v301");
    assert!(
        g.harness.query_by_label(&legend).is_some(),
        "no legend entry \"{legend}\""
    );
    // The first run, whole, is named plainly.
    assert!(
        g.harness
            .query_by_label(&format!("residual · first (recorded pid {pid})"))
            .is_some()
    );
}

/// Issue 30: off a curve the hover read "step 7 / 3.4687e-4" (the
/// pointer's place, read as a value), and tooltips were cut at the plot's
/// right edge. Off a curve there is no readout; on one it names the value,
/// inside the window even at the plot's right end.
#[test]
fn the_hover_reads_values_only_on_a_curve_and_stays_in_the_window() {
    let idict = IDict::new("hover");
    for i in 0..200 {
        idict
            .lock()
            .insert("energy", 1e-3 * (i as f64 / 20.0).sin());
        idict.notify_update().unwrap();
    }
    let server = options().serve(&idict).unwrap();
    let mut g = gui(server.address(), &server.tokens().observer);
    g.until("the plot of energy", |g| {
        g.app().tabs[0]
            .model
            .series
            .get("energy")
            .is_some_and(|s| s.len() == 200)
            && !g.app().tabs[0].plots.plots.is_empty()
    });
    g.harness.run_steps(5);
    let target = g.app().tabs[0].model.target.clone();
    let id = idict_inspector::views::plots::plot_id(&target, 0);
    let transform = egui_plot::PlotMemory::load(&g.harness.ctx, id)
        .expect("the plot is drawn")
        .transform();
    let frame = *transform.frame();
    let window = egui::Rect::from_min_size(egui::Pos2::ZERO, egui::vec2(1400.0, 900.0));
    let readout = |g: &Gui| {
        // A readout reads "step N" then the value, on a line of its own.
        g.harness
            .query_all_by_label_contains("step ")
            .filter(|n| format!("{n:?}").contains("\\n"))
            .map(|n| n.rect())
            .collect::<Vec<_>>()
    };
    // Far above the curve (|energy| <= 1e-3 fills the frame: the top-left
    // corner holds no sample).
    g.harness
        .hover_at(egui::pos2(frame.left() + 3.0, frame.top() + 3.0));
    g.harness.run_steps(3);
    assert!(
        g.harness.query_by_label_contains("energy =").is_none() && readout(&g).is_empty(),
        "a readout off the curve"
    );
    // On the curve's last sample, at the plot's right end.
    let last = transform.position_from_point(&egui_plot::PlotPoint::new(
        200.0,
        1e-3 * (199.0f64 / 20.0).sin(),
    ));
    g.harness.hover_at(last);
    g.harness.run_steps(3);
    let tips: Vec<egui::Rect> = g
        .harness
        .query_all_by_label_contains("energy =")
        .map(|n| n.rect())
        .collect();
    assert!(!tips.is_empty(), "no readout on the curve at {last:?}");
    for tip in tips {
        assert!(
            window.contains_rect(tip),
            "the readout at {tip:?} leaves the window"
        );
    }
}

/// An MPI job's rank 0 publishes a reduced key and each rank's value of it
/// (`KEY@ranks`): the plot draws the spread of the ranks around the
/// curve, and offers each rank's own.
#[test]
fn a_reduced_key_is_drawn_with_the_spread_of_its_ranks() {
    let idict = IDict::builder("mpi-like").ranks(4).build();
    let server: Server = options().serve(&idict).unwrap();
    // Rank 3 lags: its residual is ten times the others'.
    for step in 1..=20i64 {
        let per_rank: Vec<f64> = (0..4)
            .map(|r| if r == 3 { 10.0 } else { 1.0 } / step as f64)
            .collect();
        let mut map = idict.lock();
        map.insert("residual", per_rank.iter().sum::<f64>() / 4.0);
        map.insert("residual@ranks", Value::array(per_rank, vec![4]).unwrap());
        drop(map);
        idict.notify_update().unwrap();
    }
    let mut g = gui(server.address(), &server.tokens().controller);
    g.until("the 4 ranks' spread of residual", |g| {
        g.app().tabs[0]
            .model
            .bands
            .get("residual")
            .is_some_and(|b| b.ranks.len() == 4 && !b.max.is_empty())
    });
    let band = g.app().tabs[0].model.bands["residual"].clone();
    assert_eq!(
        band.max.last_value(),
        Some(10.0 / 20.0),
        "the lagging rank is the top"
    );
    assert_eq!(band.min.last_value(), Some(1.0 / 20.0));
    g.until("the plot of residual", |g| {
        g.app().tabs[0]
            .plots
            .plots
            .iter()
            .any(|p| p.keys.contains(&"residual".to_string()))
    });
    g.until("its ranks picker", |g| {
        g.harness
            .query_by_role_and_label(egui::accesskit::Role::ComboBox, "ranks")
            .is_some()
    });
    g.harness
        .get_by_role_and_label(egui::accesskit::Role::ComboBox, "ranks")
        .click();
    g.harness.run_steps(2);
    g.harness.get_by_label("rank 3").click();
    g.harness.run_steps(2);
    let picked = g.app().tabs[0]
        .plots
        .plots
        .iter()
        .find(|p| p.keys.contains(&"residual".to_string()))
        .and_then(|p| p.rank);
    assert_eq!(picked, Some(3));
    assert!(g.harness.query_by_label_contains("rank 3").is_some());
    // The header says it is a job of 4 ranks.
    assert!(g.harness.query_by_label_contains("4 ranks").is_some());
}

#[test]
fn an_alert_added_on_a_plot_pauses_the_run_at_a_nan_marked_on_the_curve() {
    let idict = IDict::new("blowup");
    let server = options().serve(&idict).unwrap();
    let run = idict.clone();
    let looper = std::thread::spawn(move || {
        let mut step = 0u32;
        while run.wait() {
            step += 1;
            // A NaN once the rule is there (and some steps on).
            let nan = run.triggers().len() == 1 && step > 60;
            let residual = if nan { f64::NAN } else { 1.0 / f64::from(step) };
            run.lock().insert("residual", residual);
            if run.notify_update().is_err() {
                break;
            }
            std::thread::sleep(Duration::from_millis(5));
        }
        let _ = run.notify_update_final();
    });
    let mut g = gui(server.address(), &server.tokens().controller);
    g.until("the residual plotted", |g| {
        g.connected()
            && g.app().tabs[0]
                .plots
                .plots
                .first()
                .is_some_and(|p| p.keys.contains(&"residual".to_string()))
    });
    {
        let app = g.harness.state_mut().as_mut().unwrap();
        let draft = &mut app.tabs[0].plots.plots[0].alert;
        draft.condition = "isnan(residual)".into();
        draft.name = "blowup".into();
        draft.pause = true;
    }
    g.harness.get_by_label("Alerts (0)").click();
    g.harness.run_steps(2);
    g.harness.get_by_label("Add").click();
    g.until("the run to hold itself at the NaN", |_| idict.status().held);
    let fired_at = idict.triggers()[0].last_fired_version;
    assert_eq!(fired_at, idict.version(), "held at the version that fired");
    g.until("the firing and the NaN in the window", |g| {
        let m = &g.app().tabs[0].model;
        m.firings.len() == 1
            && m.series.get("residual").is_some_and(|s| {
                s.nonfinite(idict_inspector::series::XAxis::Version, 0.0, 1e9)
                    .count()
                    == 1
            })
    });
    assert_eq!(g.app().tabs[0].model.firings[0].version, fired_at as f64);
    // Both are drawn, and named in the plot's legend.
    g.harness.run_steps(3);
    assert!(g.harness.query_by_label_contains("residual NaN").is_some());
    assert!(g.harness.query_by_label_contains("triggers").is_some());
    idict.terminate();
    looper.join().unwrap();
}
