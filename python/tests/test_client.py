"""Over the wire: what a client sees, steering, tokens, the end of a run,
and finding runs."""

import os
import threading
import time

import numpy as np
import pytest

import idict

#: Generous bound for anything that should take milliseconds.
TIMEOUT = 5.0


# --- publishing, seen from a client -----------------------------------------


def test_nothing_is_visible_until_notify_update(d, run):
    d["a"] = 1
    d.notify_update()
    assert run.snapshot() == {"a": 1}

    with d.lock() as s:
        s["a"] = 10
        s["b"] = 2
    d["c"] = "set outside the lock"
    snap = run.snapshot()
    assert snap == {"a": 1}, "a client saw values before notify_update()"

    d.notify_update()
    assert run.snapshot() == {"a": 10, "b": 2, "c": "set outside the lock"}

    del d["a"]
    assert "a" in run.snapshot()
    d.notify_update()
    assert "a" not in run.snapshot()


def test_snapshot_prefix(d, run):
    with d.lock() as s:
        s["loss/train"] = 1.0
        s["loss/test"] = 2.0
        s["step"] = 3
    d.notify_update()
    assert run.snapshot("loss/") == {"loss/train": 1.0, "loss/test": 2.0}


def test_final_update_ends_the_watch(d, run, collect):
    d["x"] = -1
    d["gone"] = 0
    d.notify_update()
    c = collect(run)
    first = c.ready()
    assert first.reset
    assert first.values == {"x": -1, "gone": 0}
    assert not first.last

    versions = []
    for i in range(3):
        d["x"] = i
        if i == 1:
            del d["gone"]
        versions.append(d.notify_update())
    vfinal = d.notify_update(final=True)
    updates = c.join()  # the for loop over the watch ended by itself

    assert updates[-1].last is True
    assert not any(u.last for u in updates[:-1])
    assert updates[-1].version == vfinal
    assert updates[-1].status.state == "finished"
    vs = [u.version for u in updates]
    assert vs == sorted(vs)
    # Assembling the updates gives the published state.
    state = {}
    for u in updates:
        if u.reset:
            state = {}
        state.update(u.values)
        for k in u.removed:
            state.pop(k, None)
    assert state == {"x": 2}
    assert any("gone" in u.removed for u in updates)
    # Every sample of x arrived, in order.
    xs = [v for u in updates if "x" in u.samples for v in u.samples["x"].values.tolist()]
    assert xs[-3:] == [0.0, 1.0, 2.0]


def test_watch_samples_are_contiguous(d, run, collect):
    c = collect(run)
    c.ready()
    n = 2000
    for i in range(n):
        d["x"] = float(i)
        d.notify_update()
    d.notify_update(final=True)
    updates = c.join()
    versions = np.concatenate(
        [u.samples["x"].versions for u in updates if "x" in u.samples]
    )
    values = np.concatenate([u.samples["x"].values for u in updates if "x" in u.samples])
    assert len(values) == n
    assert np.array_equal(values, np.arange(n, dtype=np.float64))
    assert np.all(np.diff(versions) == 1)


def test_a_late_watcher_is_told_where_the_history_was_thinned(name):
    # 64 samples a key, nothing more for watchers that lag.
    d = idict.IDict(name, history_budget=64 * 32, pinned_history=0)
    n = 5000
    for i in range(n):
        d["x"] = float(i)
        d.notify_update()
    with d.serve(announce=False, close_timeout=2.0) as s:
        r = idict.connect(s.address, token=s.observer_token)
        try:
            w = r.watch(history=True)
            first = next(w)
            w.close()
        finally:
            r.close()
    got = first.samples["x"].versions
    reports = [t for t in first.thinned if t.key == "x"]
    assert reports, "a thinned history must say so"
    assert len(got) + sum(t.dropped for t in reports) == n
    assert "samples not sent" in repr(reports[0])


# --- steering ---------------------------------------------------------------


@pytest.fixture
def steerable(d):
    d.writable("dt", 1e-5, min=0.0, max=6e-5, doc="time step")
    d["not_steerable"] = 1.0
    d.notify_update()
    return d


