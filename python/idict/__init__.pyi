"""idict: watch and steer a long-running computation.

Embed an :class:`IDict` in a computation and serve it; watch and drive runs
with :func:`connect`. The same Rust core as the ``idict`` CLI and the
``idict-inspector`` desktop app, and the same wire.
"""

from collections.abc import Callable, Iterator, Mapping, MutableMapping
from os import PathLike
from types import TracebackType
from typing import Any, List, Literal, Optional, Union, final

import numpy as np
import numpy.typing as npt

__version__: str

__all__ = [
    "IDict",
    "Locked",
    "Callbacks",
    "Serving",
    "Status",
    "History",
    "AppliedWrite",
    "Message",
    "Firing",
    "Trigger",
    "Thinned",
    "UpdateEvent",
    "connect",
    "runs",
    "Run",
    "Watch",
    "Update",
    "WriteReceipt",
    "RunInfo",
    "ReplayTimeline",
    "KeyInfo",
    "RunEntry",
    "IDictError",
    "UpdateError",
    "CheckpointError",
    "ServeError",
    "ClientError",
    "NotFound",
    "Unauthenticated",
    "PermissionDenied",
    "InvalidArgument",
    "FailedPrecondition",
    "ResourceExhausted",
    "Disconnected",
]

#: What an IDict holds: None, bool, int (i64), float, str, bytes, numpy arrays
#: of float64, float32, int64, int32, uint8 or bool, and lists and dicts
#: (str keys) of these. numpy scalars count as scalars.
_Value = Any
_Level = Literal["debug", "info", "warn", "warning", "error"]

class IDictError(Exception):
    """Base of every idict error."""

class UpdateError(IDictError):
    """notify_update() refused: the run has ended, or this thread holds lock()."""

class CheckpointError(IDictError):
    """A checkpoint could not be written or read."""

class ServeError(IDictError):
    """The run could not be served."""

class ClientError(IDictError):
    """A client call failed."""

class NotFound(ClientError):
    """No such run, or no such key."""

class Unauthenticated(ClientError):
    """The token is missing or wrong."""

class PermissionDenied(ClientError):
    """The token's role may not do this (an observer token cannot steer)."""

class InvalidArgument(ClientError):
    """The run refused a value (wrong type, out of bounds, not writable)."""

class FailedPrecondition(ClientError):
    """Refused in the run's state (pausing a finished run)."""

class ResourceExhausted(ClientError):
    """The run is busy (too many writes or watchers); try again."""

class Disconnected(ClientError):
    """The run cannot be reached, or the connection dropped."""

@final
class Status:
    """A run's status."""

    #: "running", "paused", "terminating", "finished" or "failed".
    state: str
    #: Why it failed (empty otherwise).
    message: str
    #: True while the computation is blocked in wait().
    held: bool
    #: Steps it may still take before holding again (when paused).
    steps_pending: int
    #: Steps done: the wait() calls that let the computation go on.
    step: int
    #: The step a scheduled pause holds at, if any.
    pause_at: Optional[int]
    #: The step a scheduled terminate ends the run at, if any.
    terminate_at: Optional[int]
    #: An MPI job held by rank 0: the ranks not yet at the wait() (the first 32).
    ranks_behind: List[int]

@final
class History:
    """Samples of a scalar key: parallel numpy arrays, oldest first.

    ``versions, times, values = d.history("residual")`` unpacks it.
    """

    versions: npt.NDArray[np.uint64]
    #: Seconds since the run started.
    times: npt.NDArray[np.float64]
    values: npt.NDArray[np.float64]
    def __len__(self) -> int: ...
    def __iter__(self) -> Iterator[np.ndarray]: ...

@final
class AppliedWrite:
    """A client's steering write, applied at wait() or sync()."""

    write_id: int
    key: str
    value: _Value
    #: Who sent it (the client's name).
    origin: str
    #: The version that published it.
    version: int

@final
class Message:
    """A message the run logged; ``trigger`` is set when a trigger's
    firing logged it."""

    seq: int
    level: str
    text: str
    time: float
    version: int
    trigger: Optional[Firing]

@final
class Firing:
    """A trigger's firing: the version it fired at and the values of the
    keys its condition read that made it true."""

    name: str
    condition: str
    version: int
    values: dict[str, float]

@final
class Trigger:
    """A run's trigger and what it has done (``last_fired_version`` 0:
    never fired)."""

    name: str
    condition: str
    pause: bool
    terminate: bool
    checkpoint: bool
    level: str
    message: str
    from_program: bool
    fired: int
    last_fired_version: int

@final
class Thinned:
    """Samples of a key that the run's history thinned before this client
    got them: between the samples at ``after_version`` (0: the start) and
    ``until_version``, ``dropped`` are missing and ``kept`` were sent."""

    key: str
    after_version: int
    until_version: int
    dropped: int
    kept: int

