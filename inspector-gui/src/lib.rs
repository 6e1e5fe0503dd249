//! idict-inspector: the desktop app to watch, plot, pause, step, steer and
//! terminate idict runs. The model (`model`, `series`) is apart from the
//! views (`views`); the network (`net`) runs on a tokio runtime in the
//! background, updates the model and asks for a repaint, so the UI thread
//! never waits on the network.

pub mod app;
pub mod demo;
pub mod model;
pub mod net;
pub mod series;
pub mod views;

pub use app::{InspectorApp, Settings};
