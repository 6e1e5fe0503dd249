//! `idict-inspector [RUN...]`: the desktop app. `--demo` starts a real
//! computation in this process, served over gRPC on loopback, and opens it.

use clap::Parser;
use idict_inspector::demo::Demo;
use idict_inspector::net::OpenSpec;
use idict_inspector::{InspectorApp, Settings};
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

/// Watch, plot, pause, step, steer and terminate idict runs.
#[derive(Parser)]
#[command(name = "idict-inspector", version, about)]
struct Args {
    /// Runs to open: a run name, pid, address (host:port), run file, or
    /// recording (FILE.idrec, replayed in this process).
    runs: Vec<String>,
    /// Lay the other runs given over the first's plots (Compare);
    /// recordings then open at their end, whole.
    #[arg(long)]
    compare: bool,
    /// Start a built-in demo computation (a heat equation) and open it.
    #[arg(long)]
    demo: bool,
    /// The token for the runs given (default: from their run files).
    #[arg(long, env = "IDICT_TOKEN", hide_env_values = true)]
    token: Option<String>,
    /// For runs served over TLS: the PEM file of the CA that signed their certificates.
    #[arg(long, env = "IDICT_CA", value_name = "FILE")]
    ca: Option<PathBuf>,
    /// Save a PNG of the window to this path after --screenshot-after seconds, then exit.
    #[arg(long, value_name = "PATH")]
    screenshot: Option<PathBuf>,
    #[arg(long, default_value_t = 6.0, value_name = "SECONDS")]
    screenshot_after: f64,
    /// Window size in points (default: the size it had when last closed,
    /// else 1400 x 860).
    #[arg(long)]
    width: Option<f32>,
    #[arg(long)]
    height: Option<f32>,
}

/// The window's size when nothing else says.
const DEFAULT_SIZE: [f32; 2] = [1400.0, 860.0];

fn main() -> ExitCode {
    // RUST_LOG, e.g. `RUST_LOG=idict_inspector=debug,warn`; default warnings.
    idict::log_to_stderr();
    let args = Args::parse();
    if let Some(path) = &args.ca {
        match std::fs::read(path) {
            Ok(pem) => idict_inspector::net::set_tls_ca(pem),
            Err(e) => {
                eprintln!(
                    "idict-inspector: cannot read the CA certificate {}: {e}",
                    path.display()
                );
                return ExitCode::FAILURE;
            }
        }
    }
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .thread_name("inspector-net")
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("idict-inspector: cannot start the network runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let demo = if args.demo {
        match Demo::start(idict::ServeOptions::default()) {
            Ok(d) => Some(d),
            Err(e) => {
                eprintln!("idict-inspector: cannot start the demo: {e}");
                return ExitCode::FAILURE;
            }
        }
    } else {
        None
    };
    // A recording (`--record`) opens as a replay in this process.
    let mut replays = Vec::new();
    for file in args
        .runs
        .iter()
        .filter(|r| idict::recording::is_recording_path(r))
    {
        // Compared, a recording is shown whole (held at its end).
        let at = args.compare.then_some(idict::SeekTo::Version(u64::MAX));
        match idict_inspector::demo::Replay::start_at(std::path::Path::new(file), at) {
            Ok(r) => replays.push(r),
            Err(e) => {
                eprintln!("idict-inspector: cannot open {file}: {e}");
                return ExitCode::FAILURE;
            }
        }
    }
    let options = eframe::NativeOptions {
        viewport: egui::ViewportBuilder::default()
            .with_title("idict inspector")
            .with_inner_size([
                args.width.unwrap_or(DEFAULT_SIZE[0]),
                args.height.unwrap_or(DEFAULT_SIZE[1]),
            ])
            .with_min_inner_size([640.0, 420.0]),
        ..Default::default()
    };
    let result = eframe::run_native(
        "idict-inspector",
        options,
        Box::new(move |cc| {
            let settings: Settings = cc
                .storage
                .and_then(|s| eframe::get_value(s, "settings"))
                .unwrap_or_default();
            // The size asked for wins; else the one remembered (eframe
            // restores its own record too, when it saved one).
            let remembered = settings.window.filter(|[w, h]| *w >= 320.0 && *h >= 200.0);
            let size = match (args.width, args.height, remembered) {
                (None, None, None) => None,
                (w, h, remembered) => {
                    let [rw, rh] = remembered.unwrap_or(DEFAULT_SIZE);
                    Some([w.unwrap_or(rw), h.unwrap_or(rh)])
                }
            };
            if let Some([w, h]) = size {
                cc.egui_ctx
                    .send_viewport_cmd(egui::ViewportCommand::InnerSize(egui::vec2(w, h)));
            }
            let mut app =
                InspectorApp::new(cc.egui_ctx.clone(), runtime.handle().clone(), settings);
            for replay in replays {
                app.attach_replay(replay);
            }
            for run in args
                .runs
                .iter()
                .filter(|r| !idict::recording::is_recording_path(r))
            {
                app.open(OpenSpec {
                    target: run.clone(),
                    token: args.token.clone(),
                });
            }
            if let Some(d) = demo {
                app.attach_demo(d);
            }
            if args.compare {
                app.compare_with_others_on_open();
            }
            if let Some(path) = args.screenshot {
                let delay = Duration::try_from_secs_f64(args.screenshot_after).unwrap_or_default();
                app.screenshot_after(path, delay, true);
            }
            app.own_runtime(runtime);
            Ok(Box::new(app))
        }),
    );
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("idict-inspector: {e}");
            ExitCode::FAILURE
        }
    }
}
