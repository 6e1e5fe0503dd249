//! `notify_update` of 10 changed scalars through the C ABI against the same
//! from Rust, in one process and interleaved rounds (the machine's drift
//! falls on both): `cargo bench -p idict-c`. The C side is the exported
//! functions themselves (handle lookup, status guard), as a C program
//! calls them.

use idict::IDict;
use idict_c::{idict_free, idict_new, idict_notify_update, idict_set_f64s, idict_status, idict_t};
use std::ffi::CString;
use std::time::Instant;

const ROUNDS: usize = 8;
const PER_ROUND: usize = 25_000;

fn p50(mut ns: Vec<f64>) -> f64 {
    ns.sort_by(f64::total_cmp);
    ns[ns.len() / 2]
}

fn main() {
    let names: Vec<String> = (0..10).map(|k| format!("x{k}")).collect();
    let c_names: Vec<CString> = names
        .iter()
        .map(|n| CString::new(n.as_str()).unwrap_or_default())
        .collect();
    let c_keys: Vec<*const std::ffi::c_char> = c_names.iter().map(|c| c.as_ptr()).collect();

    let rust = IDict::new("bench-rust");
    let mut c: idict_t = 0;
    let name = CString::new("bench-c").unwrap_or_default();
    // SAFETY: a NUL-terminated name and a place for the handle.
    assert_eq!(
        unsafe { idict_new(name.as_ptr(), &mut c) },
        idict_status::IDICT_OK
    );

    let (mut rust_ns, mut c_ns) = (Vec::new(), Vec::new());
    let mut values = [0.0f64; 10];
    for _ in 0..ROUNDS {
        for i in 0..PER_ROUND {
            {
                let mut d = rust.lock();
                for (k, name) in names.iter().enumerate() {
                    d.insert(name.as_str(), (i + k) as f64);
                }
            }
            let t = Instant::now();
            let _ = rust.notify_update();
            rust_ns.push(t.elapsed().as_nanos() as f64);
        }
        for i in 0..PER_ROUND {
            for (k, v) in values.iter_mut().enumerate() {
                *v = (i + k) as f64;
            }
            // SAFETY: 10 keys and 10 values.
            unsafe { idict_set_f64s(c, c_keys.as_ptr(), values.as_ptr(), 10) };
            let t = Instant::now();
            // SAFETY: NULL is allowed for the version.
            unsafe { idict_notify_update(c, std::ptr::null_mut()) };
            c_ns.push(t.elapsed().as_nanos() as f64);
        }
    }
    let (r, cc) = (p50(rust_ns), p50(c_ns));
    println!(
        "notify_update of 10 scalars, p50 over {} updates each, interleaved:",
        ROUNDS * PER_ROUND
    );
    println!("  from Rust  {r:.0} ns");
    println!("  from C     {cc:.0} ns");
    println!("  C / Rust   {:.3}  (target <= 1.1)", cc / r);
    idict_free(c);
}
