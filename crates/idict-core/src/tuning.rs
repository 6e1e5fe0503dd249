//! The tuning constants that depend on each other, in one place, each with
//! why it has its value. Change one and read the others first.
//!
//! The time scales, from short to long:
//! `SPIN_FOR` (30 µs) < `QUIET_SECS` (100 µs) = `FRAME_INTERVAL` (100 µs)
//! < `STAGED_CHECK` (1 ms) < `STALLED_MS` (200 ms).
//! - The computation spins at most `SPIN_FOR` for a lock a server task
//!   holds; server tasks hold one for a few microseconds, so this is longer
//!   than any holder and shorter than a context switch.
//! - A run that notifies less often than every `QUIET_SECS` moves its
//!   samples into the histories at once; a faster one batches them, and the
//!   dispatcher frames at most every `FRAME_INTERVAL`. Keeping the two equal
//!   means a batched sample waits at most about one frame.
//! - An idle dispatcher looks for samples a run left staged when it went
//!   quiet every `STAGED_CHECK`: the longest a quiet run's last sample waits.
//! - A watcher that has not asked for a message for `STALLED_MS` (far longer
//!   than any frame or batch) is taken as not reading and pins no history.

use std::time::Duration;

// ---- The computation's thread --------------------------------------------

/// How long the computation retries a held lock before sleeping.
pub(crate) const SPIN_FOR: Duration = Duration::from_micros(30);
/// Lock attempts between clock reads while spinning.
pub(crate) const RETRIES_PER_CHECK: u32 = 32;

/// A fast run moves its staged samples after at most this many versions:
/// the batch that amortises touching the shared histories, small enough
/// that a message never waits long for them.
pub(crate) const BATCH_VERSIONS: u32 = 32;
/// A notify this long after the previous one moves its samples at once:
/// the run is slow enough that batching saves nothing.
pub(crate) const QUIET_SECS: f64 = 100e-6;
/// ...if at most this many samples are staged. A run that changes more
/// keys than this per notify is slow because it is big: moving each
/// version's samples at once would touch every key's history at every
/// notify (a cache miss or more per key: at 100,000 keys, 300-400 ns a
/// key). Its samples wait for a full batch, or for the dispatcher once the
/// run goes quiet.
pub(crate) const SMALL_MOVE: usize = 4096;
/// ...and if moving them costs at most this share of the run's pace
/// between notifies, reckoning a sample's move (a history touched, a
/// cache miss or more) at `MOVE_SECS_PER_SAMPLE`: a 1,000-key run
/// notifying every 150 µs moved each version's samples at once, and paid
/// 65-190 ns a key at each notify where a batch costs 15.
pub(crate) const MAX_MOVE_SHARE: f64 = 0.05;
pub(crate) const MOVE_SECS_PER_SAMPLE: f64 = 200e-9;
/// A run is quiet when it has staged nothing for twice its last interval
/// between notifies, and at most this long: how long a big, slow run's
/// last samples wait for the dispatcher.
pub(crate) const MAX_QUIET_WAIT_SECS: f64 = 0.05;

// ---- The dispatcher --------------------------------------------------------

/// The shortest time between two frames while updates stream: watchers see
/// a fast run's state at most about this late.
pub const FRAME_INTERVAL: Duration = Duration::from_micros(100);
/// Empty ticks before the ticker stops and the next notify wakes us.
pub const IDLE_AFTER: u32 = 3;
/// How often an idle dispatcher looks for samples a quiet run left staged.
pub const STAGED_CHECK: Duration = Duration::from_millis(1);

// ---- Watchers and history ---------------------------------------------------

/// A watcher whose stream has not asked for a message for this long is not
/// reading (its client's flow control is full) and pins no history. A
/// reader that keeps up asks every few milliseconds, even in a burst; at
/// 1 s a stalled watcher made the run keep ~500 MB of samples for it, and
/// slowed it by 30-50% (the e2e bench's slow watcher).
pub(crate) const STALLED_MS: u64 = 200;
/// The most versions of samples one delta message carries...
pub const SAMPLE_SPAN: u64 = 4096;
/// ...and about the most samples (24 bytes each on the wire): enough that a
/// watcher keeps up with a run of a million updates a second, few enough
/// that a run with many keys still sends messages of a few MiB.
pub const MAX_SAMPLES_PER_MESSAGE: usize = 65_536;
/// Samples copied per lock of a history: the computation may wait for that
/// lock, so it is held for a few microseconds at a time, whoever copies
/// (a delta, a watcher's first state, GetHistory, a checkpoint).
pub const SAMPLES_PER_LOCK: usize = 1024;
/// Samples per series per chunk of a first state or of GetHistory.
pub const SAMPLES_PER_CHUNK: usize = 65_536;
/// Recent log messages a newly attached watcher gets.
pub const MESSAGES_FOR_LATE_JOINERS: usize = 200;

// ---- Published state -------------------------------------------------------

/// How many recent versions keep their list of changed keys: a watcher
/// less than this far behind gets a delta of just those keys. Equal to
/// `SAMPLE_SPAN` so a catching-up watcher's span is always covered.
pub(crate) const RECORD_RING: usize = 4096;

/// Applied writes remembered for watchers beyond what the records' ring
/// covers, at most so many and so many bytes (those it covers are always
/// kept): a client further behind is not told of older ones (their values
/// are in the state it is sent).
pub(crate) const MAX_APPLIED_LOG: usize = 4096;
pub(crate) const MAX_APPLIED_LOG_BYTES: usize = 64 << 20;
/// How many removed keys are remembered for resuming clients.
pub(crate) const MAX_TOMBSTONES: usize = 10_000;
/// How many removed keys keep their history (a key removed and set again
/// soon after goes on with its curve); older ones are freed, so a run whose
/// key names churn (a key per particle) stays bounded.
pub(crate) const MAX_REMOVED_HISTORIES: usize = 1024;

// ---- Steering ---------------------------------------------------------------

/// Writes waiting for the computation's next safe point.
pub(crate) const MAX_PENDING_WRITES: usize = 10_000;
/// Writes applied but not yet published (a paused run applies every write
/// at once but publishes them only at its next update)...
pub(crate) const MAX_UNPUBLISHED_WRITES: usize = 1024;
/// ...and their bytes: what the next update carries to every watcher.
pub(crate) const MAX_UNPUBLISHED_WRITE_BYTES: usize = 64 << 20;

// ---- The wire --------------------------------------------------------------

/// HTTP/2 flow-control window, per stream and per connection: large enough
/// that a multi-MiB array streams without stalling on window updates, small
/// enough to bound what the server buffers for a client that reads slowly.
pub const WINDOW_BYTES: u32 = 8 << 20;
/// Largest HTTP/2 frame either side accepts.
pub const FRAME_BYTES: u32 = 4 << 20;
/// The size of each part of a value too large for one message (an 8 MiB
/// array goes in 8): each message costs its framing, status and a wake-up
/// on both sides, and at the 64 KiB chunk size an array went in 128 and
/// reached a watcher at 66-81% of raw TCP (1 MiB: 78-94%). A stream that
/// stops reading holds one encoded part at most.
pub const PART_BYTES: usize = 1 << 20;
/// After a server is told to close, how long open connections get to end.
pub const CLOSE_GRACE: Duration = Duration::from_secs(3);