@final
class UpdateEvent:
    """What a callback gets after each published update."""

    version: int
    time: float
    changed: list[str]
    removed: list[str]
    applied: list[AppliedWrite]
    final: bool

@final
class Callbacks:
    """The callbacks of an IDict (``d.callbacks``)."""

    def add(self, f: Callable[[IDict, UpdateEvent], Any]) -> int:
        """Runs ``f(d, event)`` after each update, on the thread that called
        notify_update(), with no lock held. Returns an id for remove()."""
    def remove(self, id: int) -> bool: ...
    def __len__(self) -> int: ...

@final
class Locked(MutableMapping[str, _Value]):
    """Exclusive access to the working map, from ``with d.lock() as s:``.

    Nothing a client sees changes until notify_update(), called after the
    block. Arrays are copied once when set; reading one gives a read-only
    numpy array.
    """

    def __enter__(self) -> Locked: ...
    def __exit__(
        self,
        exc_type: Optional[type[BaseException]],
        exc: Optional[BaseException],
        tb: Optional[TracebackType],
    ) -> None: ...
    def __getitem__(self, key: str, /) -> _Value: ...
    def __setitem__(self, key: str, value: _Value, /) -> None: ...
    def __delitem__(self, key: str, /) -> None: ...
    def __iter__(self) -> Iterator[str]: ...
    def __len__(self) -> int: ...
    def release(self) -> None:
        """Releases the lock (what leaving the with block does)."""

@final
class Serving:
    """A served run (``d.serve()``); a context manager.

    Leaving the with block normally finishes the run if it has not (a final
    update), waits up to ``close_timeout`` seconds for watchers to get it,
    and closes. Leaving it with an exception (KeyboardInterrupt too) marks
    the run Failed with the exception's text first, so clients see why.
    """

    #: Where clients connect: ``http://127.0.0.1:PORT``.
    address: str
    #: Read-only token.
    observer_token: str
    #: Token that may also pause, step, set and terminate.
    controller_token: str
    #: The run file ``idict ls`` reads, or None.
    run_file: Optional[str]
    @property
    def watchers(self) -> int: ...
    def __enter__(self) -> Serving: ...
    def __exit__(
        self,
        exc_type: Optional[type[BaseException]],
        exc: Optional[BaseException],
        tb: Optional[TracebackType],
    ) -> None: ...
    def wait_then_close(self, timeout: float = 10.0) -> None:
        """Finishes the run if unfinished, waits for watchers to get the final
        update (up to ``timeout`` seconds), closes."""
    def close(self) -> None:
        """Closes at once."""

