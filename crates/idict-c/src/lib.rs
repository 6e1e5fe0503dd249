//! idict for C, C++ and Fortran: the `IDict` a computation embeds, as a C
//! ABI over the same core (`libidict_c.so`, `libidict_c.a` in the build
//! tree; `include/idict.h`).
//! It adds no logic the core lacks: handles instead of pointers
//! (`handles`), status codes and a thread's last error instead of
//! `Result` (`status`), and C's types for keys, values and arrays.
//!
//! Thread safety: every function may be called from any thread. A run's
//! loop (`idict_wait`, the setters, `idict_notify_update`) belongs on one
//! thread, as in Rust; pause, resume, terminate and the getters may come
//! from any. No function keeps a pointer it was given past its return.

#![allow(non_camel_case_types)]

mod arrays;
mod extras;
mod handles;
#[cfg(feature = "mpi")]
mod mpi;
mod status;
mod triggers;

#[cfg(feature = "mpi")]
pub use mpi::idict_reduction;

use handles::Table;
use idict::{IDict, Level, ServeOptions, Server, Value, WaitOutcome};
use parking_lot::Mutex;
use status::*;
use std::ffi::{c_char, c_int, c_void};
use std::sync::Arc;
use std::time::Duration;

pub use arrays::{idict_dtype, idict_order};
pub use extras::idict_callback;
pub use status::idict_last_error;
pub use status::idict_status;
pub use triggers::idict_trigger_action;

/// The version of this interface. `idict.h` defines it too; a program
/// passes its header's to `idict_check_version` at start-up.
pub const IDICT_ABI_VERSION: u32 = 1;

/// A run (an `IDict`). 0 is never a run.
pub type idict_t = u64;
/// A run's server. 0 is never a server.
pub type idict_server_t = u64;

static RUNS: Table<IDict> = Table::new(1, "idict_t");
static SERVERS: Table<Arc<Mutex<Option<Server>>>> = Table::new(2, "idict_server_t");

pub(crate) fn run(d: idict_t) -> Result<IDict> {
    RUNS.get(d)
}

/// Checks that the header a program was compiled with is this library's:
/// call it first, as `idict_check_version(IDICT_ABI_VERSION)`.
/// `IDICT_ERR_VERSION` if they differ.
#[unsafe(no_mangle)]
pub extern "C" fn idict_check_version(header_version: u32) -> idict_status {
    guard(|| {
        if header_version != IDICT_ABI_VERSION {
            return Err(Failure::new(
                IDICT_ERR_VERSION,
                format!(
                    "this program was compiled with idict.h version {header_version}, \
                     the library is version {IDICT_ABI_VERSION}: rebuild it against this library's header"
                ),
            ));
        }
        Ok(())
    })
}

/// A new run named `name`; its handle in `*out`.
///
/// # Safety
/// `name` is a NUL-terminated string; `out` points to an `idict_t`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn idict_new(name: *const c_char, out: *mut idict_t) -> idict_status {
    guard(|| {
        // SAFETY: as the function's contract.
        let name = unsafe { text(name, "name") }?;
        let d = IDict::new(name);
        if out.is_null() {
            return Err(Failure::new(IDICT_ERR_NULL, "out is NULL"));
        }
        // SAFETY: as the function's contract (checked not NULL above).
        unsafe { put(out, RUNS.insert(d)) };
        Ok(())
    })
}

/// Lets go of a run's handle. The run itself lives on while its server
/// does (close that first to end it); the handle is dead from now on.
#[unsafe(no_mangle)]
pub extern "C" fn idict_free(d: idict_t) -> idict_status {
    guard(|| {
        RUNS.remove(d)?;
        #[cfg(feature = "mpi")]
        mpi::forget(d);
        Ok(())
    })
}

/// Sets `key` to a value in the working map. Nothing a client sees changes
/// until `idict_notify_update`.
fn set(d: idict_t, key: *const c_char, value: Value) -> Result<()> {
    let run = run(d)?;
    // SAFETY: the exported setters pass their caller's key, which their
    // contract says is a NUL-terminated string.
    let key = unsafe { text(key, "key") }?;
    run.lock().insert(key, value);
    Ok(())
}

/// Sets a float.
///
/// # Safety
/// `key` is a NUL-terminated string.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn idict_set_f64(d: idict_t, key: *const c_char, value: f64) -> idict_status {
    guard(|| set(d, key, Value::Float(value)))
}

