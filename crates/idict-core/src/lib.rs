//! idict's core: everything a computation's process needs to hold a run,
//! and nothing that talks to the network.
//!
//! - [`IDict`] (`dict`): the dictionary, its pause gate, `notify_update`,
//!   callbacks, steering writes applied at safe points;
//! - [`value`]: the typed values, arrays in shared buffers;
//! - [`model`]: statuses, messages, applied writes, key infos, roles;
//! - the published state, the staged samples and the histories that the
//!   server reads (`published`, `staged`, `history`, `pins`);
//! - [`wire`]: the model ⇄ protobuf, every decode bounded;
//! - [`runfile`]: how a served run is found; [`checkpoint`]; [`signals`].
//!
//! The crates above this one (`idict-server`, `idict-client`,
//! `idict-recording`) use the items marked `#[doc(hidden)]`; programs use
//! the `idict` facade.

pub mod checkpoint;
#[doc(hidden)]
pub mod counters;
mod dict;
#[doc(hidden)]
pub mod history;
pub mod model;
#[doc(hidden)]
pub mod part_joiner;
#[doc(hidden)]
pub mod pins;
#[doc(hidden)]
pub mod published;
pub mod runfile;
pub mod signals;
#[doc(hidden)]
pub mod spin;
#[doc(hidden)]
pub mod staged;
/// Triggers: conditions a run checks at each update, and what they do.
pub mod triggers;
#[doc(hidden)]
pub mod tuning;
pub mod value;
/// Values ⇄ protobuf with every bound checked.
#[doc(hidden)]
pub mod wire;
#[doc(hidden)]
pub mod write_rules;

pub use dict::{
    CallbackId, DictGuard, IDict, IDictBuilder, IDictOptions, KeyId, UpdateError, UpdateEvent,
    WaitOutcome, Writable,
};
/// The run's shared state and the calls the server and a replay make on it.
#[doc(hidden)]
pub use dict::{ControlAction, Inner, Recorded, StagedSamples, WriteRefused};
pub use history::{SAMPLE_BYTES, Sample, Series};
pub use model::{
    AppliedWrite, KeyInfo, Level, LogMessage, MarkKind, ReplayTimeline, Role, RunState, SeekTo,
    Status, Thinned, TimelineMark, TriggerActions, TriggerFiring, TriggerInfo, WritableInfo,
};
pub use signals::SignalError;
pub use value::{ArrayError, DType, Element, NdArray, Value, ValueKind};

/// The wire contract, re-exported for clients that need the raw messages.
pub use idict_proto as proto;
