//! Real computations that embed idict, each a readable model of how to do
//! it: the loop calls `wait()`, writes its state under `lock()`, publishes
//! with `notify_update()`, and reads its writable parameters back after
//! `wait()`, where clients' writes are applied. The binaries in `src/bin`
//! serve them; the library lets tests and the inspector's demo run them
//! in-process.

pub mod ensemble;
pub mod heat;
pub mod launch;
pub mod lorenz;
pub mod montecarlo_pi;
pub mod optimize;
pub mod pace;
