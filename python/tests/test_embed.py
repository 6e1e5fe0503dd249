"""The embedding side: the working map and its lock, publishing, the pause
gate, callbacks, messages, history, checkpoints and Ctrl-C."""

import math
import os
import selectors
import signal
import subprocess
import sys
import textwrap
import threading
import time

import numpy as np
import pytest

import idict

#: Generous bound for anything that should take milliseconds.
TIMEOUT = 5.0


# --- the working map and its lock -------------------------------------------


def test_locked_map_supports_the_mapping_protocol(d):
    with d.lock() as s:
        s["a"] = 1
        s["b"] = 2.5
        s.update({"c": "text", "e": None})
        assert s["a"] == 1
        assert "a" in s and "zz" not in s
        assert len(s) == 4
        assert set(s) == {"a", "b", "c", "e"}
        assert set(s.keys()) == {"a", "b", "c", "e"}
        assert dict(s.items()) == {"a": 1, "b": 2.5, "c": "text", "e": None}
        assert s.get("zz", 7) == 7
        assert s.get("a") == 1
        assert s.pop("b") == 2.5
        assert "b" not in s
        del s["c"]
        with pytest.raises(KeyError):
            s["c"]
        with pytest.raises(KeyError):
            del s["nope"]
    # What the block left is what the dict holds.
    assert d["a"] == 1
    assert d["e"] is None
    assert set(d) == {"a", "e"}
    assert set(d.keys()) == {"a", "e"}
    assert len(d) == 2


def test_dict_items_outside_the_lock(d):
    d["x"] = 3
    assert d["x"] == 3
    assert "x" in d
    assert len(d) == 1
    assert list(d) == ["x"]
    assert d.get("x") == 3
    assert d.get("missing") is None
    assert d.get("missing", 9) == 9
    del d["x"]
    assert "x" not in d
    with pytest.raises(KeyError):
        d["x"]
    with pytest.raises(KeyError):
        del d["x"]


def test_locked_view_is_dead_after_release(d):
    with d.lock() as s:
        s["x"] = 1
    with pytest.raises(RuntimeError):
        s["x"]
    with pytest.raises(RuntimeError):
        s["y"] = 2
    with pytest.raises(RuntimeError):
        len(s)
    assert "y" not in d

    s = d.lock()
    s["z"] = 3
    s.release()
    with pytest.raises(RuntimeError):
        s["z"]
    assert d["z"] == 3  # released: the dict is usable again


def test_lock_blocks_other_threads_until_released(d):
    got = []
    with d.lock() as s:
        s["x"] = 1
        t = threading.Thread(target=lambda: got.append(d["x"]), daemon=True)
        t.start()
        t.join(0.1)  # it must be blocked on the lock (with the GIL released)
        assert t.is_alive() and got == []
        s["x"] = 2
    t.join(TIMEOUT)
    assert not t.is_alive()
    assert got == [2]


def test_an_exception_in_the_lock_block_releases_the_lock(d):
    with pytest.raises(ZeroDivisionError):
        with d.lock() as s:
            s["x"] = 1
            1 / 0
    got = []
    t = threading.Thread(target=lambda: got.append(d.get("x")), daemon=True)
    t.start()
    t.join(TIMEOUT)
    assert not t.is_alive(), "the lock stayed held after the with block raised"
    assert got == [1]


def test_notify_update_inside_the_lock_raises_update_error(d):
    with d.lock() as s:
        s["x"] = 1
        with pytest.raises(idict.UpdateError):
            d.notify_update()
    assert d.version == 0
    assert d.notify_update() >= 1


def test_wait_sync_and_writable_inside_the_lock_raise_runtime_error(d):
    with d.lock() as s:
        s["x"] = 1
        with pytest.raises(RuntimeError):
            d.wait()
        with pytest.raises(RuntimeError):
            d.sync()
        with pytest.raises(RuntimeError):
            d.writable("dt", 0.1)
    assert d.wait() is True  # the lock is released and the dict usable