def test_a_write_is_applied_at_the_next_wait(steerable, run):
    d = steerable
    receipt = run.set("dt", 2e-5)
    assert isinstance(receipt.write_id, int)
    assert receipt.applied_version is None
    assert d["dt"] == 1e-5, "the write landed before wait()"
    assert d.wait() is True
    assert d["dt"] == 2e-5
    v = d.notify_update()
    assert run.snapshot()["dt"] == 2e-5
    assert d.history("dt").values[-1] == 2e-5
    assert d.history("dt").versions[-1] == v


def test_sync_applies_writes_and_reports_them(steerable, run, serving):
    d = steerable
    receipt = run.set("dt", 3e-5)
    applied = d.sync()
    assert len(applied) == 1
    w = applied[0]
    assert w.key == "dt" and w.value == 3e-5
    assert w.write_id == receipt.write_id
    assert isinstance(w.origin, str)
    assert d["dt"] == 3e-5
    assert d.sync() == []


def test_an_out_of_bounds_write_is_refused(steerable, run):
    d = steerable
    with pytest.raises(idict.InvalidArgument) as e:
        run.set("dt", 1.0)
    assert "dt" in str(e.value)
    with pytest.raises(idict.InvalidArgument):
        run.set("dt", -1e-6)
    with pytest.raises(idict.InvalidArgument):
        run.set("dt", "fast")  # wrong type
    assert d.wait() is True
    assert d["dt"] == 1e-5
    run.set("dt", 6e-5)  # bounds are inclusive
    assert d.wait() is True
    assert d["dt"] == 6e-5


def test_a_non_writable_key_is_refused(steerable, run):
    d = steerable
    with pytest.raises(idict.ClientError) as e:
        run.set("not_steerable", 2.0)
    assert "not_steerable" in str(e.value)
    with pytest.raises(idict.ClientError) as e:
        run.set("no_such_key", 2.0)
    assert "no_such_key" in str(e.value)
    assert d.wait() is True
    assert d["not_steerable"] == 1.0
    assert "no_such_key" not in d


def test_an_observer_cannot_steer(steerable, serving):
    d = steerable
    with idict.connect(serving.address, token=serving.observer_token) as obs:
        assert obs.snapshot()["dt"] == 1e-5
        assert obs.info().role == "observer"
        with pytest.raises(idict.PermissionDenied):
            obs.set("dt", 2e-5)
        with pytest.raises(idict.PermissionDenied):
            obs.pause()
        with pytest.raises(idict.PermissionDenied):
            obs.terminate()
    assert d.status.state == "running"
    assert d.wait() is True
    assert d["dt"] == 1e-5


def test_a_wrong_token_is_unauthenticated(d, serving):
    with pytest.raises(idict.Unauthenticated):
        r = idict.connect(serving.address, token="not-the-token")
        r.snapshot()


def test_set_wait_returns_the_applied_version(steerable, run):
    d = steerable
    stop = threading.Event()
    errors = []

    def loop():
        try:
            deadline = time.monotonic() + 2 * TIMEOUT
            while not stop.is_set() and time.monotonic() < deadline:
                d.wait(timeout=0.5)
                d.notify_update()
                time.sleep(0.001)
        except BaseException as e:
            errors.append(e)

    t = threading.Thread(target=loop, daemon=True)
    t.start()
    try:
        receipt = run.set("dt", 3e-5, wait=True, timeout=TIMEOUT)
    finally:
        stop.set()
        t.join(TIMEOUT)
    assert not t.is_alive()
    assert errors == []
    assert receipt.applied_version is not None
    assert receipt.applied_version <= d.version
    assert d["dt"] == 3e-5
    h = d.history("dt")
    at = h.values[h.versions == receipt.applied_version]
    assert at.tolist() == [3e-5]


def test_applied_writes_show_in_the_next_update(steerable, run, collect):
    d = steerable
    c = collect(run)
    c.ready()
    receipt = run.set("dt", 4e-5)
    assert d.wait() is True
    d.notify_update(final=True)
    applied = [w for u in c.join() for w in u.applied]
    assert [(w.key, w.value, w.write_id) for w in applied] == [
        ("dt", 4e-5, receipt.write_id)
    ]


