//! idict-inspector: the desktop app to watch, plot, pause, step, steer and
//! terminate idict runs. The model (`model`, `series`) is apart from the
//! views (`views`); the network (`net`) runs on a tokio runtime in the
//! background, puts what it learns into each run's inbox and asks for a
//! repaint. Each frame the UI takes the inboxes into its own models (a swap
//! under a lock it never waits for) and draws from those, so the UI thread
//! never waits on the network and the network never waits on a frame.

pub mod app;
pub mod demo;
pub mod follow;
pub mod model;
pub mod net;
pub mod series;
pub mod views;

pub use app::{InspectorApp, Settings};
