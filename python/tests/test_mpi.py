"""An MPI job in Python (mpi4py), under a real mpirun: one run for the
job, every rank held, stepped and steered at the same step, terminated
with mpirun exiting 0. Needs idict built with MPI
(MATURIN_PEP517_ARGS="--features mpi" pip install ./python), mpi4py and
Open MPI's mpirun; left out without them, unless IDICT_TESTS_REQUIRE_MPI
is set (as .ci/run's MPI step sets it)."""

import os
import pathlib
import re
import shutil
import subprocess
import sys
import time

import pytest

import idict

HEAT = pathlib.Path(__file__).resolve().parents[2] / "examples" / "python" / "heat_mpi.py"


def _built_with_mpi():
    try:
        idict.IDict("probe", comm=object())
    except NotImplementedError:
        return False
    except ValueError:
        return True
    return True


def _has_mpi4py():
    try:
        import mpi4py  # noqa: F401
    except ImportError:
        return False
    return True


_WHY = [
    why
    for ok, why in [
        (_built_with_mpi(), "idict was built without MPI"),
        (_has_mpi4py(), "mpi4py is not installed"),
        (shutil.which("mpirun") is not None, "mpirun (Open MPI) is not installed"),
    ]
    if not ok
]
if _WHY and os.environ.get("IDICT_TESTS_REQUIRE_MPI"):
    raise RuntimeError("the MPI tests cannot run: " + "; ".join(_WHY))
pytestmark = pytest.mark.skipif(bool(_WHY), reason="; ".join(_WHY))


def _until(what, pred, timeout=60.0):
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if pred():
            return
        time.sleep(0.02)
    raise AssertionError(f"timed out waiting for {what}")


def test_a_python_mpi_job_is_one_run_held_steered_and_ended(tmp_path):
    cmd = ["mpirun", "--oversubscribe", "-n", "4"]
    if os.geteuid() == 0:
        cmd.append("--allow-run-as-root")
    cmd += [sys.executable, str(HEAT), "--n", "32", "--rate", "200"]
    env = dict(os.environ, IDICT_RUNS_DIR=str(tmp_path))
    job = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        _until("rank 0's run file", lambda: any(tmp_path.glob("*.json")))
        run = idict.connect(str(next(tmp_path.glob("*.json"))))
        _until("a few steps", lambda: run.info().status.step > 5)
        # One run of 4 ranks, its keys reduced: rows is the 30 interior rows.
        assert run.info().ranks == 4
        assert run.snapshot("rows")["rows"] == 30
        at = run.info().status.step + 40
        run.pause(at_step=at)
        _until("the hold", lambda: run.info().status.held)
        snap = run.snapshot("step")
        assert list(snap["step@ranks"]) == [at] * 4, "every rank at the step"
        # A write while held reaches every rank at the next step.
        dt = float(snap_dt(run))
        run.set("dt", dt / 2)
        run.step(1)
        _until("one step on", lambda: run.info().status.step == at + 1 and run.info().status.held)
        assert list(run.snapshot("dt")["dt@ranks"]) == [dt / 2] * 4
        run.terminate()
        out, err = job.communicate(timeout=60)
    finally:
        if job.poll() is None:
            job.kill()
            job.wait()
    assert job.returncode == 0, err
    # mpirun forwards the ranks' lines as they come: two may share a line.
    ended = sorted(re.findall(r"rank (\d+): ended at step (\d+)", out))
    assert ended == [(str(r), str(at + 1)) for r in range(4)], out


def snap_dt(run):
    return run.snapshot("dt")["dt"]
