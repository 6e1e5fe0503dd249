//! Status codes, the thread's last error message, and the guard every
//! exported function runs its body in: no panic crosses into C.

use std::cell::RefCell;
use std::ffi::{CStr, CString, c_char};
use std::panic::{AssertUnwindSafe, catch_unwind};

/// What every fallible function returns. `IDICT_OK` is 0; on any other
/// code, `idict_last_error()` says what went wrong, in words.
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum idict_status {
    /// Done.
    IDICT_OK = 0,
    /// A pointer argument that may not be NULL was NULL.
    IDICT_ERR_NULL = 1,
    /// The handle is not a live handle of this kind: 0, freed, closed,
    /// made up, or a handle of another kind.
    IDICT_ERR_HANDLE = 2,
    /// A key or text that is not UTF-8.
    IDICT_ERR_UTF8 = 3,
    /// An argument out of range: an array whose bytes do not match its
    /// shape, an unknown dtype or order, a bound that is not a number…
    IDICT_ERR_ARGUMENT = 4,
    /// No such key.
    IDICT_ERR_NOT_FOUND = 5,
    /// The key holds a value of another type.
    IDICT_ERR_TYPE = 6,
    /// Not now: the run has finished, or was asked something its state
    /// refuses.
    IDICT_ERR_STATE = 7,
    /// The system refused: a port, a file, a signal handler.
    IDICT_ERR_SYSTEM = 8,
    /// The header the program was compiled with is not this library's.
    IDICT_ERR_VERSION = 9,
    /// A bug in idict, caught before it reached the caller.
    IDICT_ERR_INTERNAL = 10,
}

pub use idict_status::*;

/// A failure: its code and message.
pub struct Failure(pub idict_status, pub String);

impl Failure {
    pub fn new(code: idict_status, message: impl Into<String>) -> Self {
        Failure(code, message.into())
    }
}

pub type Result<T> = std::result::Result<T, Failure>;

thread_local! {
    static LAST_ERROR: RefCell<CString> = RefCell::new(CString::default());
}

fn set_last_error(message: &str) {
    // An interior NUL would cut the message: it is shown as a space.
    let text = CString::new(message.replace('\0', " ")).unwrap_or_default();
    LAST_ERROR.with(|e| *e.borrow_mut() = text);
}

/// Runs an exported function's body: its failure becomes a status code and
/// the thread's last error; a panic becomes `IDICT_ERR_INTERNAL`.
pub fn guard(body: impl FnOnce() -> Result<()>) -> idict_status {
    match catch_unwind(AssertUnwindSafe(body)) {
        Ok(Ok(())) => IDICT_OK,
        Ok(Err(Failure(code, message))) => {
            set_last_error(&message);
            code
        }
        Err(panic) => {
            let why = panic
                .downcast_ref::<&str>()
                .map(|s| s.to_string())
                .or_else(|| panic.downcast_ref::<String>().cloned())
                .unwrap_or_else(|| "a panic".into());
            set_last_error(&format!("internal error in idict: {why}"));
            IDICT_ERR_INTERNAL
        }
    }
}

/// The message of the last call on this thread that failed ("" if none).
/// Valid until the next failing call on this thread; never NULL.
#[unsafe(no_mangle)]
pub extern "C" fn idict_last_error() -> *const c_char {
    LAST_ERROR.with(|e| e.borrow().as_ptr())
}

/// A C string argument as UTF-8 text; `what` names it in the error.
///
/// # Safety
/// `ptr` is NULL or points to a NUL-terminated string.
pub unsafe fn text<'a>(ptr: *const c_char, what: &str) -> Result<&'a str> {
    if ptr.is_null() {
        return Err(Failure::new(IDICT_ERR_NULL, format!("{what} is NULL")));
    }
    // SAFETY: the caller passes a NUL-terminated string (the header says so).
    let bytes = unsafe { CStr::from_ptr(ptr) };
    bytes.to_str().map_err(|e| {
        Failure::new(
            IDICT_ERR_UTF8,
            format!("{what} is not UTF-8 (byte {})", e.valid_up_to()),
        )
    })
}

/// Writes `value` through `out`, if `out` is not NULL.
///
/// # Safety
/// `out` is NULL or points to writable memory for a `T`.
pub unsafe fn put<T>(out: *mut T, value: T) {
    if !out.is_null() {
        // SAFETY: not NULL, and the caller passes memory for a T.
        unsafe { out.write(value) };
    }
}

/// Writes `value` through `out`, which may not be NULL.
///
/// # Safety
/// `out` is NULL or points to writable memory for a `T`.
pub unsafe fn put_required<T>(out: *mut T, value: T, what: &str) -> Result<()> {
    if out.is_null() {
        return Err(Failure::new(IDICT_ERR_NULL, format!("{what} is NULL")));
    }
    // SAFETY: as `put`.
    unsafe { out.write(value) };
    Ok(())
}
