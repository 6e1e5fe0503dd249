//! idict for MPI jobs: one run for all the ranks.
//!
//! Every rank makes an [`MpiDict`] over the job's communicator (a
//! collective call) and runs the same loop: `while d.wait() { ...;
//! d.notify_update()?; }`. Rank 0 serves the run; the others serve nothing.
//!
//! - `wait()` is collective: rank 0's pause gate decides (go, hold, step,
//!   terminate, which steering writes apply) and every rank gets the same
//!   decision at the same step, so no rank is left waiting in the
//!   program's own collectives for one that is paused.
//! - `notify_update()` is collective: each rank sends rank 0 its numeric
//!   scalars; rank 0 publishes each key reduced across the ranks
//!   ([`Reduction`], the mean by default) and every rank's own value under
//!   `KEY@ranks` (an f64 array indexed by rank; at most every 50 ms, and
//!   whenever rank 0 holds): `dt@ranks` shows a steering write reached
//!   every rank.
//! - A field decomposed over the ranks ([`MpiDict::field`]) is stitched
//!   whole on rank 0 only while someone watches; `KEY@blocks` says where
//!   each rank's block sits.
//!
//! The MPI parts need the `mpi` feature (rsmpi over the system's MPI);
//! without it this crate is its MPI-free parts.

pub mod decision;
pub mod field;
pub mod reduce;
pub mod watchdog;

pub use reduce::Reduction;

#[cfg(feature = "mpi")]
mod job;
#[cfg(feature = "mpi")]
pub use job::{MpiDict, MpiError};

/// The suffix of the key that holds each rank's value of a reduced key.
pub const RANKS_SUFFIX: &str = "@ranks";
/// The suffix of the key that says where each rank's block of a stitched
/// field sits: an i64 array, a row per rank, its offset then its shape.
pub const BLOCKS_SUFFIX: &str = "@blocks";
