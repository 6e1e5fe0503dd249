//! idict's recordings: the file a run's flight recorder writes
//! ([`recording`]: framed, checksummed records) and [`replay`], which
//! publishes a recording into a run at its recorded versions, behind the
//! run's own gate, so that any client watches it as it watched the live run.

pub mod recording;
pub mod replay;
