//! MPI jobs from C and Fortran (feature `mpi`): `idict_new_mpi` makes a
//! rank's part of one run for the whole job, over the program's
//! communicator given as its Fortran handle (`MPI_Comm_c2f(comm)` in C,
//! the communicator itself in Fortran), so one library serves both. The
//! handle is an `idict_t` like any: the setters and getters work on the
//! rank's own values; `idict_wait`, `idict_notify_update` and
//! `idict_serve` become the job's collective calls (rank 0 serves).
//!
//! An MPI run's handle belongs to the thread that made it (MPI is called
//! from there); free it before `MPI_Finalize`.

use crate::arrays::shape_of;
use crate::status::*;
use crate::{RUNS, idict_t};
use idict_mpi::{MpiDict, Reduction};
use mpi::raw::FromRaw;
use mpi::topology::SimpleCommunicator;
use std::cell::RefCell;
use std::collections::HashMap;
use std::ffi::{c_char, c_int};
use std::rc::Rc;

thread_local! {
    /// This thread's MPI runs, by handle.
    static JOBS: RefCell<HashMap<idict_t, Rc<RefCell<MpiDict>>>> = RefCell::new(HashMap::new());
}

/// The MPI run `d` is, if it is one (of this thread).
pub(crate) fn job(d: idict_t) -> Option<Rc<RefCell<MpiDict>>> {
    JOBS.with(|j| j.borrow().get(&d).cloned())
}

/// Lets go of an MPI run with its handle.
pub(crate) fn forget(d: idict_t) {
    JOBS.with(|j| j.borrow_mut().remove(&d));
}

/// The job, borrowed for a call; refused while a call that called back
/// (a callback of its update) has it.
fn in_use(job: &RefCell<MpiDict>) -> Result<std::cell::RefMut<'_, MpiDict>> {
    job.try_borrow_mut().map_err(|_| {
        Failure::new(
            IDICT_ERR_STATE,
            "the MPI run is in use by a call that called back",
        )
    })
}

/// The job's part as a borrowed value, or why not.
fn with_job<T>(d: idict_t, f: impl FnOnce(&mut MpiDict) -> Result<T>) -> Result<T> {
    let job = job(d).ok_or_else(|| {
        Failure::new(
            IDICT_ERR_HANDLE,
            format!("{d:#x} is not an MPI run of this thread (made by idict_new_mpi)"),
        )
    })?;
    let mut job = in_use(&job)?;
    f(&mut job)
}

/// How a key's values on the ranks become the run's.
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum idict_reduction {
    IDICT_SUM = 0,
    IDICT_MIN = 1,
    IDICT_MAX = 2,
    /// The default: the mean (or the value, when every rank has the same).
    IDICT_MEAN = 3,
}

/// One rank's part of a run that is the whole MPI job (collective: every
/// rank of the communicator calls it). `comm` is the communicator's
/// Fortran handle: `MPI_Comm_c2f(MPI_COMM_WORLD)` in C, `MPI_COMM_WORLD` in
/// Fortran. MPI must be initialized. Rank 0's run says it is made of the
/// communicator's ranks.
///
/// # Safety
/// `name` is a NUL-terminated string; `out` points to an `idict_t`; `comm`
/// is a live communicator's Fortran handle.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn idict_new_mpi(
    name: *const c_char,
    comm: c_int,
    out: *mut idict_t,
) -> idict_status {
    guard(|| {
        // SAFETY: as the function's contract.
        let name = unsafe { text(name, "name") }?;
        if out.is_null() {
            return Err(Failure::new(IDICT_ERR_NULL, "out is NULL"));
        }
        let mut initialized = 0;
        // SAFETY: MPI_Initialized may be called at any time.
        unsafe { mpi::ffi::MPI_Initialized(&mut initialized) };
        if initialized == 0 {
            return Err(Failure::new(
                IDICT_ERR_STATE,
                "MPI is not initialized: call MPI_Init first",
            ));
        }
        // A duplicate of the program's communicator, ours to free: the
        // job's run duplicates it again for its own messages.
        // SAFETY: `comm` is a live communicator's Fortran handle (the
        // contract); MPI_Comm_dup writes a new handle.
        let ours = unsafe {
            let raw = mpi::ffi::MPI_Comm_f2c(comm);
            let mut dup = std::mem::MaybeUninit::uninit();
            if mpi::ffi::MPI_Comm_dup(raw, dup.as_mut_ptr()) != 0 {
                return Err(Failure::new(
                    IDICT_ERR_ARGUMENT,
                    format!("{comm} is not a communicator's Fortran handle"),
                ));
            }
            SimpleCommunicator::from_raw(dup.assume_init())
        };
        let job = MpiDict::new(name, &ours);
        drop(ours);
        let handle = RUNS.insert(job.idict().clone());
        JOBS.with(|j| j.borrow_mut().insert(handle, Rc::new(RefCell::new(job))));
        // SAFETY: as the function's contract (checked not NULL above).
        unsafe { put(out, handle) };
        Ok(())
    })
}