/// Sets an integer.
///
/// # Safety
/// `key` is a NUL-terminated string.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn idict_set_i64(d: idict_t, key: *const c_char, value: i64) -> idict_status {
    guard(|| set(d, key, Value::Int(value)))
}

/// Sets a boolean (0 is false).
///
/// # Safety
/// `key` is a NUL-terminated string.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn idict_set_bool(
    d: idict_t,
    key: *const c_char,
    value: c_int,
) -> idict_status {
    guard(|| set(d, key, Value::Bool(value != 0)))
}

/// Sets a string (UTF-8).
///
/// # Safety
/// `key` and `value` are NUL-terminated strings.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn idict_set_str(
    d: idict_t,
    key: *const c_char,
    value: *const c_char,
) -> idict_status {
    guard(|| {
        // SAFETY: as the function's contract.
        let value = unsafe { text(value, "value") }?;
        set(d, key, Value::Str(value.to_string()))
    })
}

/// Sets `n` floats under one lock: `keys[i]` to `values[i]` (the loop's
/// scalars, one lock instead of `n`).
///
/// # Safety
/// `keys` points to `n` NUL-terminated strings, `values` to `n` doubles.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn idict_set_f64s(
    d: idict_t,
    keys: *const *const c_char,
    values: *const f64,
    n: usize,
) -> idict_status {
    guard(|| {
        let run = run(d)?;
        if n > 0 && (keys.is_null() || values.is_null()) {
            return Err(Failure::new(IDICT_ERR_NULL, "keys or values is NULL"));
        }
        let mut checked = Vec::with_capacity(n.min(1 << 16));
        for i in 0..n {
            // SAFETY: the caller passes `n` keys and `n` values.
            let (key, value) = unsafe { (*keys.add(i), *values.add(i)) };
            // SAFETY: each key is a NUL-terminated string.
            checked.push((unsafe { text(key, "a key") }?, value));
        }
        let mut map = run.lock();
        for (key, value) in checked {
            map.insert(key, value);
        }
        Ok(())
    })
}

/// Sets an n-d array of `ndim` dimensions `shape`, its elements at `data`
/// (`nbytes` bytes: the shape's product × the dtype's size, else
/// `IDICT_ERR_ARGUMENT`). `IDICT_COLUMN_MAJOR` data (Fortran's) is stored
/// row-major, so clients see the array's true shape. The data is copied
/// once, before the call returns.
///
/// # Safety
/// `key` is a NUL-terminated string; `data` points to `nbytes` bytes and
/// `shape` to `ndim` sizes.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn idict_set_array(
    d: idict_t,
    key: *const c_char,
    dtype: c_int,
    data: *const c_void,
    nbytes: usize,
    shape: *const usize,
    ndim: usize,
    order: c_int,
) -> idict_status {
    guard(|| {
        // SAFETY: as the function's contract.
        let value = unsafe { arrays::array(dtype, data, nbytes, shape, ndim, order) }?;
        set(d, key, value)
    })
}

/// Removes `key` (a no-op if it is not there).
///
/// # Safety
/// `key` is a NUL-terminated string.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn idict_remove(d: idict_t, key: *const c_char) -> idict_status {
    guard(|| {
        let run = run(d)?;
        // SAFETY: as the function's contract.
        let key = unsafe { text(key, "key") }?;
        run.lock().remove(key);
        Ok(())
    })
}

/// A key's value in the working map, given `f` to read it.
fn get<T>(
    d: idict_t,
    key: *const c_char,
    want: &str,
    f: impl Fn(&Value) -> Option<T>,
) -> Result<T> {
    let run = run(d)?;
    // SAFETY: the exported getters pass their caller's key, which their
    // contract says is a NUL-terminated string.
    let key = unsafe { text(key, "key") }?;
    let map = run.lock();
    let value = map
        .get(key)
        .ok_or_else(|| Failure::new(IDICT_ERR_NOT_FOUND, format!("no key '{key}'")))?;
    f(value).ok_or_else(|| {
        Failure::new(
            IDICT_ERR_TYPE,
            format!("'{key}' holds {}, not {want}", value.kind().name()),
        )
    })
}

/// Reads a number (a float, or an integer as a float): a steered `dt`
/// after `idict_wait`.
///
/// # Safety
/// `key` is a NUL-terminated string; `out` points to a double.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn idict_get_f64(
    d: idict_t,
    key: *const c_char,
    out: *mut f64,
) -> idict_status {
    guard(|| {
        let v = get(d, key, "a number", Value::as_f64)?;
        // SAFETY: as the function's contract.
        unsafe { put_required(out, v, "out") }
    })
}