# --- publishing -------------------------------------------------------------


def test_notify_update_returns_increasing_versions(d):
    assert d.version == 0
    versions = []
    for i in range(5):
        d["x"] = i
        versions.append(d.notify_update())
    assert versions[0] >= 1
    assert all(b > a for a, b in zip(versions, versions[1:]))
    assert d.version == versions[-1]


def test_notify_after_final_raises_update_error(d):
    d["x"] = 1
    v = d.notify_update(final=True)
    assert d.version == v
    assert d.status.state == "finished"
    d["x"] = 2
    with pytest.raises(idict.UpdateError):
        d.notify_update()
    with pytest.raises(idict.UpdateError):
        d.notify_update(final=True)
    assert d.version == v


def test_exception_hierarchy():
    assert issubclass(idict.IDictError, Exception)
    for e in (idict.UpdateError, idict.CheckpointError, idict.ServeError, idict.ClientError):
        assert issubclass(e, idict.IDictError)
    for e in (
        idict.NotFound,
        idict.Unauthenticated,
        idict.PermissionDenied,
        idict.InvalidArgument,
        idict.FailedPrecondition,
        idict.ResourceExhausted,
        idict.Disconnected,
    ):
        assert issubclass(e, idict.ClientError)
    assert isinstance(idict.__version__, str) and idict.__version__


# --- the pause gate ---------------------------------------------------------


def test_wait_returns_true_at_once_while_running(d):
    t0 = time.monotonic()
    for _ in range(100):
        assert d.wait() is True
    assert time.monotonic() - t0 < 1.0


def test_wait_with_timeout_returns_none_while_paused(d):
    d.pause()
    t0 = time.monotonic()
    assert d.wait(timeout=0.05) is None
    took = time.monotonic() - t0
    assert 0.04 <= took < 2.0
    assert d.status.state == "paused"
    d.resume()
    assert d.wait(timeout=0.05) is True


def test_start_paused_holds_the_first_wait(name):
    d = idict.IDict(name, start_paused=True)
    assert d.status.state == "paused"
    assert d.wait(timeout=0.05) is None
    d.resume()
    assert d.wait(timeout=1.0) is True


@pytest.mark.parametrize("via", ["local", "wire"])
def test_pause_step_terminate_from_another_thread(d, run, via, waiter, eventually):
    """A thread loops wait(); pause holds it, step(2) lets exactly two waits
    pass, terminate makes wait() return False."""
    ctl = d if via == "local" else run
    st = ctl.pause()
    if via == "wire":
        assert st.state == "paused"
    w = waiter(d)
    assert eventually(lambda: d.status.held), "wait() did not hold while paused"
    assert w.passed == 0

    st = ctl.step(2)
    if via == "wire":
        assert st.state == "paused"
    assert eventually(lambda: w.passed == 2 and d.status.held)
    time.sleep(0.05)  # bounded: a leaky gate would let more through meanwhile
    assert w.passed == 2
    assert d.status.held
    assert d.status.state == "paused"

    ctl.terminate()
    w.join()
    assert w.results[-1] is False
    assert w.passed == 2
    assert d.terminated
    assert d.status.state == "terminating"
    assert d.wait() is False  # irreversible


def test_resume_from_another_thread_releases_wait(d, waiter, eventually):
    d.pause()
    w = waiter(d, limit=3)
    assert eventually(lambda: d.status.held)
    d.resume()
    w.join()
    assert w.passed == 3
    assert d.status.state == "running"


def test_wait_releases_the_gil(d):
    """While the main thread sits in wait() on a paused run, another Python
    thread runs (it counts, then resumes the run)."""
    d.pause()
    n = 200_000
    state = {"count": 0, "saw_held": False}

    def work():
        deadline = time.monotonic() + TIMEOUT
        while not d.status.held and time.monotonic() < deadline:
            time.sleep(0.001)
        state["saw_held"] = d.status.held
        c = 0
        for _ in range(n):
            c += 1
        state["count"] = c
        d.resume()

    t = threading.Thread(target=work, daemon=True)
    t.start()
    r = d.wait(timeout=TIMEOUT)  # None if the other thread never ran
    t.join(TIMEOUT)
    assert not t.is_alive()
    assert state["saw_held"], "the other thread never saw wait() held"
    assert state["count"] == n
    assert r is True


