//! MPI jobs from Python: `IDict("heat", comm=MPI.COMM_WORLD)` (mpi4py's
//! communicator, or anything with its `py2f()`) is a rank's part of one run
//! for the whole job. Its `wait()`, `notify_update()` and `serve()` become
//! the job's collective calls (rank 0 serves); `reduce`, `field`,
//! `set_block` and `stitching` are as in Rust's idict-mpi. Needs the
//! extension built with MPI: `MATURIN_PEP517_ARGS="--features mpi" pip
//! install ./python`.
//!
//! The job belongs to the thread that made it (MPI is called from it): it
//! is kept in a thread-local table, by run.

#[cfg(feature = "mpi")]
mod job {
    use idict::{IDict, Server};
    use idict_mpi::{MpiDict, MpiError, Reduction};
    use mpi::raw::FromRaw;
    use mpi::topology::SimpleCommunicator;
    use pyo3::exceptions::{PyRuntimeError, PyValueError};
    use pyo3::prelude::*;
    use std::cell::RefCell;
    use std::collections::HashMap;

    thread_local! {
        static JOBS: RefCell<HashMap<usize, MpiDict>> = RefCell::new(HashMap::new());
    }

    fn key(idict: &IDict) -> usize {
        std::sync::Arc::as_ptr(&idict.inner) as usize
    }

    /// A rank's part of the run `name` over `comm` (collective).
    pub fn new(py: Python<'_>, name: String, comm: &Bound<'_, PyAny>) -> PyResult<IDict> {
        let handle: i32 = comm
            .call_method0("py2f")
            .and_then(|h| h.extract())
            .map_err(|_| {
                PyValueError::new_err(
                    "comm must be an MPI communicator (mpi4py's, with py2f()), e.g. MPI.COMM_WORLD",
                )
            })?;
        if !mpi::environment::is_initialized() {
            return Err(PyRuntimeError::new_err(
                "MPI is not initialized: import mpi4py.MPI first",
            ));
        }
        // A duplicate of the program's communicator, ours to free; the job
        // duplicates it again for its own messages.
        // SAFETY: `handle` is a live communicator's Fortran handle (mpi4py's
        // py2f); MPI_Comm_dup writes a new one, which we own.
        let ours = unsafe {
            let raw = mpi::ffi::MPI_Comm_f2c(handle);
            let mut dup = std::mem::MaybeUninit::uninit();
            if mpi::ffi::MPI_Comm_dup(raw, dup.as_mut_ptr()) != 0 {
                return Err(PyValueError::new_err(format!(
                    "{handle} is not a communicator's handle"
                )));
            }
            SimpleCommunicator::from_raw(dup.assume_init())
        };
        let _ = py;
        let job = MpiDict::new(name, &ours);
        drop(ours);
        let idict = job.idict().clone();
        JOBS.with(|j| j.borrow_mut().insert(key(&idict), job));
        Ok(idict)
    }

    /// Runs `f` on `idict`'s job, if it is one of this thread's.
    pub fn with<T>(idict: &IDict, f: impl FnOnce(&mut MpiDict) -> T) -> Option<T> {
        JOBS.with(|j| j.borrow_mut().get_mut(&key(idict)).map(f))
    }

    /// Lets go of the job (before MPI is finalized: after, its
    /// communicator is not freed, which MPI would refuse).
    pub fn forget(idict: &IDict) {
        let job = JOBS.with(|j| j.borrow_mut().remove(&key(idict)));
        if let Some(job) = job
            && mpi::environment::is_finalized()
        {
            std::mem::forget(job);
        }
    }

    pub fn error(e: MpiError) -> PyErr {
        PyRuntimeError::new_err(e.to_string())
    }

    pub fn reduction(how: &str) -> PyResult<Reduction> {
        match how {
            "sum" => Ok(Reduction::Sum),
            "min" => Ok(Reduction::Min),
            "max" => Ok(Reduction::Max),
            "mean" => Ok(Reduction::Mean),
            other => Err(PyValueError::new_err(format!(
                "{other:?} is not a reduction: 'sum', 'min', 'max' or 'mean'"
            ))),
        }
    }

    /// Rank 0 serves the job (its server, to close apart); the others
    /// serve nothing.
    pub fn serve(job: &mut MpiDict) -> Result<Option<Server>, MpiError> {
        job.serve()?;
        Ok(job.take_server())
    }
}

#[cfg(feature = "mpi")]
pub use job::*;

/// Without MPI in the extension, a run is never an MPI job.
#[cfg(not(feature = "mpi"))]
mod none {
    use idict::IDict;
    use pyo3::exceptions::PyNotImplementedError;
    use pyo3::prelude::*;

    pub fn new(_: Python<'_>, _: String, _: &Bound<'_, PyAny>) -> PyResult<IDict> {
        Err(PyNotImplementedError::new_err(
            "this idict was built without MPI: MATURIN_PEP517_ARGS=\"--features mpi\" pip install ./python",
        ))
    }

    pub fn forget(_: &IDict) {}
}

#[cfg(not(feature = "mpi"))]
pub use none::*;