@final
class IDict:
    """The dictionary a computation embeds and serves.

    ``d[key]``, ``d[key] = v``, ``del d[key]``, ``key in d``, ``len(d)`` and
    ``iter(d)`` act on the working map, each taking the lock for itself;
    ``with d.lock() as s:`` holds it for a block.
    """

    def __new__(
        cls,
        name: str,
        *,
        start_paused: bool = False,
        history_budget: Optional[int] = None,
        message_capacity: Optional[int] = None,
        pinned_history: Optional[int] = None,
        comm: Any = None,
    ) -> IDict:
        """A new run called ``name``. ``start_paused``: hold at the first
        wait() until resumed. ``history_budget``: bytes of scalar history
        kept per key (32 bytes a sample). ``pinned_history``: bytes the
        histories together may keep beyond their budgets for watchers that
        lag (default 512 MiB); past it they are told what was thinned.
        ``comm``: an MPI communicator (mpi4py's ``MPI.COMM_WORLD``): this
        rank's part of one run for the whole job (collective; needs an
        idict built with MPI); wait(), notify_update() and serve() are then
        the job's collective calls, rank 0 serving."""
    @staticmethod
    def restore(
        path: Union[str, PathLike[str]],
        *,
        start_paused: bool = False,
        history_budget: Optional[int] = None,
        message_capacity: Optional[int] = None,
        pinned_history: Optional[int] = None,
    ) -> IDict:
        """A run restored from a checkpoint: its name, values, history,
        version and messages; its clock continues. Declare writable keys
        and serve it as usual (their rules are code, not data)."""
    name: str
    callbacks: Callbacks
    #: This process's rank in its MPI job (0 for a run of one process).
    rank: int
    #: The ranks of its MPI job (1 for a run of one process).
    ranks: int
    #: An MPI job: True when this step's update stitches the fields.
    stitching: bool
    def reduce(self, key: str, how: str) -> None:
        """An MPI job: how ``key``'s values on the ranks become the run's:
        'sum', 'min', 'max' or 'mean' (the default); each rank's stays
        readable under ``KEY@ranks``."""
    def field(self, key: str, shape: list[int], offset: list[int], block: list[int]) -> None:
        """An MPI job: this rank's block of a field decomposed over the
        ranks (float64, row-major): the field's shape, the block's offset
        and shape. Rank 0 publishes it whole, stitched only while watched."""
    def set_block(self, key: str, values: npt.NDArray[np.float64]) -> None:
        """An MPI job: this step's values of this rank's block of ``key``
        (C-contiguous), copied only when the update stitches."""
    def lock(self) -> Locked:
        """Exclusive access to the working map: ``with d.lock() as s:``.
        Blocks (releasing the GIL) while another thread holds it."""
    def notify_update(self, final: bool = False) -> int:
        """Publishes what changed since the last notify as one new version
        and returns it; never blocks on clients. ``final=True``: the run
        finished; watchers get this update and their streams end.
        Raises UpdateError once the run has ended, or inside lock()."""
    def wait(self, timeout: Optional[float] = None) -> Optional[bool]:
        """The loop's safe point: applies steering writes, then returns True
        to go on, False once terminated. Blocks (releasing the GIL) while
        paused; Ctrl-C raises KeyboardInterrupt. With ``timeout``, returns
        None if still paused after that many seconds."""
    def sync(self) -> list[AppliedWrite]:
        """Applies queued steering writes now; returns them."""
    def writable(
        self,
        key: str,
        initial: _Value,
        *,
        min: Optional[float] = None,
        max: Optional[float] = None,
        doc: Optional[str] = None,
    ) -> None:
        """Declares ``key`` writable by clients with the type of ``initial``
        (and inclusive bounds for numbers), and sets it."""
    def trigger(
        self,
        name: str,
        condition: str,
        *,
        pause: bool = False,
        terminate: bool = False,
        checkpoint: bool = False,
        level: Optional[_Level] = None,
        message: Optional[str] = None,
    ) -> list[str]:
        """Adds a trigger: when ``condition`` (a CEL expression over the
        run's scalar keys, e.g. ``"isnan(residual)"``) becomes true at an
        update, the run logs it and pauses before another step, terminates
        or checkpoints as asked. Returns notes (a key not there yet).
        ValueError names the column of a bad condition."""
    def remove_trigger(self, name: str) -> None: ...
    def triggers(self) -> list[Trigger]: ...
    def message(self, level: _Level, text: str) -> None:
        """Logs a message every client sees."""
    def add_callback(self, f: Callable[[IDict, UpdateEvent], Any]) -> int: ...
    def remove_callback(self, id: int) -> bool: ...
    def pause(self) -> None: ...
    def resume(self) -> None: ...
    def step(self, n: int = 1) -> None:
        """Lets ``n`` more wait() calls pass, then holds (pauses first)."""
    def terminate(self) -> None:
        """Asks the loop to stop: wait() returns False. Irreversible."""
    def fail(self, message: str) -> None:
        """Marks the run Failed with ``message``."""
    @property
    def terminated(self) -> bool: ...
    @property
    def status(self) -> Status: ...
    @property
    def version(self) -> int:
        """The newest published version (0 before the first update)."""
    def history(self, key: str) -> Optional[History]:
        """The recorded samples of a scalar key, or None."""
    def checkpoint(self, path: Union[str, PathLike[str]]) -> int:
        """Writes the published state to ``path``; returns its version."""
    def serve(
        self,
        *,
        runs_dir: Optional[Union[str, PathLike[str]]] = None,
        observer_token: Optional[str] = None,
        controller_token: Optional[str] = None,
        run_file: bool = True,
        announce: bool = True,
        close_timeout: float = 10.0,
    ) -> Serving:
        """Serves the run over gRPC on 127.0.0.1 (a free port), with fresh
        tokens and a run file so ``idict ls``, the CLI and the inspector
        find it."""
    def terminate_on_signals(self) -> None:
        """SIGTERM (a cancelled batch job) and Ctrl-C terminate the run
        (wait() returns False) instead of raising; a second signal exits."""
    def __getitem__(self, key: str, /) -> _Value: ...
    def __setitem__(self, key: str, value: _Value, /) -> None: ...
    def __delitem__(self, key: str, /) -> None: ...
    def __contains__(self, key: object, /) -> bool: ...
    def __len__(self) -> int: ...
    def __iter__(self) -> Iterator[str]: ...
    def keys(self) -> list[str]: ...
    def get(self, key: str, default: _Value = None) -> _Value: ...

@final
class KeyInfo:
    name: str
    #: "null", "bool", "int", "float", "str", "bytes", "array", "list", "map".
    kind: str
    #: For arrays: "f64", "f32", "i64", "i32", "u8" or "bool".
    dtype: Optional[str]
    shape: Optional[list[int]]
    changed_version: int
    writable: bool
    min: Optional[float]
    max: Optional[float]
    doc: str
    history_len: int