# --- callbacks --------------------------------------------------------------


def test_callback_gets_the_dict_and_the_event(d):
    events = []

    def cb(dd, ev):
        events.append(
            dict(
                is_idict=isinstance(dd, idict.IDict),
                x=dd["x"],
                version=ev.version,
                changed=sorted(ev.changed),
                removed=list(ev.removed),
                final=ev.final,
                time=ev.time,
            )
        )

    cid = d.callbacks.add(cb)
    assert isinstance(cid, int)
    assert len(d.callbacks) == 1
    with d.lock() as s:
        s["x"] = 1
        s["y"] = 2.0
        s["gone"] = 0
    v1 = d.notify_update()
    del d["gone"]
    d["x"] = 5
    v2 = d.notify_update()
    d.notify_update(final=True)
    assert [e["version"] for e in events][:2] == [v1, v2]
    assert events[0]["is_idict"] and events[0]["x"] == 1
    assert events[0]["changed"] == ["gone", "x", "y"]
    assert events[0]["final"] is False
    assert events[1]["changed"] == ["x"] and events[1]["removed"] == ["gone"]
    assert events[1]["x"] == 5
    assert events[-1]["final"] is True
    assert events[0]["time"] >= 0


def test_callback_remove(d):
    seen = []
    cid = d.callbacks.add(lambda dd, ev: seen.append(ev.version))
    v1 = d.notify_update()
    assert d.callbacks.remove(cid) is True
    assert d.callbacks.remove(cid) is False
    assert len(d.callbacks) == 0
    d.notify_update()
    assert seen == [v1]

    cid = d.add_callback(lambda dd, ev: seen.append(-ev.version))
    v3 = d.notify_update()
    assert d.remove_callback(cid) is True
    d.notify_update()
    assert seen == [v1, -v3]


def test_callback_may_log_and_read_the_dict(d, run, collect):
    def cb(dd, ev):
        if "x" in ev.changed:
            dd.message("info", f"x is {dd['x']}")

    d.callbacks.add(cb)
    d["x"] = 42
    d.notify_update()
    first = collect(run).ready()  # late joiners get the recent messages
    assert any(m.text == "x is 42" for m in first.messages)


def test_an_exception_in_a_callback_does_not_break_the_run(d, monkeypatch):
    reported = []
    monkeypatch.setattr(sys, "unraisablehook", lambda u: reported.append(u.exc_value))
    seen = []

    def bad(dd, ev):
        raise ZeroDivisionError("callback bug")

    d.callbacks.add(bad)
    d.callbacks.add(lambda dd, ev: seen.append(ev.version))
    d["x"] = 1
    v1 = d.notify_update()
    d["x"] = 2
    v2 = d.notify_update()
    assert isinstance(v1, int) and v2 > v1
    assert seen == [v1, v2]
    assert d.status.state == "running"
    assert d.wait() is True
    # Not swallowed: reported as an unraisable exception (printed by default).
    assert [type(e) for e in reported] == [ZeroDivisionError, ZeroDivisionError]


# --- messages ---------------------------------------------------------------


def test_messages_reach_watchers(d, run, collect):
    c = collect(run)
    c.ready()
    d.message("info", "hello")
    d.message("error", "bad thing")
    d["x"] = 1
    d.notify_update()
    d.notify_update(final=True)
    updates = c.join()
    msgs = [m for u in updates for m in u.messages]
    hello = [m for m in msgs if m.text == "hello"]
    assert len(hello) == 1
    assert hello[0].level == "info"
    assert isinstance(hello[0].seq, int) and hello[0].time >= 0
    bad = [m for m in msgs if m.text == "bad thing"]
    assert len(bad) == 1 and bad[0].level == "error"
    assert hello[0].seq < bad[0].seq


