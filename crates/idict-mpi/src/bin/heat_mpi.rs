//! The heat example as an MPI job: u_t = alpha ∇²u + s·g(x, y) on the unit
//! square, u = 0 on the boundary, the grid's rows split in strips over the
//! ranks, halos exchanged with the neighbours each step (real MPI). One
//! run for the whole job, served by rank 0:
//!
//!   mpirun -n 4 target/release/heat_mpi
//!   idict ls; idict pause heat --at-step 500; idict set heat dt 1e-5;
//!   idict get heat residual --ranks; idict-inspector heat
//!
//! Usage: heat_mpi [N [STEPS_PER_SECOND [MAX_STEPS]]]  (defaults 128, 60, none)
//! Each rank prints the step it ended at. HEAT_SLOW_RANK=R:MS makes rank R
//! spend MS milliseconds after each update on work of its own (as writing
//! its output would): a pause then holds rank 0 first, and its status says
//! it is "waiting for rank R".

use idict::{Level, Value};
use idict_mpi::{MpiDict, Reduction};
use mpi::traits::*;
use std::time::{Duration, Instant};

fn main() -> anyhow::Result<()> {
    let Some(universe) = mpi::initialize() else {
        anyhow::bail!("MPI was initialized already");
    };
    let world = universe.world();
    let args: Vec<String> = std::env::args().collect();
    let arg = |i: usize, default: f64| -> anyhow::Result<f64> {
        match args.get(i) {
            Some(a) => a
                .parse()
                .map_err(|_| anyhow::anyhow!("argument {i} must be a number, got '{a}'")),
            None => Ok(default),
        }
    };
    let n = (arg(1, 128.0)? as usize).max(8);
    let rate = arg(2, 60.0)?;
    let max_steps = arg(3, f64::INFINITY)?;
    let slow: Option<(usize, Duration)> = match std::env::var("HEAT_SLOW_RANK") {
        Ok(v) => {
            let (r, ms) = v
                .split_once(':')
                .and_then(|(r, ms)| Some((r.parse().ok()?, ms.parse().ok()?)))
                .ok_or_else(|| anyhow::anyhow!("HEAT_SLOW_RANK is RANK:MS, got '{v}'"))?;
            Some((r, Duration::from_millis(ms)))
        }
        Err(_) => None,
    };

    let mut d = MpiDict::new("heat", &world);
    let (rank, size) = (d.rank() as usize, d.size() as usize);
    // This rank's rows of the interior (1..n-1), in one strip.
    let interior = n - 2;
    let first = 1 + interior * rank / size;
    let last = 1 + interior * (rank + 1) / size; // exclusive
    let rows = last - first;

    let h = 1.0 / (n - 1) as f64;
    let alpha = 1.0;
    let dt_max = h * h / (4.0 * alpha);
    d.writable("dt", 0.9 * dt_max)
        .range(0.0, dt_max)
        .describe(format!("0 < dt <= {dt_max:.4e} (the stability limit)"));
    d.writable("source", 1.0).range(0.0, 1e6);
    d.reduce("residual", Reduction::Max);
    d.reduce("energy", Reduction::Sum);
    d.reduce("max_u", Reduction::Max);
    d.reduce("rows", Reduction::Sum);
    {
        let mut map = d.lock();
        map.insert("n", n);
        map.insert("rows", rows);
    }
    // The field u, n x n, of which this rank holds its rows: rank 0
    // stitches it while someone watches.
    d.field("u", &[n, n], &[first, 0], &[rows, n])?;
    d.serve()?;
    if rank == 0 {
        d.idict().message(
            Level::Info,
            format!("heat_mpi: {n}x{n} grid over {size} ranks, stability limit dt <= {dt_max:.4e}"),
        );
    }

    // The strip with a halo row above and below: (rows + 2) x n.
    let at = |j: usize, i: usize| j * n + i;
    let g: Vec<f64> = (0..(rows + 2) * n)
        .map(|k| {
            let (x, y) = ((k % n) as f64 * h, (first + k / n) as f64 * h - h);
            (-((x - 0.35).powi(2) + (y - 0.6).powi(2)) / (2.0 * 0.08f64.powi(2))).exp()
        })
        .collect();
    let mut u = vec![0.0f64; (rows + 2) * n];
    let mut next = u.clone();
    let (up, down) = (rank.checked_sub(1), (rank + 1 < size).then_some(rank + 1));
    let period = if rate > 0.0 {
        Duration::from_secs_f64(1.0 / rate)
    } else {
        Duration::ZERO
    };
    let mut deadline = Instant::now();
    let (mut t, mut step) = (0.0, 0u64);
    while (step as f64) < max_steps && d.wait() {
        if !period.is_zero() {
            deadline += period;
            if let Some(left) = deadline.checked_duration_since(Instant::now()) {
                std::thread::sleep(left);
            } else {
                deadline = Instant::now();
            }
        }
        let (dt, source) = {
            let map = d.lock();
            let get = |k: &str, or: f64| map.get(k).and_then(Value::as_f64).unwrap_or(or);
            (get("dt", 0.9 * dt_max), get("source", 1.0))
        };
        // Halos: my first row goes up, my last row down.
        exchange(&world, &mut u, n, rows, up, down);
        let mut residual = 0.0f64;
        for j in 1..=rows {
            let global = first + j - 1;
            if global == 0 || global == n - 1 {
                continue;
            }
            for i in 1..n - 1 {
                let k = at(j, i);
                let lap = (u[k - 1] + u[k + 1] + u[k - n] + u[k + n] - 4.0 * u[k]) / (h * h);
                let r = alpha * lap + source * g[k];
                next[k] = u[k] + dt * r;
                residual = residual.max(r.abs());
            }
        }
        std::mem::swap(&mut u, &mut next);
        t += dt;
        step += 1;
        let mine = &u[n..(rows + 1) * n];
        let energy: f64 = mine.iter().sum::<f64>() * h * h;
        let peak = mine.iter().copied().fold(0.0, f64::max);
        {
            let mut map = d.lock();
            map.insert("step", step);
            map.insert("t", t);
            map.insert("residual", residual);
            map.insert("energy", energy);
            map.insert("max_u", peak);
        }
        if d.stitching() {
            d.set_block("u", mine)?;
        }
        d.notify_update()?;
        // A rank with work of its own after the update (output, say).
        if let Some((r, extra)) = slow
            && r == rank
        {
            std::thread::sleep(extra);
        }
    }
    d.notify_update_final()?;
    println!("rank {rank}: ended at step {step}");
    d.close(Duration::from_secs(2));
    Ok(())
}

/// Sends this strip's edge rows to its neighbours and takes theirs into
/// its halo rows.
fn exchange(
    world: &impl Communicator,
    u: &mut [f64],
    n: usize,
    rows: usize,
    up: Option<usize>,
    down: Option<usize>,
) {
    if let Some(up) = up {
        let p = world.process_at_rank(up as i32);
        let send = u[n..2 * n].to_vec();
        let (halo, _) = u.split_at_mut(n);
        mpi::point_to_point::send_receive_into(&send[..], &p, halo, &p);
    }
    if let Some(down) = down {
        let p = world.process_at_rank(down as i32);
        let send = u[rows * n..(rows + 1) * n].to_vec();
        let halo = &mut u[(rows + 1) * n..(rows + 2) * n];
        mpi::point_to_point::send_receive_into(&send[..], &p, halo, &p);
    }
}
