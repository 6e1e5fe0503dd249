"""Fixtures for the idict Python tests.

Everything runs against the real extension and real servers on 127.0.0.1:
no mocks. Each test gets its own runs directory (``$IDICT_RUNS_DIR``, read
by the extension at call time), a fresh ``IDict`` with a unique name, and,
when it asks for them, the served run and a controller connection to it.

Nothing here may hang pytest: every thread is a daemon, every join has a
timeout, and every poll has a deadline.
"""

import os
import re
import threading
import time
import uuid

import pytest

import idict

#: Generous bound for anything that should take milliseconds.
TIMEOUT = 5.0


@pytest.fixture(autouse=True)
def runs_dir(tmp_path, monkeypatch):
    """A private runs directory for this test; no token or address from the
    environment leaks in."""
    d = tmp_path / "runs"
    d.mkdir(mode=0o700)
    os.chmod(d, 0o700)
    monkeypatch.setenv("IDICT_RUNS_DIR", str(d))
    monkeypatch.delenv("IDICT_TOKEN", raising=False)
    monkeypatch.delenv("IDICT_ADDR", raising=False)
    return d


@pytest.fixture
def name(request):
    """A run name unique to this test."""
    base = re.sub(r"[^A-Za-z0-9_-]+", "-", request.node.name).strip("-")[:40]
    return f"{base}-{uuid.uuid4().hex[:6]}"


@pytest.fixture
def d(name):
    return idict.IDict(name)


@pytest.fixture
def serving(d):
    """``d`` served (run file in the test's runs directory)."""
    with d.serve(announce=False, close_timeout=2.0) as s:
        yield s


@pytest.fixture
def run(serving):
    """A controller connection to the served ``d``."""
    r = idict.connect(serving.address, token=serving.controller_token)
    try:
        yield r
    finally:
        r.close()


def _eventually(pred, timeout=TIMEOUT, interval=0.002):
    """Polls ``pred`` until it is true or ``timeout`` passes; returns its
    last answer."""
    deadline = time.monotonic() + timeout
    while True:
        ok = pred()
        if ok or time.monotonic() >= deadline:
            return ok
        time.sleep(interval)


@pytest.fixture
def eventually():
    return _eventually


class Collector:
    """Reads a watch on a daemon thread until it ends, keeping every update."""

    def __init__(self, run, **watch_args):
        self.updates = []
        self.error = None
        self.first = threading.Event()
        self.watch = run.watch(**watch_args)
        self.thread = threading.Thread(target=self._loop, daemon=True)
        self.thread.start()

    def _loop(self):
        try:
            for u in self.watch:
                self.updates.append(u)
                self.first.set()
        except BaseException as e:  # kept for the test to look at
            self.error = e
        finally:
            self.first.set()

    def ready(self, timeout=TIMEOUT):
        """Waits for the first update (the watch is attached)."""
        assert self.first.wait(timeout), "no first update from the watch"
        assert self.error is None, f"watch failed: {self.error!r}"
        return self.updates[0]

    def join(self, timeout=TIMEOUT):
        """Waits for the watch to end (after the last update)."""
        self.thread.join(timeout)
        assert not self.thread.is_alive(), "the watch did not end"
        return self.updates

    def close(self):
        """Stops watching. A thread blocked in the watch may only end when
        the next update comes (the run's end at the latest), so this does not
        wait long for it."""
        try:
            self.watch.close()
        except Exception:
            pass
        self.thread.join(0.2)


@pytest.fixture
def collect():
    """``collect(run, **watch_args)`` starts a Collector; closed at teardown."""
    made = []

    def start(run, **watch_args):
        c = Collector(run, **watch_args)
        made.append(c)
        return c

    yield start
    for c in made:
        c.close()


class Waiter:
    """A thread looping ``d.wait()`` the way a computation does, counting the
    calls that passed, until one returns something other than True (or it
    has passed ``limit`` times, so a broken gate cannot spin forever)."""

    def __init__(self, d, limit=1000, timeout=None):
        self.d = d
        self.limit = limit
        self.timeout = timeout
        self.passed = 0
        self.results = []
        self.error = None
        self.thread = threading.Thread(target=self._loop, daemon=True)
        self.thread.start()

    def _loop(self):
        try:
            while self.passed < self.limit:
                if self.timeout is None:
                    r = self.d.wait()
                else:
                    r = self.d.wait(timeout=self.timeout)
                self.results.append(r)
                if r is not True:
                    break
                self.passed += 1
        except BaseException as e:
            self.error = e

    def join(self, timeout=TIMEOUT):
        self.thread.join(timeout)
        assert not self.thread.is_alive(), "wait() did not return"
        assert self.error is None, f"wait() raised {self.error!r}"


@pytest.fixture
def waiter():
    return Waiter


def held(d):
    return d.status.held


@pytest.fixture
def is_held():
    return held