/// Reads an integer.
///
/// # Safety
/// `key` is a NUL-terminated string; `out` points to an int64_t.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn idict_get_i64(
    d: idict_t,
    key: *const c_char,
    out: *mut i64,
) -> idict_status {
    guard(|| {
        let v = get(d, key, "an integer", Value::as_i64)?;
        // SAFETY: as the function's contract.
        unsafe { put_required(out, v, "out") }
    })
}

/// Declares `key` writable by clients, as a float starting at `initial`,
/// within `[min, max]` (NaN: no bound on that side). A client's write to
/// any other key is refused; an accepted one is applied at `idict_wait`.
///
/// # Safety
/// `key` is a NUL-terminated string.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn idict_writable_f64(
    d: idict_t,
    key: *const c_char,
    initial: f64,
    min: f64,
    max: f64,
) -> idict_status {
    guard(|| writable(d, key, Value::Float(initial), min, max))
}

/// Declares `key` writable by clients, as an integer; bounds as
/// `idict_writable_f64`.
///
/// # Safety
/// `key` is a NUL-terminated string.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn idict_writable_i64(
    d: idict_t,
    key: *const c_char,
    initial: i64,
    min: f64,
    max: f64,
) -> idict_status {
    guard(|| writable(d, key, Value::Int(initial), min, max))
}

fn writable(d: idict_t, key: *const c_char, initial: Value, min: f64, max: f64) -> Result<()> {
    let run = run(d)?;
    // SAFETY: the exported functions pass their caller's key, a
    // NUL-terminated string by their contract.
    let key = unsafe { text(key, "key") }?;
    if min.is_infinite() || max.is_infinite() || (!min.is_nan() && !max.is_nan() && min > max) {
        return Err(Failure::new(
            IDICT_ERR_ARGUMENT,
            format!(
                "bounds [{min}, {max}] for '{key}': give finite numbers, min <= max, or NaN for none"
            ),
        ));
    }
    let mut w = run.writable(key, initial);
    if !min.is_nan() {
        w = w.min(min);
    }
    if !max.is_nan() {
        w.max(max);
    }
    Ok(())
}

/// What `idict_wait_timeout` found.
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum idict_wait_outcome {
    /// Do the next step.
    IDICT_GO = 0,
    /// Terminated (or ended): leave the loop.
    IDICT_STOP = 1,
    /// Still paused when the timeout passed.
    IDICT_STILL_PAUSED = 2,
}

/// The loop's safe point: applies clients' queued writes, then sets
/// `*go` to 1 to go on, 0 once terminated. Blocks while the run is paused
/// (until resume, step or terminate). `go` may be NULL. For an MPI run
/// (`idict_new_mpi`), collective: every rank gets rank 0's decision, and
/// its steering writes, at the same step.
///
/// # Safety
/// `go` is NULL or points to an int.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn idict_wait(d: idict_t, go: *mut c_int) -> idict_status {
    guard(|| {
        let run = run(d)?;
        #[cfg(feature = "mpi")]
        let on = match mpi::job(d) {
            Some(job) => mpi::wait(&job)?,
            None => run.wait(),
        };
        #[cfg(not(feature = "mpi"))]
        let on = run.wait();
        // SAFETY: as the function's contract.
        unsafe { put(go, c_int::from(on)) };
        Ok(())
    })
}

/// `idict_wait`, waiting at most `seconds` while paused.
///
/// # Safety
/// `outcome` is NULL or points to an `idict_wait_outcome`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn idict_wait_timeout(
    d: idict_t,
    seconds: f64,
    outcome: *mut idict_wait_outcome,
) -> idict_status {
    guard(|| {
        let run = run(d)?;
        let timeout = Duration::try_from_secs_f64(seconds).map_err(|_| {
            Failure::new(
                IDICT_ERR_ARGUMENT,
                format!("{seconds} is not a number of seconds >= 0"),
            )
        })?;
        let found = match run.wait_timeout(timeout) {
            WaitOutcome::Go => idict_wait_outcome::IDICT_GO,
            WaitOutcome::Stop => idict_wait_outcome::IDICT_STOP,
            WaitOutcome::StillPaused => idict_wait_outcome::IDICT_STILL_PAUSED,
        };
        // SAFETY: as the function's contract.
        unsafe { put(outcome, found) };
        Ok(())
    })
}

