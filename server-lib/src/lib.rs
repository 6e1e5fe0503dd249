//! idict: an interactive dictionary a long-running computation embeds, so
//! that it can be watched, plotted, paused, stepped, steered and terminated
//! from outside (the `idict` CLI, the `idict-inspector` desktop app, or any
//! gRPC client) without slowing it down.
//!
//! ```no_run
//! use idict::{IDict, serve};
//! use std::time::Duration;
//!
//! let idict = IDict::new("heat");
//! idict.writable("dt", 0.01).range(0.0, 0.25);
//! idict.add_callback(|d, ev| d.message(idict::Level::Info, format!("v{}", ev.version())));
//! idict.terminate_on_signals()?;          // SIGTERM/Ctrl-C: finish cleanly
//! let server = serve(&idict)?;            // 127.0.0.1, free port, token, run file
//! let mut step = 0u64;
//! while idict.wait() && step < 1000 {     // false once terminated; blocks while
//!                                         // paused; steering writes land here
//!     {
//!         let mut d = idict.lock();       // exclusive; drop before notify
//!         let dt = d.get("dt").and_then(|v| v.as_f64()).unwrap_or(0.01);
//!         d.insert("step", step);
//!         d.insert("residual", 1.0 / (1.0 + step as f64 * dt));
//!     }
//!     idict.notify_update()?;             // publish; never blocks on clients
//!     step += 1;
//! }
//! idict.notify_update_final()?;
//! server.wait_then_close(Duration::from_secs(10));
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! The pieces: [`IDict`] (the dictionary and its pause gate), [`Value`] (the
//! typed values), [`serve`] (the embedded gRPC server), [`client`] (the
//! typed client), [`runfile`] (how runs are found), [`signals`] (SIGTERM
//! and Ctrl-C as a terminate).

pub use idict_client as client;
/// Values ⇄ protobuf with every bound checked: for the fuzz targets and
/// tests; clients use [`client`].
#[doc(hidden)]
pub use idict_core::wire;
pub use idict_core::{checkpoint, model, runfile, signals, triggers, value};
pub use idict_recording::{recording, replay};

/// For the micro-benchmarks only.
#[doc(hidden)]
pub use idict_core::history::BoundedSeries;
pub use idict_core::history::{SAMPLE_BYTES, Sample, Series};
pub use idict_core::model::{
    AppliedWrite, KeyInfo, Level, LogMessage, MarkKind, ReplayTimeline, Role, RunState, SeekTo,
    Status, Thinned, TimelineMark, TriggerActions, TriggerFiring, TriggerInfo, WritableInfo,
};
pub use idict_core::signals::SignalError;
pub use idict_core::triggers::TriggerError;
pub use idict_core::value::{ArrayError, DType, Element, NdArray, Value, ValueKind};
pub use idict_core::{
    CallbackId, DictGuard, IDict, IDictBuilder, IDictOptions, KeyId, UpdateError, UpdateEvent,
    WaitOutcome, Writable,
};
pub use idict_server::{
    Bind, RecordArrays, ServeError, ServeOptions, Server, TlsIdentity, Tokens, WatcherCount, serve,
};

#[cfg(feature = "stderr-log")]
mod stderr_log;
#[cfg(feature = "stderr-log")]
pub use stderr_log::log_to_stderr;

/// The wire contract, re-exported for clients that need the raw messages.
pub use idict_proto as proto;
