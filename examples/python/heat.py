#!/usr/bin/env python3
"""A 2-D heat equation in numpy, served with idict (the Python twin of
examples/src/heat.rs).

u_t = alpha ∇²u + s·g(x, y) on the unit square with u = 0 on the boundary,
by explicit finite differences. It publishes the step, time, residual
(max |∂u/∂t|), total energy, peak and the field ``u`` (a 2-D float64 array),
and lets clients steer the time step ``dt`` (bounded by the explicit
scheme's stability limit h²/(4 alpha), so no write can make it blow up) and
the source strength ``source``. It runs until the field is steady, ``--steps``
iterations, or a terminate.

Run it (with the ``idict`` Python package installed, e.g. ``pip install ./python``):

    python examples/python/heat.py                      # 60 steps a second
    python examples/python/heat.py --start-paused --rate 0 --steps 100000

then, from another terminal:

    idict ls                                            # it is listed as "heat"
    idict-inspector heat                                # watch, plot, pause, steer
    idict get heat residual step u
    idict set heat dt 1e-5 --wait
    idict pause heat ; idict step heat 3 ; idict resume heat
    idict terminate heat --wait

Ctrl-C (or the SIGTERM a batch scheduler sends) finishes it cleanly:
watchers get the final update and the run file goes.
"""

import argparse
import sys
import time

import numpy as np

import idict


class Pace:
    """Holds a loop to at most ``rate`` iterations per second (0: unlimited)."""

    def __init__(self, rate):
        self.period = 1.0 / rate if rate > 0 else None
        self.next = time.monotonic()

    def tick(self):
        if self.period is None:
            return
        now = time.monotonic()
        if self.next > now:
            time.sleep(self.next - now)
            self.next += self.period
        else:
            # Fell behind (e.g. paused): do not burst to catch up.
            self.next = now + self.period


def stability_limit(h, alpha):
    """The largest stable explicit time step for grid spacing ``h``."""
    return h * h / (4.0 * alpha)


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--size", type=int, default=128, help="grid points per side")
    p.add_argument("--alpha", type=float, default=1.0, help="diffusivity")
    p.add_argument("--source", type=float, default=1.0, help="initial source strength")
    p.add_argument("--tolerance", type=float, default=1e-4, help="stop below this residual")
    p.add_argument("--steps", type=int, default=None, help="stop after this many iterations")
    p.add_argument("--rate", type=float, default=60.0, help="iterations per second at most (0: unlimited)")
    p.add_argument("--start-paused", action="store_true", help="hold before step 0 until a client resumes")
    p.add_argument("--name", default="heat", help="the run's name")
    args = p.parse_args(argv)

    n = max(args.size, 3)
    alpha = args.alpha
    h = 1.0 / (n - 1)
    dt_max = stability_limit(h, alpha)

    d = idict.IDict(args.name, start_paused=args.start_paused)
    # Before serving: Ctrl-C / SIGTERM end the loop (wait() returns False).
    d.terminate_on_signals()
    d.writable(
        "dt",
        0.9 * dt_max,
        min=0.0,
        max=dt_max,
        doc=f"0 <= dt <= {dt_max:.4e} (the stability limit)",
    )
    d.writable("source", args.source, min=0.0, max=1e6, doc="source strength")

    # A Gaussian heat source off the centre, so the field is not symmetric.
    # u[j, i] is the point x = i h, y = j h.
    x = np.arange(n) * h
    xx, yy = np.meshgrid(x, x)
    g = np.exp(-((xx - 0.35) ** 2 + (yy - 0.6) ** 2) / (2.0 * 0.08**2))
    g_in = g[1:-1, 1:-1]

    with d.lock() as s:
        s["n"] = n
        s["alpha"] = alpha
    d.message("info", f"heat: {n}x{n} grid, stability limit dt <= {dt_max:.4e}")

    u = np.zeros((n, n))
    t, step, residual = 0.0, 0, float("inf")
    converged = False
    pace = Pace(args.rate)
    max_steps = args.steps if args.steps is not None else sys.maxsize

    with d.serve() as serving:
        if args.start_paused:
            print(
                f"{args.name}: paused before step 0; resume it with "
                f"`idict resume {args.name}` or the inspector",
                file=sys.stderr,
            )
        # wait(): the pause gate and steering; False once terminated.
        while step < max_steps and d.wait():
            pace.tick()
            with d.lock() as s:
                dt = float(s["dt"])
                source = float(s["source"])
            inner = u[1:-1, 1:-1]
            lap = (u[1:-1, :-2] + u[1:-1, 2:] + u[:-2, 1:-1] + u[2:, 1:-1] - 4.0 * inner) / (h * h)
            rate = alpha * lap + source * g_in
            inner += dt * rate  # in place: rate was computed from the old u
            residual = float(np.abs(rate).max())
            t += dt
            step += 1
            energy = float(u.sum() * h * h)
            with d.lock() as s:
                s["step"] = step
                s["t"] = t
                s["residual"] = residual
                s["energy"] = energy
                s["max_u"] = float(u.max())
                s["u"] = u  # copied once here; u goes on changing
            d.notify_update()
            if residual < args.tolerance:
                converged = True
                d.message("info", f"heat: steady after {step} steps (residual {residual:.3e})")
                break
        # Watchers get this, then their streams end; leaving the block
        # serves until they have it (up to close_timeout) and closes.
        d.notify_update(final=True)

    print(
        f"{args.name}: {step} steps, residual {residual:.3e}{', converged' if converged else ''}",
        file=sys.stderr,
    )


if __name__ == "__main__":
    main()