def test_message_levels_are_accepted(d):
    for level in ("debug", "info", "warn", "warning", "error"):
        d.message(level, f"a {level} message")


# --- history ----------------------------------------------------------------


def test_history_has_what_was_published(d, run, eventually):
    values = [0.5, 0.25, float(np.pi), -3.0, 1e-300]
    versions = []
    for x in values:
        d["r"] = x
        d["other"] = "not a number"
        versions.append(d.notify_update())
    h = d.history("r")
    assert isinstance(h, idict.History)
    assert len(h) == len(values)
    assert h.versions.dtype == np.uint64
    assert h.times.dtype == np.float64
    assert h.values.dtype == np.float64
    assert h.versions.tolist() == versions
    assert h.values.tolist() == values
    assert np.all(np.diff(h.times) >= 0) and h.times[0] >= 0

    v, t, x = d.history("r")  # unpacks
    assert np.array_equal(v, h.versions)
    assert np.array_equal(t, h.times)
    assert np.array_equal(x, h.values)

    assert eventually(lambda: len(run.history("r")) == len(values))
    rh = run.history("r")
    assert np.array_equal(rh.versions, h.versions)
    assert np.array_equal(rh.values, h.values)
    assert np.allclose(rh.times, h.times)


def test_history_of_an_unknown_key_is_none(d):
    d["x"] = 1.0
    d.notify_update()
    assert d.history("nope") is None


def test_client_history_of_an_unknown_key_raises_not_found(d, run):
    d["x"] = 1.0
    d.notify_update()
    with pytest.raises(idict.NotFound):
        run.history("nope")


def test_int_and_bool_scalars_have_history(d):
    for i in range(3):
        d["step"] = i
        d["flag"] = bool(i % 2)
        d.notify_update()
    assert d.history("step").values.tolist() == [0.0, 1.0, 2.0]
    assert d.history("flag").values.tolist() == [0.0, 1.0, 0.0]


# --- checkpoints ------------------------------------------------------------


def test_checkpoint_and_restore(d, tmp_path):
    d.writable("dt", 1e-5, min=0.0, max=6e-5, doc="time step")
    for i in range(4):
        with d.lock() as s:
            s["r"] = 1.0 / (i + 1)
            s["step"] = i
            s["u"] = np.arange(6.0).reshape(2, 3) * i
            s["name"] = "heat"
        d.notify_update()
    path = tmp_path / "run.ckpt"
    v = d.checkpoint(path)
    assert v == d.version
    assert path.exists()

    e = idict.IDict.restore(path)
    assert e.name == d.name
    assert e.version == v
    assert e["r"] == d["r"]
    assert e["step"] == 3
    assert e["name"] == "heat"
    assert e["dt"] == 1e-5
    assert np.array_equal(e["u"], d["u"]) and e["u"].dtype == np.float64
    he, hd = e.history("r"), d.history("r")
    assert np.array_equal(he.versions, hd.versions)
    assert np.array_equal(he.times, hd.times)
    assert np.array_equal(he.values, hd.values)
    # It goes on from there.
    e["r"] = 0.0
    assert e.notify_update() > v

    # str paths work too, and a missing file is a CheckpointError.
    e2 = idict.IDict.restore(str(path), start_paused=True)
    assert e2.status.state == "paused"
    with pytest.raises(idict.CheckpointError):
        idict.IDict.restore(tmp_path / "missing.ckpt")


