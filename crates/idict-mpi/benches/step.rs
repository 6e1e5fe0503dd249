//! What idict adds to one step of an MPI job with nobody watching: a
//! collective `wait()` and `notify_update()` of 10 scalars, against what a
//! program does bare for the same (an `MPI_Allreduce` of the 10 doubles
//! and an `MPI_Bcast` of one word), interleaved in one job. At 2, 4 and 8
//! ranks: `cargo bench -p idict-mpi --features mpi` (it runs itself under
//! `mpirun --oversubscribe`); rank 0's p50 per step.

use idict_mpi::MpiDict;
use mpi::collective::SystemOperation;
use mpi::traits::*;
use std::process::Command;
use std::time::Instant;

const CHILD: &str = "IDICT_MPI_STEP_BENCH_CHILD";
const ROUNDS: usize = 10;
const PER_ROUND: usize = 2_000;

fn main() {
    if std::env::var_os(CHILD).is_some() {
        child();
        return;
    }
    let Ok(exe) = std::env::current_exe() else {
        eprintln!("no path to this bench");
        return;
    };
    println!(
        "one step of an MPI job, nobody watching (rank 0's p50 over {} steps each, interleaved):",
        ROUNDS * PER_ROUND
    );
    println!(
        "  ranks   bare (Allreduce 10 + Bcast 1)   idict (wait + notify of 10)   ratio (target <= 1.5)"
    );
    for ranks in [2, 4, 8] {
        let mut mpirun = Command::new("mpirun");
        mpirun.args(["--oversubscribe", "-n", &ranks.to_string()]);
        // SAFETY: geteuid has no preconditions.
        if unsafe { geteuid() } == 0 {
            mpirun.arg("--allow-run-as-root");
        }
        let runs = std::env::temp_dir().join(format!("idict-mpi-bench-{}", std::process::id()));
        let out = mpirun
            .arg(&exe)
            .env(CHILD, "1")
            .env("IDICT_RUNS_DIR", &runs)
            .output();
        let _ = std::fs::remove_dir_all(&runs);
        match out {
            Ok(o) if o.status.success() => print!("{}", String::from_utf8_lossy(&o.stdout)),
            Ok(o) => eprintln!(
                "{ranks} ranks failed: {}",
                String::from_utf8_lossy(&o.stderr)
            ),
            Err(e) => eprintln!("mpirun does not run: {e}"),
        }
    }
}

unsafe extern "C" {
    fn geteuid() -> u32;
}

fn p50(mut ns: Vec<f64>) -> f64 {
    ns.sort_by(f64::total_cmp);
    ns[ns.len() / 2]
}

fn child() {
    let Some(universe) = mpi::initialize() else {
        return;
    };
    let world = universe.world();
    let rank = world.rank();
    let mut d = MpiDict::new("bench-step", &world);
    if d.serve().is_err() {
        return;
    }
    let names: Vec<String> = (0..10).map(|k| format!("x{k}")).collect();
    let root = world.process_at_rank(0);
    let (mut bare, mut with) = (Vec::new(), Vec::new());
    let mut local = [0.0f64; 10];
    let mut global = [0.0f64; 10];
    for round in 0..ROUNDS {
        world.barrier();
        for i in 0..PER_ROUND {
            let t = Instant::now();
            for (k, v) in local.iter_mut().enumerate() {
                *v = (i + k) as f64 + f64::from(rank);
            }
            world.all_reduce_into(&local[..], &mut global[..], SystemOperation::sum());
            let mut go = u64::from(round < ROUNDS);
            root.broadcast_into(&mut go);
            bare.push(t.elapsed().as_nanos() as f64);
        }
        world.barrier();
        for i in 0..PER_ROUND {
            let t = Instant::now();
            if !d.wait() {
                return;
            }
            {
                let mut map = d.lock();
                for (k, name) in names.iter().enumerate() {
                    map.insert(name.as_str(), (i + k) as f64 + f64::from(rank));
                }
            }
            if d.notify_update().is_err() {
                return;
            }
            with.push(t.elapsed().as_nanos() as f64);
        }
    }
    if rank == 0 {
        let (b, w) = (p50(bare), p50(with));
        println!(
            "  {:>5}   {:>26.2} us   {:>25.2} us   {:>5.2}",
            world.size(),
            b / 1e3,
            w / 1e3,
            w / b
        );
    }
    d.notify_update_final().ok();
}
