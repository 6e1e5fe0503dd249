//! One module per subcommand.

mod bridge;
mod control;
mod get;
mod history;
mod info;
mod ls;
mod prometheus_sd;
mod replay;
mod set;
mod trigger;
mod watch;

pub(crate) use bridge::*;
pub(crate) use control::*;
pub(crate) use get::*;
pub(crate) use history::*;
pub(crate) use info::*;
pub(crate) use ls::*;
pub(crate) use prometheus_sd::*;
pub(crate) use replay::*;
pub(crate) use set::*;
pub(crate) use trigger::*;
pub(crate) use watch::*;
