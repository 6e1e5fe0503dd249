//! idict for Python: the `idict._idict` extension module. It wraps the
//! `idict` crate and adds no logic the Rust core lacks: conversions between
//! Python and idict values, the GIL released wherever a call may block, and
//! Python exceptions for the Rust errors.
//!
//! - `convert`: Python values ⇄ `Value` (numpy arrays in and out).
//! - `embed`: `IDict`, its lock, callbacks and server.
//! - `client`: `connect`, `Run`, `Watch`, `runs`.
//! - `model`: status, samples, messages and events as Python objects.
//! - `errors`: the exception classes.

mod client;
mod convert;
mod embed;
mod errors;
mod model;

use pyo3::prelude::*;

#[pymodule]
fn _idict(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add("__version__", env!("CARGO_PKG_VERSION"))?;
    errors::register(m)?;
    m.add_class::<embed::PyIDict>()?;
    m.add_class::<embed::Locked>()?;
    m.add_class::<embed::Callbacks>()?;
    m.add_class::<embed::Serving>()?;
    m.add_class::<model::Status>()?;
    m.add_class::<model::History>()?;
    m.add_class::<model::AppliedWrite>()?;
    m.add_class::<model::Message>()?;
    m.add_class::<model::Firing>()?;
    m.add_class::<model::Trigger>()?;
    m.add_class::<model::Thinned>()?;
    m.add_class::<model::UpdateEvent>()?;
    m.add_class::<client::Run>()?;
    m.add_class::<client::Watch>()?;
    m.add_class::<client::Update>()?;
    m.add_class::<client::WriteReceipt>()?;
    m.add_class::<client::RunInfo>()?;
    m.add_class::<client::ReplayTimeline>()?;
    m.add_class::<client::KeyInfo>()?;
    m.add_class::<client::RunEntry>()?;
    m.add_class::<convert::ArrayBuffer>()?;
    m.add_function(wrap_pyfunction!(client::connect, m)?)?;
    m.add_function(wrap_pyfunction!(client::runs, m)?)?;
    Ok(())
}