fn notify(d: idict_t, last: bool, version: *mut u64) -> Result<()> {
    let run = run(d)?;
    #[cfg(feature = "mpi")]
    if let Some(job) = mpi::job(d) {
        let v = mpi::notify(&job, last)?;
        // SAFETY: as below.
        unsafe { put(version, v) };
        return Ok(());
    }
    let published = if last {
        run.notify_update_final()
    } else {
        run.notify_update()
    };
    let v = published.map_err(|e| Failure::new(IDICT_ERR_STATE, e.to_string()))?;
    // SAFETY: the exported functions pass their caller's `version`, NULL
    // or memory for a uint64_t by their contract.
    unsafe { put(version, v) };
    Ok(())
}

/// Publishes the keys set since the last notify as one new version (in
/// `*version`, which may be NULL). Never blocks on clients. For an MPI run
/// (`idict_new_mpi`), collective: rank 0 publishes the ranks' values.
///
/// # Safety
/// `version` is NULL or points to a uint64_t.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn idict_notify_update(d: idict_t, version: *mut u64) -> idict_status {
    guard(|| notify(d, false, version))
}

/// Publishes the last update and marks the run finished: every watcher
/// gets it, then its stream ends. Later updates are refused.
///
/// # Safety
/// `version` is NULL or points to a uint64_t.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn idict_notify_update_final(d: idict_t, version: *mut u64) -> idict_status {
    guard(|| notify(d, true, version))
}

/// Asks the run to end: the next `idict_wait` returns 0 (a paused one at
/// once). Irreversible.
#[unsafe(no_mangle)]
pub extern "C" fn idict_terminate(d: idict_t) -> idict_status {
    guard(|| run(d).map(|r| r.terminate()))
}

/// Pauses the run at its next `idict_wait`.
#[unsafe(no_mangle)]
pub extern "C" fn idict_pause(d: idict_t) -> idict_status {
    guard(|| run(d).map(|r| r.pause()))
}

/// Resumes a paused run.
#[unsafe(no_mangle)]
pub extern "C" fn idict_resume(d: idict_t) -> idict_status {
    guard(|| run(d).map(|r| r.resume()))
}

/// Message levels.
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum idict_level {
    IDICT_DEBUG = 0,
    IDICT_INFO = 1,
    IDICT_WARN = 2,
    IDICT_ERROR = 3,
}

/// An `idict_level` from C.
pub(crate) fn level_from_c(level: c_int) -> Result<Level> {
    Ok(match level {
        0 => Level::Debug,
        1 => Level::Info,
        2 => Level::Warn,
        3 => Level::Error,
        other => {
            return Err(Failure::new(
                IDICT_ERR_ARGUMENT,
                format!("{other} is not an idict_level (0 to 3)"),
            ));
        }
    })
}

/// A message every client sees (a bounded log; late clients get the most
/// recent). `level` is an `idict_level`.
///
/// # Safety
/// `text` is a NUL-terminated string.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn idict_message(
    d: idict_t,
    level: c_int,
    text: *const c_char,
) -> idict_status {
    guard(|| {
        let run = run(d)?;
        let level = level_from_c(level)?;
        // SAFETY: as the function's contract.
        let text = unsafe { status::text(text, "text") }?;
        run.message(level, text);
        Ok(())
    })
}

/// SIGINT, SIGTERM and SIGHUP (a batch scheduler's cancel, Ctrl-C) become
/// `idict_terminate`, so a cancelled job publishes its final state and
/// removes its run file.
#[unsafe(no_mangle)]
pub extern "C" fn idict_terminate_on_signals(d: idict_t) -> idict_status {
    guard(|| {
        run(d)?
            .terminate_on_signals()
            .map_err(|e| Failure::new(IDICT_ERR_SYSTEM, e.to_string()))
    })
}

