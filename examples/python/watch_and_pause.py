#!/usr/bin/env python3
"""A short idict client in Python: watch a run, print updates, pause and resume it.

It talks to the run with stubs generated from proto/idict/v1/inspector.proto
(made on first use with grpc_tools; only grpcio and grpcio-tools are needed).

    python watch_and_pause.py lorenz            # a run name, found in the runs directory
    python watch_and_pause.py --addr 127.0.0.1:50051 --token TOKEN
    python watch_and_pause.py lorenz --terminate  # and end the run afterwards
"""

import argparse
import glob
import hashlib
import json
import os
import struct
import sys
import tempfile
from pathlib import Path

import grpc

HERE = Path(__file__).resolve().parent
PROTO_ROOT = HERE.parent.parent / "proto"


def load_stubs():
    """Generates the Python stubs from the .proto (once per version of it) and imports them."""
    proto = PROTO_ROOT / "idict" / "v1" / "inspector.proto"
    digest = hashlib.sha256(proto.read_bytes()).hexdigest()[:12]
    out = Path(tempfile.gettempdir()) / f"idict-python-stubs-{digest}"
    if not (out / "idict" / "v1" / "inspector_pb2_grpc.py").exists():
        from grpc_tools import protoc

        out.mkdir(parents=True, exist_ok=True)
        code = protoc.main([
            "grpc_tools.protoc",
            f"-I{PROTO_ROOT}",
            f"--python_out={out}",
            f"--grpc_python_out={out}",
            "idict/v1/inspector.proto",
        ])
        if code != 0:
            sys.exit(f"could not generate stubs from {PROTO_ROOT}")
    sys.path.insert(0, str(out))
    from idict.v1 import inspector_pb2, inspector_pb2_grpc

    return inspector_pb2, inspector_pb2_grpc


def runs_dir():
    d = os.environ.get("IDICT_RUNS_DIR")
    if d:
        return Path(d)
    base = os.environ.get("XDG_DATA_HOME") or str(Path.home() / ".local" / "share")
    return Path(base) / "idict" / "runs"


def find_run(name):
    """The address and controller token of a live local run called `name`."""
    for path in sorted(glob.glob(str(runs_dir() / "*.json"))):
        with open(path) as f:
            run = json.load(f)
        if run.get("name") == name or str(run.get("pid")) == name:
            address = run["address"].removeprefix("http://")
            return address, run["controller_token"]
    sys.exit(f"no run named {name!r} in {runs_dir()}")


def show(value, pb):
    """A short text for an idict.v1.Value."""
    kind = value.WhichOneof("kind")
    if kind == "array_value":
        a = value.array_value
        if a.dtype == pb.DTYPE_F64 and a.data:
            xs = struct.unpack(f"<{len(a.data) // 8}d", a.data)
            return f"f64{list(a.shape)} min {min(xs):.4g} max {max(xs):.4g}"
        return f"array{list(a.shape)}"
    if kind == "float_value":
        return f"{value.float_value:.6g}"
    return str(getattr(value, kind)) if kind else "?"


def changed_entries(update, parts, pb):
    """The (key, value) pairs an update message brings. A value too large
    for one message comes in parts (`update.part`), one per message: its
    encoded bytes, in order; it counts once its last part is in."""
    entries = [(e.key, e.value) for e in update.changed]
    if update.HasField("part"):
        p = update.part
        data = parts.setdefault(p.key, bytearray())
        data += p.data
        if len(data) == p.total:
            value = pb.Value()
            value.ParseFromString(bytes(parts.pop(p.key)))
            entries.append((p.key, value))
    return entries


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run", nargs="?", help="a run name or pid")
    parser.add_argument("--addr", default=os.environ.get("IDICT_ADDR"))
    parser.add_argument("--token", default=os.environ.get("IDICT_TOKEN"))
    parser.add_argument("--updates", type=int, default=5, help="updates to print")
    parser.add_argument("--terminate", action="store_true", help="terminate the run at the end")
    args = parser.parse_args()

    pb, rpc = load_stubs()
    if args.addr:
        address, token = args.addr.removeprefix("http://"), args.token
    elif args.run:
        address, token = find_run(args.run)
    else:
        parser.error("give a RUN or --addr")
    metadata = [("authorization", f"Bearer {token}")]
    stub = rpc.InspectorStub(grpc.insecure_channel(address))

    info = stub.GetInfo(pb.GetInfoRequest(), metadata=metadata)
    print(f"{info.name} (pid {info.pid}) version {info.version}, "
          f"{len(info.keys)} keys, status {pb.RunState.Name(info.status.state)}")

    # Watch: first the full state, then one update per delivery. An update
    # may span several messages (`more`): a large state goes in chunks, a
    # large value in parts.
    stream = stub.Watch(pb.WatchRequest(), metadata=metadata)
    entries, parts, kind, printed = [], {}, None, 0
    for update in stream:
        entries += changed_entries(update, parts, pb)
        kind = kind or ("state" if update.reset else "update")
        if update.more:
            continue
        changed = ", ".join(f"{k}={show(v, pb)}" for k, v in sorted(entries, key=lambda e: e[0]))
        print(f"{kind} v{update.version}: {changed}")
        entries, kind, printed = [], None, printed + 1
        if printed >= args.updates:
            stream.cancel()
            break

    reply = stub.Control(pb.ControlRequest(action=pb.ACTION_PAUSE), metadata=metadata)
    print("pause ->", pb.RunState.Name(reply.status.state))
    assert reply.status.state == pb.RUN_STATE_PAUSED
    reply = stub.Control(pb.ControlRequest(action=pb.ACTION_RESUME), metadata=metadata)
    print("resume ->", pb.RunState.Name(reply.status.state))
    assert reply.status.state == pb.RUN_STATE_RUNNING

    if args.terminate:
        reply = stub.Control(pb.ControlRequest(action=pb.ACTION_TERMINATE), metadata=metadata)
        print("terminate ->", pb.RunState.Name(reply.status.state))


if __name__ == "__main__":
    main()