/// This rank's number and the job's size (either may be NULL).
///
/// # Safety
/// `rank` and `size` are NULL or point to ints.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn idict_mpi_rank(
    d: idict_t,
    rank: *mut c_int,
    size: *mut c_int,
) -> idict_status {
    guard(|| {
        with_job(d, |j| {
            // SAFETY: as the function's contract.
            unsafe {
                put(rank, j.rank());
                put(size, j.size());
            }
            Ok(())
        })
    })
}

/// How `key`'s values on the ranks become the run's (default: mean).
///
/// # Safety
/// `key` is a NUL-terminated string.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn idict_mpi_reduce(
    d: idict_t,
    key: *const c_char,
    how: c_int,
) -> idict_status {
    guard(|| {
        // SAFETY: as the function's contract.
        let key = unsafe { text(key, "key") }?;
        let how = match how {
            0 => Reduction::Sum,
            1 => Reduction::Min,
            2 => Reduction::Max,
            3 => Reduction::Mean,
            other => {
                return Err(Failure::new(
                    IDICT_ERR_ARGUMENT,
                    format!(
                        "{other} is not an idict_reduction (IDICT_SUM, IDICT_MIN, IDICT_MAX, IDICT_MEAN)"
                    ),
                ));
            }
        };
        with_job(d, |j| {
            j.reduce(key, how);
            Ok(())
        })
    })
}

/// Declares this rank's block of a field decomposed over the ranks (f64,
/// 1 to 3 dimensions): the field's global shape, the block's offset
/// (0-based) and shape in it, `ndim` each, in the order `order` says
/// (`IDICT_COLUMN_MAJOR`: Fortran's, and the field shows with Fortran's
/// shape). Rank 0 publishes the field whole under `key`, stitched only
/// while someone watches.
///
/// # Safety
/// `key` is a NUL-terminated string; `global`, `offset` and `shape` point
/// to `ndim` sizes each.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn idict_mpi_field(
    d: idict_t,
    key: *const c_char,
    ndim: usize,
    global: *const usize,
    offset: *const usize,
    shape: *const usize,
    order: c_int,
) -> idict_status {
    guard(|| {
        // SAFETY: as the function's contract.
        let (key, global, offset, shape) = unsafe {
            (
                text(key, "key")?,
                shape_of(global, ndim, "global")?,
                shape_of(offset, ndim, "offset")?,
                shape_of(shape, ndim, "shape")?,
            )
        };
        let declared = |j: &mut MpiDict| match order {
            0 => j.field(key, &global, &offset, &shape),
            _ => j.field_column_major(key, &global, &offset, &shape),
        };
        if !matches!(order, 0 | 1) {
            return Err(Failure::new(
                IDICT_ERR_ARGUMENT,
                format!("{order} is not an idict_order (0: row-major, 1: column-major)"),
            ));
        }
        with_job(d, |j| {
            declared(j).map_err(|e| Failure::new(IDICT_ERR_ARGUMENT, e.to_string()))
        })
    })
}

/// Whether this step's update stitches the fields (`*yes` 1 or 0): a
/// program may skip preparing its blocks when it does not.
///
/// # Safety
/// `yes` points to an int.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn idict_mpi_stitching(d: idict_t, yes: *mut c_int) -> idict_status {
    guard(|| {
        let on = with_job(d, |j| Ok(j.stitching()))?;
        // SAFETY: as the function's contract.
        unsafe { put_required(yes, c_int::from(on), "yes") }
    })
}

/// This step's values of this rank's block of `key`: `n` doubles in the
/// order its field was declared in. Copied only when the update stitches.
///
/// # Safety
/// `key` is a NUL-terminated string; `data` points to `n` doubles.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn idict_mpi_set_block(
    d: idict_t,
    key: *const c_char,
    data: *const f64,
    n: usize,
) -> idict_status {
    guard(|| {
        // SAFETY: as the function's contract.
        let key = unsafe { text(key, "key") }?;
        if data.is_null() && n > 0 {
            return Err(Failure::new(IDICT_ERR_NULL, "data is NULL"));
        }
        let values: &[f64] = if n == 0 {
            &[]
        } else {
            // SAFETY: `data` points to `n` doubles (the contract).
            unsafe { std::slice::from_raw_parts(data, n) }
        };
        with_job(d, |j| {
            j.set_block(key, values)
                .map_err(|e| Failure::new(IDICT_ERR_ARGUMENT, e.to_string()))
        })
    })
}

/// The job's collective wait, for `idict_wait`.
pub(crate) fn wait(job: &RefCell<MpiDict>) -> Result<bool> {
    let mut job = in_use(job)?;
    Ok(job.wait())
}

/// The job's collective update, for `idict_notify_update(_final)`.
pub(crate) fn notify(job: &RefCell<MpiDict>, last: bool) -> Result<u64> {
    let mut job = in_use(job)?;
    let published = if last {
        job.notify_update_final()
    } else {
        job.notify_update()
    };
    published.map_err(|e| Failure::new(IDICT_ERR_STATE, e.to_string()))
}

/// Serves the job from rank 0, whose server it gives (the other ranks
/// serve nothing: `None`).
pub(crate) fn serve(job: &RefCell<MpiDict>) -> Result<Option<idict::Server>> {
    let mut job = in_use(job)?;
    job.serve()
        .map_err(|e| Failure::new(IDICT_ERR_SYSTEM, e.to_string()))?;
    Ok(job.take_server())
}