/// Serves the run: 127.0.0.1 on a free port, fresh tokens, a run file (so
/// `idict ls`, the CLI and the inspector find it by name), and one line on
/// stderr saying where to connect. The server's handle in `*out`. For an
/// MPI run, rank 0 serves the job; the other ranks' handles hold no server.
///
/// SIGPIPE: if the program left it at its default, it is ignored from now
/// on (as every Rust program does): a client that goes away mid-write
/// would otherwise end the whole process. A handler of the program's own
/// is left alone.
///
/// # Safety
/// `out` points to an `idict_server_t`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn idict_serve(d: idict_t, out: *mut idict_server_t) -> idict_status {
    guard(|| {
        let run = run(d)?;
        if out.is_null() {
            return Err(Failure::new(IDICT_ERR_NULL, "out is NULL"));
        }
        ignore_sigpipe();
        // An MPI job: rank 0 serves it; the other ranks' handles hold none.
        #[cfg(feature = "mpi")]
        let server = match mpi::job(d) {
            Some(job) => mpi::serve(&job)?,
            None => Some(serve_alone(&run)?),
        };
        #[cfg(not(feature = "mpi"))]
        let server = Some(serve_alone(&run)?);
        let handle = SERVERS.insert(Arc::new(Mutex::new(server)));
        // SAFETY: as the function's contract (checked not NULL above).
        unsafe { put(out, handle) };
        Ok(())
    })
}

/// A run of one process served on 127.0.0.1.
fn serve_alone(run: &IDict) -> Result<Server> {
    ServeOptions::default()
        .serve(run)
        .map_err(|e| Failure::new(IDICT_ERR_SYSTEM, e.to_string()))
}

/// Copies the server's address (`http://127.0.0.1:PORT`) into `buf` of
/// `len` bytes, NUL-terminated; `IDICT_ERR_ARGUMENT` if it does not fit.
///
/// # Safety
/// `buf` points to `len` writable bytes.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn idict_server_address(
    s: idict_server_t,
    buf: *mut c_char,
    len: usize,
) -> idict_status {
    guard(|| {
        let server = SERVERS.get(s)?;
        let held = server.lock();
        let address = held.as_ref().map(|s| s.address().to_string()).ok_or_else(|| {
            Failure::new(
                IDICT_ERR_STATE,
                "no server here: it is closed, or this is an MPI rank other than 0 (rank 0 serves the job)",
            )
        })?;
        if buf.is_null() {
            return Err(Failure::new(IDICT_ERR_NULL, "buf is NULL"));
        }
        if address.len() >= len {
            return Err(Failure::new(
                IDICT_ERR_ARGUMENT,
                format!(
                    "the address takes {} bytes with its NUL, buf has {len}",
                    address.len() + 1
                ),
            ));
        }
        // SAFETY: `buf` has `len` bytes and the address with its NUL fits.
        unsafe {
            std::ptr::copy_nonoverlapping(address.as_ptr(), buf.cast::<u8>(), address.len());
            buf.add(address.len()).write(0);
        }
        Ok(())
    })
}

/// Serves until every watcher has the run's final update (publishing one
/// if the run has not), or `timeout_seconds` pass; then closes the server
/// and removes the run file. The server's handle is dead after it.
#[unsafe(no_mangle)]
pub extern "C" fn idict_server_wait_then_close(
    s: idict_server_t,
    timeout_seconds: f64,
) -> idict_status {
    guard(|| {
        let timeout = Duration::try_from_secs_f64(timeout_seconds).map_err(|_| {
            Failure::new(
                IDICT_ERR_ARGUMENT,
                format!("{timeout_seconds} is not a number of seconds >= 0"),
            )
        })?;
        let server = SERVERS.remove(s)?;
        let taken = server.lock().take();
        if let Some(server) = taken {
            server.wait_then_close(timeout);
        }
        Ok(())
    })
}

/// Closes the server at once and removes the run file. The server's
/// handle is dead after it.
#[unsafe(no_mangle)]
pub extern "C" fn idict_server_close(s: idict_server_t) -> idict_status {
    guard(|| {
        let server = SERVERS.remove(s)?;
        let taken = server.lock().take();
        if let Some(server) = taken {
            server.close();
        }
        Ok(())
    })
}

/// SIGPIPE ignored if it is at its default. A C or Fortran `main` does not
/// run Rust's start-up, which ignores it; the socket writes that carry
/// several buffers at once (`writev`) raise it when a client has gone.
#[cfg(unix)]
fn ignore_sigpipe() {
    // SAFETY: signal() with a constant disposition; a handler the program
    // installed is put back at once.
    unsafe {
        let before = libc::signal(libc::SIGPIPE, libc::SIG_IGN);
        if before != libc::SIG_DFL && before != libc::SIG_ERR {
            libc::signal(libc::SIGPIPE, before);
        }
    }
}

#[cfg(not(unix))]
fn ignore_sigpipe() {}
