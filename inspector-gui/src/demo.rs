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
