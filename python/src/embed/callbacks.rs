//! `d.callbacks`: what runs after each update of a Python computation.

use super::{CALLBACK_INTERRUPT, PyIDict, Run};
use crate::convert::type_name;
use crate::model::UpdateEvent;
use pyo3::prelude::*;

/// The callbacks of an IDict (`d.callbacks`).
#[pyclass(frozen, module = "idict")]
pub struct Callbacks {
    pub(super) run: Run,
}

#[pymethods]
impl Callbacks {
    /// Runs `f(d, event)` after each update, on the thread that called
    /// notify_update(), with no lock held. Returns an id for remove().
    /// An exception in `f` is reported (sys.unraisablehook) and the run
    /// goes on.
    pub(super) fn add(&self, f: Bound<'_, PyAny>) -> PyResult<u64> {
        if !f.is_callable() {
            return Err(pyo3::exceptions::PyTypeError::new_err(format!(
                "a callback must be callable (f(d, event)), not {}",
                type_name(&f)
            )));
        }
        let f = f.unbind();
        let lockers = self.run.lockers.clone();
        let id = self.run.idict.add_callback(move |d, ev| {
            Python::attach(|py| {
                let this = PyIDict {
                    run: Run {
                        idict: d.clone(),
                        lockers: lockers.clone(),
                    },
                    serving: parking_lot::Mutex::new(None),
                };
                let result = UpdateEvent::new(py, ev).and_then(|ev| f.call1(py, (this, ev)));
                match result {
                    Ok(_) => {}
                    // Ctrl-C or sys.exit() in a callback: kept for the
                    // notify_update that ran it to raise.
                    Err(e) if !e.is_instance_of::<pyo3::exceptions::PyException>(py) => {
                        CALLBACK_INTERRUPT.with(|c| {
                            c.borrow_mut().get_or_insert(e);
                        });
                    }
                    // A bug in a callback must not stop the run: reported
                    // as Python reports errors in finalisers.
                    Err(e) => e.write_unraisable(py, Some(f.bind(py))),
                }
            })
        });
        Ok(id.into())
    }

    /// Removes a callback; True if it was there.
    pub(super) fn remove(&self, id: u64) -> bool {
        self.run.idict.remove_callback(id.into())
    }

    fn __len__(&self) -> usize {
        self.run.idict.callback_count()
    }
}
