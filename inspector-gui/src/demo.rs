//! The built-in demo: a real heat simulation (idict-examples' `heat`) in
//! this process, served over real gRPC on loopback, for `--demo`.

use idict::{IDict, ServeOptions, Server};
use idict_examples::heat::{self, HeatConfig};
use std::time::Duration;

/// A running demo computation; dropping it terminates the computation and
/// closes its server.
pub struct Demo {
    pub idict: IDict,
    pub address: String,
    pub controller_token: String,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Demo {
    /// Starts the demo: a 64×64 heat equation at about 40 steps per second
    /// that keeps running (steer `source` and `dt` to see it respond).
    pub fn start(options: ServeOptions) -> Result<Demo, idict::ServeError> {
        let idict = IDict::new("demo-heat");
        let server: Server = options.serve(&idict)?;
        let address = server.address().to_string();
        let controller_token = server.tokens().controller.clone();
        let handle = idict.clone();
        let thread = std::thread::Builder::new()
            .name("demo-computation".into())
            .spawn(move || {
                let cfg = HeatConfig {
                    n: 64,
                    rate: 40.0,
                    tolerance: 0.0,
                    ..HeatConfig::default()
                };
                if heat::run(&handle, &cfg).is_ok() {
                    let _ = handle.notify_update_final();
                }
                server.wait_then_close(Duration::from_secs(2));
            })
            .map_err(idict::ServeError::Runtime)?;
        Ok(Demo {
            idict,
            address,
            controller_token,
            thread: Some(thread),
        })
    }
}

impl Drop for Demo {
    fn drop(&mut self) {
        self.idict.terminate();
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// A recording replayed in this process (`idict-inspector FILE.idrec`),
/// served on loopback like the demo: paused at its start, so Step and
/// Resume move through it. Dropping it ends the replay and its server.
pub struct Replay {
    pub idict: IDict,
    pub address: String,
    pub controller_token: String,
    thread: Option<std::thread::JoinHandle<()>>,
}

/// Why a recording could not be opened.
#[derive(Debug, thiserror::Error)]
pub enum ReplayStartError {
    #[error(transparent)]
    Recording(#[from] idict::replay::ReplayError),
    #[error(transparent)]
    Serve(#[from] idict::ServeError),
}

impl Replay {
    /// A replay held at its start.
    pub fn start(path: &std::path::Path) -> Result<Replay, ReplayStartError> {
        Replay::start_at(path, None)
    }

    /// A replay held at `at` (past the end: held at its end, the whole run
    /// shown, as runs compared want).
    pub fn start_at(
        path: &std::path::Path,
        at: Option<idict::SeekTo>,
    ) -> Result<Replay, ReplayStartError> {
        let replayer = idict::replay::Replayer::open(path)?;
        // Named by its absolute path: the Recent list opens it again from
        // wherever the inspector starts.
        let path = std::path::absolute(path).unwrap_or_else(|_| path.to_path_buf());
        let idict = IDict::builder(replayer.header.name.clone())
            .replay_of(path.display().to_string())
            .start_paused(true)
            .build();
        let server: Server = ServeOptions::default()
            .write_run_file(false)
            .announce(false)
            .serve(&idict)?;
        let address = server.address().to_string();
        let controller_token = server.tokens().controller.clone();
        let handle = idict.clone();
        let thread = std::thread::Builder::new()
            .name("replay".into())
            .spawn(move || {
                // Held at its end, seekable, until the window goes.
                let opts = idict::replay::ReplayOptions {
                    hold_at_end: true,
                    at,
                    ..Default::default()
                };
                match replayer.replay(&handle, &opts) {
                    Ok(_) => {
                        let _ = handle.notify_update_final();
                    }
                    Err(e) => handle.fail(format!("the replay stopped: {e}")),
                }
                server.wait_then_close(Duration::from_secs(1));
            })
            .map_err(idict::ServeError::Runtime)?;
        Ok(Replay {
            idict,
            address,
            controller_token,
            thread: Some(thread),
        })
    }
}

impl Drop for Replay {
    fn drop(&mut self) {
        self.idict.terminate();
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}
