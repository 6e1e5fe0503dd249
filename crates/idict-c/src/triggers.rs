//! Triggers from C (and Fortran, C++): a condition the run checks at each
//! update, and what it does when the condition becomes true.

use crate::status::*;
use crate::{idict_t, run};
use idict::{Level, TriggerActions, TriggerError};
use std::ffi::{c_char, c_int};

/// What a trigger does, or-ed together (0: only log).
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum idict_trigger_action {
    /// Hold the run at its next `idict_wait`, before another step.
    IDICT_TRIGGER_PAUSE = 1,
    IDICT_TRIGGER_TERMINATE = 2,
    /// Write a checkpoint of the run next to it.
    IDICT_TRIGGER_CHECKPOINT = 4,
}

/// Adds a trigger: when `condition` (a Common Expression Language
/// expression over the run's scalar keys, e.g. `"isnan(residual)"` or
/// `"energy > 2 * start(energy)"`) becomes true at an update, the run logs
/// it at `level` (an `idict_level`; -1: warn, or error with
/// `IDICT_TRIGGER_TERMINATE`), with `message` (may be NULL) appended, and
/// does `actions` (`idict_trigger_action`s or-ed). It fires once each time
/// the condition becomes true. A bad condition is `IDICT_ERR_ARGUMENT`,
/// `idict_last_error()` naming the column; a name in use `IDICT_ERR_STATE`.
///
/// # Safety
/// `name` and `condition` are NUL-terminated strings; `message` is NULL or
/// one.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn idict_trigger(
    d: idict_t,
    name: *const c_char,
    condition: *const c_char,
    actions: c_int,
    level: c_int,
    message: *const c_char,
) -> idict_status {
    guard(|| {
        let run = run(d)?;
        // SAFETY: as the function's contract.
        let name = unsafe { text(name, "name") }?;
        // SAFETY: as the function's contract.
        let condition = unsafe { text(condition, "condition") }?;
        let message = match message.is_null() {
            true => "",
            // SAFETY: as the function's contract.
            false => unsafe { text(message, "message") }?,
        };
        if actions & !7 != 0 {
            return Err(Failure::new(
                IDICT_ERR_ARGUMENT,
                format!("actions {actions} is not a set of idict_trigger_action (1, 2, 4)"),
            ));
        }
        let terminate = actions & 2 != 0;
        let level = match level {
            -1 if terminate => Level::Error,
            -1 => Level::Warn,
            level => crate::level_from_c(level)?,
        };
        let actions = TriggerActions {
            pause: actions & 1 != 0,
            terminate,
            checkpoint: actions & 4 != 0,
            level,
            message: message.to_string(),
        };
        run.trigger(name, condition, actions)
            .map(drop)
            .map_err(trigger_failure)
    })
}

/// Removes the trigger called `name` (`IDICT_ERR_NOT_FOUND` if none).
///
/// # Safety
/// `name` is a NUL-terminated string.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn idict_remove_trigger(d: idict_t, name: *const c_char) -> idict_status {
    guard(|| {
        let run = run(d)?;
        // SAFETY: as the function's contract.
        let name = unsafe { text(name, "name") }?;
        run.remove_trigger(name).map_err(trigger_failure)
    })
}

fn trigger_failure(e: TriggerError) -> Failure {
    let code = match e {
        TriggerError::NotFound(_) => IDICT_ERR_NOT_FOUND,
        TriggerError::Exists(_) | TriggerError::TooMany => IDICT_ERR_STATE,
        _ => IDICT_ERR_ARGUMENT,
    };
    Failure::new(code, e.to_string())
}
