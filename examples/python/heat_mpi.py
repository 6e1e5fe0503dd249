#!/usr/bin/env python3
"""The heat example as an MPI job in Python (mpi4py + numpy): the grid's
rows in strips over the ranks, halos exchanged with Sendrecv, the steady
test an allreduce: the program's own MPI. idict makes the job one run,
served by rank 0: every rank pauses, steps and takes a write of dt at the
same step; residual and energy are reduced over the ranks (each rank's
under residual@ranks), and u is stitched whole while someone watches.

Needs idict built with MPI and mpi4py:

    MATURIN_PEP517_ARGS="--features mpi" pip install ./python
    mpirun -n 4 python examples/python/heat_mpi.py [--n 128] [--rate 60] [--steps N]

then: idict ls; idict pause heat --at-step 500; idict set heat dt 1e-5;
idict get heat residual --ranks; idict-inspector heat. Each rank prints
the step it ended at.
"""

import argparse
import time

import numpy as np
from mpi4py import MPI

import idict


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--n", type=int, default=128, help="grid points per side")
    p.add_argument("--rate", type=float, default=60.0, help="steps a second at most (0: unpaced)")
    p.add_argument("--steps", type=int, default=None, help="stop after this many")
    a = p.parse_args()
    comm = MPI.COMM_WORLD
    rank, size = comm.Get_rank(), comm.Get_size()
    n = max(a.n, 8)
    h = 1.0 / (n - 1)
    alpha = 1.0
    dt_max = h * h / (4 * alpha)
    # This rank's rows of the interior (1 .. n-2): one strip.
    first = 1 + (n - 2) * rank // size
    rows = 1 + (n - 2) * (rank + 1) // size - first

    d = idict.IDict("heat", comm=comm)
    d.writable("dt", 0.9 * dt_max, min=0.0, max=dt_max)
    d.writable("source", 1.0, min=0.0, max=1e6)
    d["n"] = n
    d["rows"] = rows
    d.reduce("residual", "max")
    d.reduce("energy", "sum")
    d.reduce("max_u", "max")
    d.reduce("rows", "sum")
    d.field("u", [n, n], [first, 0], [rows, n])
    d.serve()

    # The strip with a halo row above and below.
    y = (first - 1 + np.arange(rows + 2))[:, None] * h
    x = np.arange(n)[None, :] * h
    g = np.exp(-((x - 0.35) ** 2 + (y - 0.6) ** 2) / (2 * 0.08**2))
    u = np.zeros((rows + 2, n))
    up = rank - 1 if rank > 0 else MPI.PROC_NULL
    down = rank + 1 if rank + 1 < size else MPI.PROC_NULL
    period = 1.0 / a.rate if a.rate > 0 else 0.0
    next_tick = time.monotonic()
    t, step = 0.0, 0
    while (a.steps is None or step < a.steps) and d.wait():
        if period:
            next_tick += period
            time.sleep(max(0.0, next_tick - time.monotonic()))
        dt, source = d["dt"], d["source"]
        comm.Sendrecv(u[1], dest=up, recvbuf=u[rows + 1], source=down)
        comm.Sendrecv(u[rows], dest=down, recvbuf=u[0], source=up)
        lap = (u[1:-1, :-2] + u[1:-1, 2:] + u[:-2, 1:-1] + u[2:, 1:-1] - 4 * u[1:-1, 1:-1]) / (h * h)
        rate = alpha * lap + source * g[1:-1, 1:-1]
        u[1:-1, 1:-1] += dt * rate
        t += dt
        step += 1
        mine = u[1 : rows + 1]
        residual = float(np.abs(rate).max()) if rate.size else 0.0
        with d.lock() as s:
            s["step"] = step
            s["t"] = t
            s["residual"] = residual
            s["energy"] = float(mine.sum() * h * h)
            s["max_u"] = float(mine.max())
        if d.stitching:
            d.set_block("u", np.ascontiguousarray(mine))
        d.notify_update()
        # Steady everywhere or nowhere: the program's own collective.
        if comm.allreduce(residual, op=MPI.MAX) < 1e-4:
            break
    d.notify_update(final=True)
    print(f"rank {rank}: ended at step {step}", flush=True)


if __name__ == "__main__":
    main()
