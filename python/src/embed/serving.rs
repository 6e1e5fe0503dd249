//! `d.serve()`: a served run as a Python context manager.

use super::duration;
use crate::convert::type_name;
use idict::{IDict, Server};
use pyo3::prelude::*;
use std::time::Duration;

/// A served run (`d.serve()`); a context manager.
///
/// Leaving the with block normally finishes the run if it has not (a final
/// update), waits up to `close_timeout` seconds for watchers to get it, and
/// closes. Leaving it with an exception (KeyboardInterrupt too) marks the
/// run Failed with the exception's text first, so clients see why.
#[pyclass(frozen, module = "idict")]
pub struct Serving {
    /// Where clients connect: `http://127.0.0.1:PORT`.
    #[pyo3(get)]
    pub(super) address: String,
    /// Read-only token.
    #[pyo3(get)]
    pub(super) observer_token: String,
    /// Token that may also pause, step, set and terminate.
    #[pyo3(get)]
    pub(super) controller_token: String,
    /// The run file `idict ls` reads, or None.
    #[pyo3(get)]
    pub(super) run_file: Option<String>,
    pub(super) close_timeout: Duration,
    pub(super) idict: IDict,
    pub(super) server: parking_lot::Mutex<Option<Server>>,
}

#[pymethods]
impl Serving {
    /// Clients watching now.
    #[getter]
    fn watchers(&self) -> usize {
        self.server.lock().as_ref().map_or(0, Server::watchers)
    }

    fn __enter__(slf: Py<Self>) -> Py<Self> {
        slf
    }

    fn __exit__(
        &self,
        py: Python<'_>,
        exc_type: Option<&Bound<'_, PyAny>>,
        exc: Option<&Bound<'_, PyAny>>,
        _tb: Option<&Bound<'_, PyAny>>,
    ) -> PyResult<()> {
        if let Some(exc) = exc.filter(|e| !e.is_none()) {
            let kind = exc_type.map(type_name_of_class).unwrap_or_default();
            let text = exc.str().map(|s| s.to_string()).unwrap_or_default();
            self.idict.fail(if text.is_empty() {
                kind
            } else {
                format!("{kind}: {text}")
            });
        }
        // Failed or not, watchers get the last status before the server goes.
        self.close_within(py, self.close_timeout);
        Ok(())
    }

    /// Finishes the run if unfinished, waits for watchers to get the final
    /// update (up to `timeout` seconds), closes.
    #[pyo3(signature = (timeout=10.0))]
    fn wait_then_close(&self, py: Python<'_>, timeout: f64) -> PyResult<()> {
        self.close_within(py, duration(timeout, "timeout")?);
        Ok(())
    }

    /// Closes at once.
    fn close(&self, py: Python<'_>) {
        // Taken out first: the mutex must not be held while the GIL is
        // released (a thread reading `watchers` would wait on it holding
        // the GIL this one needs back).
        let server = self.server.lock().take();
        if let Some(server) = server {
            py.detach(|| server.close());
        }
    }

    fn __repr__(&self) -> String {
        format!("Serving({})", self.address)
    }
}

impl Serving {
    fn close_within(&self, py: Python<'_>, timeout: Duration) {
        let server = self.server.lock().take();
        if let Some(server) = server {
            py.detach(|| server.wait_then_close(timeout));
        }
    }
}

fn type_name_of_class(cls: &Bound<'_, PyAny>) -> String {
    cls.getattr("__name__")
        .map(|n| n.to_string())
        .unwrap_or_else(|_| type_name(cls))
}