def test_info_describes_the_run_and_its_keys(steerable, run):
    d = steerable
    with d.lock() as s:
        s["u"] = np.zeros((2, 3))
    v = d.notify_update()
    info = run.info()
    assert info.name == d.name
    assert info.pid == os.getpid()
    assert info.version == v
    assert info.status.state == "running"
    assert info.role == "controller"
    keys = {k.name: k for k in info.keys}
    assert keys["dt"].writable and keys["dt"].kind == "float"
    assert keys["dt"].min == 0.0 and keys["dt"].max == 6e-5
    assert keys["dt"].doc == "time step"
    assert not keys["not_steerable"].writable
    assert keys["u"].kind == "array" and keys["u"].dtype == "f64"
    assert tuple(keys["u"].shape) == (2, 3)


def test_a_live_run_refuses_to_seek_and_is_no_replay(d, run):
    d.notify_update()
    info = run.info()
    assert info.replay_of is None and info.replay is None
    with pytest.raises(idict.FailedPrecondition, match="replay"):
        run.seek(version=1)
    with pytest.raises(idict.InvalidArgument, match="one of"):
        run.seek()
    with pytest.raises(idict.InvalidArgument, match="finite"):
        run.seek(time=float("nan"))


# --- the end of a run -------------------------------------------------------


class Boom(Exception):
    pass


def test_an_exception_in_the_serve_block_fails_the_run(d, collect):
    r = None
    with pytest.raises(Boom):
        with d.serve(announce=False, close_timeout=TIMEOUT) as s:
            r = idict.connect(s.address, token=s.observer_token)
            c = collect(r)
            c.ready()
            d["x"] = 1
            d.notify_update()
            raise Boom("the solver diverged at step 42")
    assert d.status.state == "failed"
    assert "the solver diverged at step 42" in d.status.message
    updates = c.join()
    assert c.error is None, f"the watch broke instead of ending: {c.error!r}"
    last = updates[-1]
    assert last.last
    assert last.status.state == "failed"
    assert "the solver diverged at step 42" in last.status.message
    r.close()


def test_leaving_the_serve_block_finishes_the_run(d, collect):
    with d.serve(announce=False, close_timeout=TIMEOUT) as s:
        r = idict.connect(s.address, token=s.observer_token)
        c = collect(r)
        c.ready()
        d["x"] = 1
        d.notify_update()
    updates = c.join()
    assert updates[-1].last
    assert updates[-1].status.state == "finished"
    assert d.status.state == "finished"
    r.close()


def test_wait_then_close_finishes_the_run(d, collect):
    s = d.serve(announce=False)
    r = idict.connect(s.address, token=s.observer_token)
    c = collect(r)
    c.ready()
    d["x"] = 1
    d.notify_update()
    s.wait_then_close(timeout=TIMEOUT)
    updates = c.join()
    assert updates[-1].last and updates[-1].status.state == "finished"
    r.close()


# --- finding runs -----------------------------------------------------------


def test_runs_lists_the_served_run_until_it_closes(d, runs_dir):
    with d.serve(announce=False, close_timeout=1.0) as s:
        assert s.address.startswith("http://127.0.0.1:")
        assert s.observer_token and s.controller_token
        assert s.observer_token != s.controller_token
        mine = [e for e in idict.runs() if e.name == d.name]
        assert len(mine) == 1
        e = mine[0]
        assert e.pid == os.getpid()
        assert e.address == s.address
        assert e.run_file == s.run_file
        assert os.path.realpath(os.path.dirname(e.run_file)) == os.path.realpath(runs_dir)
        assert os.path.exists(s.run_file)
        run_file = s.run_file
    assert not os.path.exists(run_file)
    assert [e for e in idict.runs() if e.name == d.name] == []


def test_serve_without_a_run_file(d):
    with d.serve(announce=False, run_file=False, close_timeout=1.0) as s:
        assert s.run_file is None
        assert [e for e in idict.runs() if e.name == d.name] == []
        with idict.connect(s.address, token=s.observer_token) as r:
            assert r.snapshot() == {}