@final
class RunInfo:
    name: str
    pid: int
    host: str
    started_unix_ms: int
    status: Status
    version: int
    keys: list[KeyInfo]
    watchers: int
    updates_per_second: float
    uptime_seconds: float
    pending_writes: int
    #: "observer" or "controller".
    role: Optional[str]
    server_version: str
    #: The recording a replay (``idict replay FILE``) replays.
    replay_of: Optional[str]
    #: A replay's span and marks, to move through with ``Run.seek``.
    replay: Optional[ReplayTimeline]
    #: The processes the run is made of: an MPI job's ranks (1 for one).
    ranks: int
    triggers: list[Trigger]

@final
class ReplayTimeline:
    """What a replayed recording spans, with its recorded control actions
    and applied writes."""

    first_version: int
    last_version: int
    #: Seconds since the recorded run started.
    first_time: float
    last_time: float
    #: ``(version, time, "control" or "write", label)``, by version.
    marks: list[tuple[int, float, str, str]]
    #: The recording ends with the run's final update.
    complete: bool
    #: The recorded run's pid, host and start (Unix ms).
    pid: int
    host: str
    started_unix_ms: int

@final
class Update:
    """One delivered update of a watch (several versions may be coalesced)."""

    version: int
    time: float
    #: The first update: ``values`` is the whole state.
    reset: bool
    #: Changed keys and their new values.
    values: dict[str, _Value]
    removed: list[str]
    #: Every new sample of each scalar key since the previous update.
    samples: dict[str, History]
    status: Status
    messages: list[Message]
    applied: list[AppliedWrite]
    #: The run finished or failed; the iteration ends after this.
    last: bool
    #: Samples thinned before they could be sent: with ``samples``, every
    #: sample published since the watch began, exactly once.
    thinned: list[Thinned]

@final
class Watch(Iterator[Update]):
    """``for u in run.watch(): ...``: blocks (releasing the GIL) for the
    next update; Ctrl-C raises KeyboardInterrupt. The iteration ends after
    the run's last update, or at close() (from any thread); a connection
    lost before the run ended raises Disconnected."""

    def __iter__(self) -> Watch: ...
    def __next__(self) -> Update: ...
    def close(self) -> None: ...

@final
class WriteReceipt:
    write_id: int
    queue_position: int
    #: When ``set(..., wait=True)``: the version that applied it.
    applied_version: Optional[int]

@final
class Run:
    """A connection to one run (from :func:`connect`)."""

    address: str
    name: str
    def info(self) -> RunInfo: ...
    def snapshot(self, prefix: str = "") -> dict[str, _Value]:
        """The run's published values (arrays as read-only numpy arrays)."""
    def watch(self, prefix: str = "", since_version: int = 0, history: bool = False) -> Watch: ...
    def history(self, key: str) -> History:
        """The run's recorded samples of a scalar key; NotFound if it has none."""
    def pause(self, at_step: Optional[int] = None) -> Status:
        """Pauses now, or when the run has done ``at_step`` steps
        (FailedPrecondition when that step is past)."""
    def resume(self) -> Status: ...
    def add_trigger(
        self,
        name: str,
        condition: str,
        *,
        pause: bool = False,
        terminate: bool = False,
        checkpoint: bool = False,
        level: Optional[_Level] = None,
        message: Optional[str] = None,
    ) -> list[str]:
        """Adds a trigger to the run (controller token); see
        ``IDict.trigger``."""
    def remove_trigger(self, name: str) -> None: ...
    def step(self, n: int = 1) -> Status: ...
    def terminate(self, at_step: Optional[int] = None) -> Status:
        """Terminates now, or when the run has done ``at_step`` steps."""
    def seek(self, version: Optional[int] = None, time: Optional[float] = None) -> Status:
        """Moves a replay to a recorded version or time (seconds since the
        run started), forward or back. A live run raises FailedPrecondition."""
    def set(
        self,
        key: str,
        value: _Value,
        wait: bool = False,
        timeout: float = 30.0,
        at_step: Optional[int] = None,
    ) -> WriteReceipt:
        """Asks the run to set a writable key; it applies it at its next
        wait(), or at the wait() after step ``at_step``. ``wait=True``
        returns once applied."""
    def close(self) -> None: ...
    def __enter__(self) -> Run: ...
    def __exit__(self, *exc: object) -> None: ...

@final
class RunEntry:
    """A run on this machine (its run file)."""

    name: str
    pid: int
    host: str
    address: str
    started_unix_ms: int
    run_file: str

def connect(run: str, token: Optional[str] = None, timeout: float = 5.0) -> Run:
    """Connects to a run by name, pid, address (``http://127.0.0.1:PORT``)
    or run file path. The token comes from the run file unless given (or
    ``$IDICT_TOKEN``)."""

def runs() -> list[RunEntry]:
    """The live runs on this machine (from the runs directory)."""
