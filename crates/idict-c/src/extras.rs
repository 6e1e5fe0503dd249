//! Callbacks from C, and checkpoints.

use crate::status::*;
use crate::{RUNS, idict_t};
use idict::IDict;
use std::ffi::{c_char, c_int, c_void};

/// A C callback: the run's handle, the version just published, the
/// `user_data` given with it.
pub type idict_callback =
    Option<unsafe extern "C" fn(d: idict_t, version: u64, user_data: *mut c_void)>;

/// The program's `user_data`, carried to the thread that notifies: the
/// header says it must be usable there.
struct UserData(*mut c_void);
// SAFETY: idict never reads it; it hands it back to the program's own
// callback on the thread that calls idict_notify_update, as documented.
unsafe impl Send for UserData {}

/// Runs `f(d, version, user_data)` after each update, on the thread that
/// called `idict_notify_update`, with no lock held (it may call any
/// idict function). Its id, for `idict_remove_callback`, in `*id` (which
/// may be NULL).
///
/// # Safety
/// `f` is a function that may be called with these arguments for as long
/// as the callback is registered; `id` is NULL or points to a uint64_t.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn idict_add_callback(
    d: idict_t,
    f: idict_callback,
    user_data: *mut c_void,
    id: *mut u64,
) -> idict_status {
    guard(|| {
        let run = RUNS.get(d)?;
        let Some(f) = f else {
            return Err(Failure::new(IDICT_ERR_NULL, "the callback is NULL"));
        };
        let user = UserData(user_data);
        let added = run.add_callback(move |_, event| {
            let user = &user;
            // SAFETY: the program registered `f` for these arguments.
            unsafe { f(d, event.version(), user.0) };
        });
        // SAFETY: as the function's contract.
        unsafe { put(id, u64::from(added)) };
        Ok(())
    })
}

/// Removes a callback; `*removed` (may be NULL) is 1 if it was there.
///
/// # Safety
/// `removed` is NULL or points to an int.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn idict_remove_callback(
    d: idict_t,
    id: u64,
    removed: *mut c_int,
) -> idict_status {
    guard(|| {
        let was = RUNS.get(d)?.remove_callback(id.into());
        // SAFETY: as the function's contract.
        unsafe { put(removed, c_int::from(was)) };
        Ok(())
    })
}

/// Writes the run's published state, whole history and messages to
/// `path`, atomically (the previous checkpoint stays until the new one is
/// complete). The version saved in `*version` (may be NULL).
///
/// # Safety
/// `path` is a NUL-terminated string; `version` NULL or a uint64_t.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn idict_checkpoint(
    d: idict_t,
    path: *const c_char,
    version: *mut u64,
) -> idict_status {
    guard(|| {
        let run = RUNS.get(d)?;
        // SAFETY: as the function's contract.
        let path = unsafe { text(path, "path") }?;
        let saved = run
            .checkpoint(path)
            .map_err(|e| Failure::new(IDICT_ERR_SYSTEM, e.to_string()))?;
        // SAFETY: as the function's contract.
        unsafe { put(version, saved) };
        Ok(())
    })
}

/// A run restored from a checkpoint (its state, history and messages, at
/// the checkpoint's version); its handle in `*out`.
///
/// # Safety
/// `path` is a NUL-terminated string; `out` points to an `idict_t`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn idict_restore(path: *const c_char, out: *mut idict_t) -> idict_status {
    guard(|| {
        // SAFETY: as the function's contract.
        let path = unsafe { text(path, "path") }?;
        if out.is_null() {
            return Err(Failure::new(IDICT_ERR_NULL, "out is NULL"));
        }
        let run =
            IDict::restore(path).map_err(|e| Failure::new(IDICT_ERR_SYSTEM, e.to_string()))?;
        // SAFETY: as the function's contract (checked not NULL above).
        unsafe { put(out, RUNS.insert(run)) };
        Ok(())
    })
}