@pytest.mark.parametrize("how", ["name", "pid", "address", "address+token", "run_file"])
def test_connect(d, serving, how):
    d["x"] = 7
    d.notify_update()
    target, token = {
        "name": (d.name, None),
        "pid": (str(os.getpid()), None),
        "address": (serving.address, None),  # its run file lends the token
        "address+token": (serving.address, serving.controller_token),
        "run_file": (serving.run_file, None),
    }[how]
    with idict.connect(target, token=token) as r:
        assert r.name == d.name
        assert r.address == serving.address
        assert r.snapshot() == {"x": 7}
        assert r.pause().state == "paused"  # a controller: the run file's token
        assert r.resume().state == "running"


def test_connect_to_an_unknown_run_raises_not_found():
    with pytest.raises(idict.NotFound):
        idict.connect("nope")


def test_serving_counts_watchers(d, serving, run, collect, eventually):
    assert serving.watchers == 0
    c = collect(run)
    c.ready()
    assert eventually(lambda: serving.watchers == 1)
    d.notify_update(final=True)
    c.join()
    assert eventually(lambda: serving.watchers == 0)


def test_a_closed_watch_stops(d, serving, run, eventually):
    w = run.watch()
    assert next(w).reset
    assert eventually(lambda: serving.watchers == 1)
    w.close()
    with pytest.raises(StopIteration):
        next(w)
    assert eventually(lambda: serving.watchers == 0)


def test_closing_a_watch_from_another_thread_ends_its_iteration(d, serving, run, collect, eventually):
    """A watch being read on one thread is closed from another (say a GUI's):
    the iteration ends, before any further update, and the watcher is gone."""
    c = collect(run)
    c.ready()
    c.watch.close()
    c.thread.join(2.0)
    assert not c.thread.is_alive(), "the blocked iteration did not end on close()"
    assert eventually(lambda: serving.watchers == 0)
    d["x"] = 1
    d.notify_update()
    time.sleep(0.05)  # bounded: a closed watch must not take this update
    assert len(c.updates) == 1


def test_pause_and_terminate_at_a_step(d, run, waiter, eventually):
    """pause(at_step=N) holds the loop when it has done exactly N steps; a
    step already past raises FailedPrecondition; terminate(at_step=M) ends
    it when it has done M."""
    st = run.pause(at_step=40)
    assert st.pause_at == 40
    w = waiter(d, limit=10_000)
    assert eventually(lambda: d.status.held)
    assert w.passed == 40 and d.status.step == 40
    with pytest.raises(idict.FailedPrecondition, match="step 39 is past"):
        run.pause(at_step=39)
    assert run.terminate(at_step=45).terminate_at == 45
    run.resume()
    w.join()
    assert w.passed == 45
    assert w.results[-1] is False


# --- triggers ---------------------------------------------------------------


def test_a_trigger_from_a_client_pauses_the_loop_at_the_nan(d, run, serving, eventually):
    """Added over the wire by a controller (not an observer), a NaN trigger
    holds the loop at the step that published the NaN; the firing is a
    message with its values, and info lists it."""
    with idict.connect(serving.address, token=serving.observer_token) as obs:
        with pytest.raises(idict.PermissionDenied):
            obs.add_trigger("nan", "isnan(residual)", pause=True)
    with pytest.raises(idict.InvalidArgument, match="at column 19: the condition ends too soon"):
        run.add_trigger("bad", "isnan(residual) ||", pause=True)
    notes = run.add_trigger("nan", "isnan(residual)", pause=True, message="blew up")
    assert notes == ["the run has no key 'residual' yet: the trigger waits for it"]
    steps = 0
    while d.wait():
        steps += 1
        d["residual"] = float("nan") if steps == 25 else 1.0 / steps
        d.notify_update()
        if steps == 25:
            break
    assert d.status.state == "paused", "held before another step"
    info = run.info()
    (t,) = info.triggers
    assert (t.name, t.pause, t.fired, t.last_fired_version) == ("nan", True, 1, 25)
    w = run.watch()
    first = next(iter(w))
    w.close()
    firings = [m for m in first.messages if m.trigger is not None]
    assert len(firings) == 1
    f = firings[0].trigger
    assert (f.name, f.version) == ("nan", 25)
    assert np.isnan(f.values["residual"])
    assert "blew up" in firings[0].text
    run.remove_trigger("nan")
    with pytest.raises(idict.NotFound):
        run.remove_trigger("nan")
    assert run.info().triggers == []