def test_a_restored_run_keeps_values_and_takes_writable_rules_again(d, tmp_path):
    """Rules of writable keys are code (bounds, checks), not checkpoint data:
    the restored run has the value, and is steerable once it declares the
    key again, as the Rust API documents."""
    d.writable("dt", 1e-5, min=0.0, max=6e-5, doc="time step")
    d["dt"] = 3e-5
    d.notify_update()
    path = tmp_path / "w.ckpt"
    d.checkpoint(path)
    e = idict.IDict.restore(path)
    assert e["dt"] == 3e-5
    with e.serve(announce=False, close_timeout=1.0) as s:
        with idict.connect(s.address, token=s.controller_token) as r:
            info = {k.name: k for k in r.info().keys}
            assert not info["dt"].writable
            with pytest.raises(idict.ClientError):
                r.set("dt", 2e-5)
            e.writable("dt", e["dt"], min=0.0, max=6e-5, doc="time step")
            r.set("dt", 2e-5)
            with pytest.raises(idict.InvalidArgument):
                r.set("dt", 1.0)
        assert e.wait() is True
        assert e["dt"] == 2e-5


# --- Ctrl-C -----------------------------------------------------------------

# Prints "ready" from a second thread once the main thread is held in wait()
# (which needs wait() to release the GIL), then waits for the signal.
HELD_SCRIPT = textwrap.dedent(
    """
    import sys, threading, time
    import idict

    d = idict.IDict("sigint", start_paused=True)
    {setup}

    def announce():
        deadline = time.monotonic() + 10
        while not d.status.held and time.monotonic() < deadline:
            time.sleep(0.002)
        print("ready" if d.status.held else "never held", flush=True)

    threading.Thread(target=announce, daemon=True).start()
    r = d.wait()
    print("wait returned", r, flush=True)
    """
)


def _start_held_child(setup=""):
    proc = subprocess.Popen(
        [sys.executable, "-c", HELD_SCRIPT.format(setup=setup)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=os.environ.copy(),
    )
    sel = selectors.DefaultSelector()
    sel.register(proc.stdout, selectors.EVENT_READ)
    line = ""
    if sel.select(timeout=15):
        line = proc.stdout.readline().strip()
    sel.close()
    if line != "ready":
        proc.kill()
        out, err = proc.communicate(timeout=TIMEOUT)
        pytest.fail(f"child not held in wait(): {line!r} {out!r} {err!r}")
    return proc


def _sigint(proc, what):
    """Sends SIGINT and returns the child's (stdout, stderr); fails the test
    if it has not exited within 5 s."""
    proc.send_signal(signal.SIGINT)
    try:
        return proc.communicate(timeout=5)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.communicate(timeout=TIMEOUT)
        pytest.fail(f"SIGINT did not {what} within 5 s")


def test_ctrl_c_interrupts_a_paused_wait():
    proc = _start_held_child()
    t0 = time.monotonic()
    out, err = _sigint(proc, "interrupt wait()")
    assert time.monotonic() - t0 < 3.0
    assert proc.returncode != 0
    assert "KeyboardInterrupt" in err
    assert "Traceback" in err
    assert "wait returned" not in out


def test_terminate_on_signals_makes_ctrl_c_end_wait():
    proc = _start_held_child(setup="d.terminate_on_signals()")
    out, err = _sigint(proc, "end wait()")
    assert "wait returned False" in out, err
    assert proc.returncode == 0, err
    assert "KeyboardInterrupt" not in err


def test_a_program_declares_a_trigger_that_fires_once_per_crossing(d):
    """IDict.trigger: "energy doubled" fires each time it becomes true, not at
    every update while it stays true; a bad condition says where."""
    import pytest

    with pytest.raises(ValueError, match="at column"):
        d.trigger("bad", "energy >")
    d.trigger("doubled", "energy > 2 * start(energy)", level="info", message="doubled")
    for e in [1.0, 3.0, 3.5, 1.0, 2.5, 0.5, 4.0]:
        d["energy"] = e
        d.notify_update()
    (t,) = d.triggers()
    assert (t.fired, t.last_fired_version, t.from_program, t.level) == (3, 7, True, "info")
    d.remove_trigger("doubled")
    assert d.triggers() == []
    with pytest.raises(KeyError):
        d.remove_trigger("doubled")
