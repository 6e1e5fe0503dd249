//! How many copies setting an 8 MiB array from C costs: `idict_set_array`
//! of a 1024×1024 f64 field followed by `idict_notify_update` (the
//! publish), timed against one copy of the same bytes into fresh memory
//! (`to_vec`, then freed, as a replaced value is): `cargo bench -p idict-c --bench arrays`.
//! Interleaved rounds, so the machine's drift falls on each alike.

use idict_c::{
    idict_dtype, idict_free, idict_new, idict_notify_update, idict_order, idict_set_array,
    idict_status, idict_t,
};
use std::ffi::CString;
use std::hint::black_box;
use std::time::Instant;

const N: usize = 1024;
const ROUNDS: usize = 10;
const PER_ROUND: usize = 20;

fn p50(mut ns: Vec<f64>) -> f64 {
    ns.sort_by(f64::total_cmp);
    ns[ns.len() / 2]
}

fn set_and_publish(d: idict_t, key: &CString, field: &[f64], order: idict_order) -> f64 {
    let shape = [N, N];
    let t = Instant::now();
    // SAFETY: `field` holds N*N f64s, as `nbytes` and `shape` say.
    let set = unsafe {
        idict_set_array(
            d,
            key.as_ptr(),
            idict_dtype::IDICT_F64 as i32,
            field.as_ptr().cast(),
            std::mem::size_of_val(field),
            shape.as_ptr(),
            2,
            order as i32,
        )
    };
    // SAFETY: NULL is allowed for the version.
    let published = unsafe { idict_notify_update(d, std::ptr::null_mut()) };
    let ns = t.elapsed().as_nanos() as f64;
    assert_eq!(
        (set, published),
        (idict_status::IDICT_OK, idict_status::IDICT_OK)
    );
    ns
}

fn main() {
    let field: Vec<f64> = (0..N * N).map(|i| i as f64).collect();
    let key = CString::new("u").unwrap_or_default();
    let name = CString::new("bench-arrays").unwrap_or_default();
    let mut d: idict_t = 0;
    // SAFETY: a NUL-terminated name and a place for the handle.
    assert_eq!(
        unsafe { idict_new(name.as_ptr(), &mut d) },
        idict_status::IDICT_OK
    );

    let (mut copy, mut row, mut column) = (Vec::new(), Vec::new(), Vec::new());
    for _ in 0..ROUNDS {
        for _ in 0..PER_ROUND {
            // A copy's whole life, as a replaced value has it: allocated,
            // filled, freed.
            let t = Instant::now();
            drop(black_box(black_box(&field).to_vec()));
            copy.push(t.elapsed().as_nanos() as f64);
        }
        for _ in 0..PER_ROUND {
            row.push(set_and_publish(
                d,
                &key,
                &field,
                idict_order::IDICT_ROW_MAJOR,
            ));
        }
        for _ in 0..PER_ROUND {
            column.push(set_and_publish(
                d,
                &key,
                &field,
                idict_order::IDICT_COLUMN_MAJOR,
            ));
        }
    }
    let (copy, row, column) = (p50(copy), p50(row), p50(column));
    let mib = (N * N * 8) as f64 / (1 << 20) as f64;
    println!(
        "an {mib:.0} MiB f64 array (1024x1024) from C, set and published, p50 of {}:",
        ROUNDS * PER_ROUND
    );
    println!("  one copy (to_vec, freed)       {:8.0} us", copy / 1e3);
    println!(
        "  row-major set + notify         {:8.0} us  = {:.2} copies",
        row / 1e3,
        row / copy
    );
    println!(
        "  column-major set + notify      {:8.0} us  = {:.2} copies (transposed as copied)",
        column / 1e3,
        column / copy
    );
    idict_free(d);
}
