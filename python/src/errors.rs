//! The Python exceptions, and the Rust errors they carry.
//!
//! Every error keeps the Rust message: one text for a failure whether it
//! reaches a Rust program, the CLI or Python.

use idict::client::ClientError as RustClientError;
use pyo3::create_exception;
use pyo3::exceptions::PyException;
use pyo3::prelude::*;

create_exception!(idict, IDictError, PyException, "Base of every idict error.");
create_exception!(
    idict,
    UpdateError,
    IDictError,
    "notify_update() refused: the run has ended, or this thread holds lock()."
);
create_exception!(
    idict,
    CheckpointError,
    IDictError,
    "A checkpoint could not be written or read."
);
create_exception!(
    idict,
    ServeError,
    IDictError,
    "The run could not be served."
);
create_exception!(idict, ClientError, IDictError, "A client call failed.");
create_exception!(idict, NotFound, ClientError, "No such run, or no such key.");
create_exception!(
    idict,
    Unauthenticated,
    ClientError,
    "The token is missing or wrong."
);
create_exception!(
    idict,
    PermissionDenied,
    ClientError,
    "The token's role may not do this (an observer token cannot steer)."
);
create_exception!(
    idict,
    InvalidArgument,
    ClientError,
    "The run refused a value (wrong type, out of bounds, not writable)."
);
create_exception!(
    idict,
    FailedPrecondition,
    ClientError,
    "Refused in the run's state (pausing a finished run)."
);
create_exception!(
    idict,
    ResourceExhausted,
    ClientError,
    "The run is busy (too many writes or watchers); try again."
);
create_exception!(
    idict,
    Disconnected,
    ClientError,
    "The run cannot be reached, or the connection dropped."
);

pub fn update_error(e: idict::UpdateError) -> PyErr {
    UpdateError::new_err(e.to_string())
}

pub fn client_error(e: RustClientError) -> PyErr {
    let text = e.to_string();
    match e {
        RustClientError::RunNotFound(_) | RustClientError::NotFound(_) => NotFound::new_err(text),
        RustClientError::Unauthenticated(_) => Unauthenticated::new_err(text),
        RustClientError::PermissionDenied(_) => PermissionDenied::new_err(text),
        RustClientError::InvalidArgument(_) | RustClientError::BadAddress(_) => {
            InvalidArgument::new_err(text)
        }
        RustClientError::FailedPrecondition(_) => FailedPrecondition::new_err(text),
        RustClientError::ResourceExhausted(_) => ResourceExhausted::new_err(text),
        RustClientError::Unreachable { .. } | RustClientError::Disconnected(_) => {
            Disconnected::new_err(text)
        }
        RustClientError::Tls(_) | RustClientError::Protocol(_) | RustClientError::Rpc { .. } => {
            ClientError::new_err(text)
        }
    }
}

pub fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    let py = m.py();
    m.add("IDictError", py.get_type::<IDictError>())?;
    m.add("UpdateError", py.get_type::<UpdateError>())?;
    m.add("CheckpointError", py.get_type::<CheckpointError>())?;
    m.add("ServeError", py.get_type::<ServeError>())?;
    m.add("ClientError", py.get_type::<ClientError>())?;
    m.add("NotFound", py.get_type::<NotFound>())?;
    m.add("Unauthenticated", py.get_type::<Unauthenticated>())?;
    m.add("PermissionDenied", py.get_type::<PermissionDenied>())?;
    m.add("InvalidArgument", py.get_type::<InvalidArgument>())?;
    m.add("FailedPrecondition", py.get_type::<FailedPrecondition>())?;
    m.add("ResourceExhausted", py.get_type::<ResourceExhausted>())?;
    m.add("Disconnected", py.get_type::<Disconnected>())?;
    Ok(())
}
