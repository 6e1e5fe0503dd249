"""What must never happen however Python threads, the GC, signals and odd
inputs interleave with the run: a deadlock between the GIL and the map's
lock, a lock that is never released, a swallowed Ctrl-C, a panic. Each test
names the way it went wrong in a review of the binding."""

import gc
import sys
import threading
import time

import numpy as np
import pytest

import idict

from conftest import TIMEOUT


def run_threads(*targets):
    """Runs each target on a daemon thread; fails (instead of hanging) if one
    has not finished within TIMEOUT, and re-raises the first error."""
    errors = []

    def guarded(f):
        def run():
            try:
                f()
            except BaseException as e:  # reported below
                errors.append(e)

        return run

    threads = [threading.Thread(target=guarded(t), daemon=True) for t in targets]
    for t in threads:
        t.start()
    for t in threads:
        t.join(TIMEOUT)
        assert not t.is_alive(), "a thread is stuck: a deadlock"
    if errors:
        raise errors[0]


@pytest.fixture
def busy_switching():
    """Python switches threads every 10 µs instead of 5 ms, so the
    interleavings below happen many times a second."""
    before = sys.getswitchinterval()
    sys.setswitchinterval(1e-5)
    yield
    sys.setswitchinterval(before)


def test_a_reader_thread_never_deadlocks_with_the_loop(d, busy_switching):
    # A reader that waited for the map (without the GIL) while the loop held
    # lock() used to take the GIL back still holding the map, while the loop,
    # seeing no lock() holder left, took the map with the GIL held.
    stop = threading.Event()
    done = []

    def loop():
        try:
            end = time.monotonic() + 0.5
            i = 0
            while time.monotonic() < end:
                with d.lock() as s:
                    s["x"] = float(i)
                d.notify_update()
                i += 1
            done.append(i)
        finally:
            stop.set()

    def reader():
        while not stop.is_set():
            d.get("x")
            len(d)
            "x" in d

    run_threads(loop, reader, reader)
    assert d["x"] == float(done[0] - 1)


def test_threads_taking_the_lock_in_turn_never_deadlock(d):
    def worker(k):
        def run():
            for i in range(500):
                with d.lock() as s:
                    s[k] = i
                d[k + "-outside"] = i
                d.notify_update()

        return run

    run_threads(worker("a"), worker("b"), worker("c"))
    assert d["a"] == d["b"] == d["c"] == 499


def test_a_lock_finalised_on_another_thread_releases_the_map(d):
    # An unsendable guard dropped on a foreign thread was leaked by PyO3,
    # leaving the map locked for good.
    box = {}

    def take():
        box["lock"] = d.lock()

    run_threads(take)
    lock = box.pop("lock")
    with pytest.raises(RuntimeError, match="thread that took it"):
        lock["x"] = 1
    del lock
    gc.collect()
    d["y"] = 2  # would wait forever if the map were still held
    assert d["y"] == 2


def test_closing_the_server_while_another_thread_reads_it(d):
    serving = d.serve(announce=False, close_timeout=1.0)
    stop = threading.Event()

    def poll():
        while not stop.is_set():
            serving.watchers

    poller = threading.Thread(target=poll, daemon=True)
    poller.start()
    try:
        run_threads(lambda: serving.wait_then_close(1.0))
    finally:
        stop.set()
        poller.join(TIMEOUT)
    assert not poller.is_alive()
    assert d.status.state == "finished"


def test_ctrl_c_in_a_callback_is_raised_by_notify_update(d):
    def cb(_d, _ev):
        raise KeyboardInterrupt

    d.callbacks.add(cb)
    d["x"] = 1.0
    with pytest.raises(KeyboardInterrupt):
        d.notify_update()
    # The update itself was published, and the next one is clean.
    assert d.version == 1
    d.callbacks.remove(1)


def test_a_callback_must_be_callable(d):
    with pytest.raises(TypeError, match="callable"):
        d.callbacks.add(42)


@pytest.mark.parametrize(
    "call",
    [
        lambda d: d.wait(1e300),
        lambda d: d.wait(-1.0),
        lambda d: d.wait(float("nan")),
        lambda d: d.serve(announce=False, close_timeout=1e300),
    ],
)
def test_out_of_range_seconds_are_value_errors_not_panics(d, call):
    with pytest.raises(ValueError, match="seconds"):
        call(d)
    assert d.status.state == "running"


def test_bool_arrays_holding_other_bytes_are_stored_as_0_or_1(d):
    raw = np.array([0, 1, 2, 255], dtype=np.uint8).view(np.bool_)
    d["m"] = raw
    back = d["m"]
    assert back.dtype == np.bool_
    assert back.view(np.uint8).tolist() == [0, 1, 1, 1]


def test_locked_is_a_full_mutable_mapping(d):
    with d.lock() as s:
        s.update({"a": 1}, b=2)
        s.update([("c", 3)])
        assert s.setdefault("a", 9) == 1
        assert s.setdefault("z", 26) == 26
        assert s == {"a": 1, "b": 2, "c": 3, "z": 26}
        key, value = s.popitem()
        assert (key, value) == ("z", 26)
        assert "z" not in s


def test_one_watch_read_from_two_threads_says_so(run, serving, d):
    d["x"] = 1.0
    d.notify_update()
    w = run.watch()
    next(w)  # the first state
    errors = []

    def second():
        try:
            next(w)
        except RuntimeError as e:
            errors.append(e)

    blocked = threading.Thread(target=lambda: next(w), daemon=True)
    blocked.start()
    threading.Event().wait(0.2)  # let it take the stream and block
    run_threads(second)
    assert errors and "another thread" in str(errors[0])
    d["x"] = 2.0
    d.notify_update()
    blocked.join(TIMEOUT)
    assert not blocked.is_alive()
    w.close()
