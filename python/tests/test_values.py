"""Values: every kind round-trips from the embedding side to ``d[k]`` and to
a client's snapshot bit for bit; what cannot be held is refused without
touching the dict; and the Rust CLI's JSON agrees with numpy."""

import json
import math
import os
import struct
import subprocess
from pathlib import Path

import numpy as np
import pytest

import idict

DTYPES = [np.float64, np.float32, np.int64, np.int32, np.uint8, np.bool_]
SHAPES = [(0,), (3,), (2, 3), (2, 3, 4)]
CLI_DTYPE = {
    "f64": np.float64,
    "f32": np.float32,
    "i64": np.int64,
    "i32": np.int32,
    "u8": np.uint8,
    "bool": np.bool_,
}


# --- comparing --------------------------------------------------------------


def assert_same_array(got, want):
    assert isinstance(got, np.ndarray), f"expected an ndarray, got {type(got).__name__}"
    assert got.dtype == want.dtype, (got.dtype, want.dtype)
    assert got.shape == want.shape, (got.shape, want.shape)
    g = np.ascontiguousarray(got).reshape(-1).view(np.uint8)
    w = np.ascontiguousarray(want).reshape(-1).view(np.uint8)
    assert np.array_equal(g, w), "the bytes differ"


def assert_same(got, want, path="value"):
    """Equal, of the same Python type, floats bit for bit (NaN as NaN)."""
    if isinstance(want, np.ndarray):
        assert_same_array(got, want)
    elif isinstance(want, np.generic):
        assert_same(got, want.item(), path)
    elif want is None:
        assert got is None, path
    elif isinstance(want, bool):
        assert type(got) is bool and got == want, (path, got)
    elif isinstance(want, int):
        assert type(got) is int and got == want, (path, got)
    elif isinstance(want, float):
        assert type(got) is float, (path, type(got))
        if math.isnan(want):
            assert math.isnan(got), (path, got)
        else:
            assert struct.pack("<d", got) == struct.pack("<d", want), (path, got, want)
    elif isinstance(want, (str, bytes)):
        assert type(got) is type(want) and got == want, (path, got)
    elif isinstance(want, list):
        assert type(got) is list and len(got) == len(want), (path, got)
        for i, (g, w) in enumerate(zip(got, want)):
            assert_same(g, w, f"{path}[{i}]")
    elif isinstance(want, dict):
        assert type(got) is dict and set(got) == set(want), (path, got)
        for k in want:
            assert_same(got[k], want[k], f"{path}[{k!r}]")
    else:
        raise AssertionError(f"no comparison for {type(want)}")


def roundtrip(d, run, key, value):
    """Sets ``key``, publishes, and returns (d[key], the snapshot's value)."""
    d[key] = value
    d.notify_update()
    return d[key], run.snapshot()[key]


# --- values -----------------------------------------------------------------


def sample_array(dtype, shape, seed=0, finite=False, json_safe=False):
    """An array of ``dtype`` and ``shape`` with awkward values first."""
    rng = np.random.default_rng(seed)
    n = int(np.prod(shape))
    dt = np.dtype(dtype)
    if dt.kind == "f":
        a = rng.standard_normal(n).astype(dt) * 1e3
        info = np.finfo(dt)
        special = [-0.0, float(info.smallest_subnormal), float(info.max), float(info.min), 1.0 / 3]
        if not finite:
            special += [np.inf, -np.inf, np.nan]
    elif dt.kind == "b":
        a = rng.random(n) < 0.5
        special = [True, False]
    else:
        info = np.iinfo(dt)
        lo, hi = int(info.min), int(info.max)
        if json_safe and dt == np.int64:
            lo, hi = -(2**53), 2**53
        a = rng.integers(lo, hi, size=n, dtype=dt, endpoint=True)
        special = [lo, hi, 0, -1 if lo < 0 else 1]
    k = min(n, len(special))
    a[:k] = np.array(special[:k], dtype=dt)
    return a.reshape(shape)


SCALARS = {
    "none": None,
    "true": True,
    "false": False,
    "zero": 0,
    "int": -12345,
    "int_max": 2**63 - 1,
    "int_min": -(2**63),
    "float": 1.5,
    "neg_zero": -0.0,
    "inf": float("inf"),
    "neg_inf": float("-inf"),
    "nan": float("nan"),
    "subnormal": 5e-324,
    "float_max": 1.7976931348623157e308,
    "third": 1.0 / 3,
    "empty_str": "",
    "str": "héllo ∂x/∂t — 温度 🌡",
    "nul_str": "a\x00b",
    "empty_bytes": b"",
    "bytes": bytes(range(256)),
}


@pytest.mark.parametrize("key", list(SCALARS))
def test_scalars_round_trip(d, run, key):
    want = SCALARS[key]
    local, remote = roundtrip(d, run, key, want)
    assert_same(local, want)
    assert_same(remote, want)


def test_neg_zero_keeps_its_sign(d, run):
    local, remote = roundtrip(d, run, "z", -0.0)
    assert math.copysign(1.0, local) == -1.0
    assert math.copysign(1.0, remote) == -1.0


@pytest.mark.parametrize("shape", SHAPES, ids=lambda s: "x".join(map(str, s)))
@pytest.mark.parametrize("dtype", DTYPES, ids=lambda t: np.dtype(t).name)
def test_arrays_round_trip_bit_for_bit(d, run, dtype, shape):
    want = sample_array(dtype, shape, seed=10 * DTYPES.index(dtype) + SHAPES.index(shape))
    local, remote = roundtrip(d, run, "a", want)
    assert_same_array(local, want)
    assert_same_array(remote, want)


def test_lists_and_nested_dicts_round_trip(d, run):
    want = {
        "list": [1, 2.5, "three", None, True, b"\x00\x01", [1, [2, [3]]], {"k": -1}],
        "empty_list": [],
        "nested": {
            "a": {"b": {"c": [np.arange(4.0), np.array([1, 2], dtype=np.int32)]}},
            "empty": {},
            "nan": float("nan"),
            "mixed": [{"x": 1.0}, {"y": "z"}],
        },
    }
    with d.lock() as s:
        for k, v in want.items():
            s[k] = v
    d.notify_update()
    snap = run.snapshot()
    for k, v in want.items():
        assert_same(d[k], v, k)
        assert_same(snap[k], v, k)


NUMPY_SCALARS = {
    "f64": (np.float64(1.5), 1.5),
    "f32": (np.float32(0.25), 0.25),
    "f32_inexact": (np.float32(0.1), float(np.float32(0.1))),
    "i64": (np.int64(-(2**62)), -(2**62)),
    "i32": (np.int32(3), 3),
    "u8": (np.uint8(200), 200),
    "bool_true": (np.bool_(True), True),
    "bool_false": (np.bool_(False), False),
}


@pytest.mark.parametrize("key", list(NUMPY_SCALARS))
def test_numpy_scalars_come_back_as_python_scalars_with_history(d, run, key):
    value, want = NUMPY_SCALARS[key]
    local, remote = roundtrip(d, run, key, value)
    assert_same(local, want)
    assert_same(remote, want)
    h = d.history(key)
    assert h is not None and len(h) == 1
    assert h.values[0] == float(want)


@pytest.mark.parametrize(
    "make",
    [
        lambda: np.asfortranarray(np.arange(24.0).reshape(2, 3, 4)),
        lambda: np.arange(10, dtype=np.int32)[::2],
        lambda: np.arange(6.0, dtype=np.float32).reshape(2, 3).T,
        lambda: np.arange(48, dtype=np.uint8).reshape(6, 8)[1:5:2, ::3],
        lambda: np.arange(12.0)[::-1],
    ],
    ids=["fortran", "strided", "transposed", "sliced_2d", "reversed"],
)
def test_non_contiguous_arrays_are_read_back_in_c_order(d, run, make):
    a = make()
    assert not a.flags.c_contiguous
    local, remote = roundtrip(d, run, "a", a)
    for got in (local, remote):
        assert got.flags.c_contiguous
        assert got.dtype == a.dtype and got.shape == a.shape
        assert np.array_equal(got, a)
        assert_same_array(got, np.ascontiguousarray(a))


def test_the_stored_array_is_a_copy(d, run):
    a = np.arange(5.0)
    d["a"] = a
    a[0] = 99.0
    assert d["a"][0] == 0.0
    d.notify_update()
    a[1] = 99.0
    assert run.snapshot()["a"].tolist() == [0.0, 1.0, 2.0, 3.0, 4.0]
    with d.lock() as s:
        s["b"] = a
    a[2] = -1.0
    assert d["b"].tolist() == [99.0, 99.0, 2.0, 3.0, 4.0]


def test_arrays_read_back_are_read_only(d, run):
    d["a"] = np.arange(4.0)
    d.notify_update()
    for got in (d["a"], run.snapshot()["a"]):
        assert not got.flags.writeable
        with pytest.raises(ValueError):
            got[0] = 1.0
    with d.lock() as s:
        with pytest.raises(ValueError):
            s["a"][0] = 1.0
    assert d["a"].tolist() == [0.0, 1.0, 2.0, 3.0]


BAD = {
    "object": (lambda: object(), "object"),
    "set": (lambda: {1, 2}, "set"),
    "complex_array": (lambda: np.zeros(3, dtype=np.complex128), "complex"),
    "float16_array": (lambda: np.zeros(3, dtype=np.float16), "float16"),
    "int_keys": (lambda: {1: "a"}, None),
    "list_with_object": (lambda: [1, object()], "object"),
    "nested_object": (lambda: {"a": {"b": [object()]}}, "object"),
    "complex": (lambda: 1 + 2j, "complex"),
}


@pytest.mark.parametrize("what", list(BAD))
def test_bad_values_raise_type_error_and_leave_the_dict_unchanged(d, what):
    make, type_name = BAD[what]
    d["keep"] = 1
    key = "bad_value_key"
    with pytest.raises(TypeError) as e:
        d[key] = make()
    msg = str(e.value)
    assert key in msg, msg
    if type_name:
        assert type_name in msg, msg
    assert key not in d

    with pytest.raises(TypeError):
        d["keep"] = make()
    assert d["keep"] == 1

    with d.lock() as s:
        with pytest.raises(TypeError):
            s[key] = make()
        with pytest.raises(TypeError):
            s["keep"] = make()
        assert key not in s
        assert s["keep"] == 1
    assert set(d) == {"keep"}
    assert d.notify_update() >= 1  # nothing half-set broke publishing


@pytest.mark.parametrize("big", [2**63, -(2**63) - 1, 10**30])
def test_ints_beyond_64_bits_are_refused(d, big):
    d["keep"] = 5
    with pytest.raises((OverflowError, TypeError)):
        d["big"] = big
    with pytest.raises((OverflowError, TypeError)):
        d["keep"] = big
    with pytest.raises((OverflowError, TypeError)):
        d["list"] = [1, big]
    assert "big" not in d and "list" not in d
    assert d["keep"] == 5


# --- through the Rust CLI's JSON --------------------------------------------


def cli_path():
    p = os.environ.get("IDICT_CLI") or str(
        Path(__file__).resolve().parents[2] / "target" / "debug" / "idict"
    )
    if not os.path.isfile(p):
        pytest.skip(f"the idict CLI is not built ({p}); set IDICT_CLI")
    return p


def cli_get(run_name, *keys):
    out = subprocess.run(
        [cli_path(), "get", run_name, *keys, "--json", "--full"],
        capture_output=True,
        text=True,
        timeout=30,
        env=os.environ.copy(),
    )
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout)


def cli_array(j):
    dtype = CLI_DTYPE[j["dtype"]]
    a = np.array(j["data"], dtype=dtype)
    return a.reshape(j["shape"])


@pytest.mark.parametrize("dtype", DTYPES, ids=lambda t: np.dtype(t).name)
def test_cli_json_arrays_match_numpy(d, serving, dtype):
    cli_path()
    arrays = {}
    with d.lock() as s:
        for i, shape in enumerate(SHAPES):
            a = sample_array(dtype, shape, seed=i, finite=True, json_safe=True)
            arrays["a" + "x".join(map(str, shape))] = a
            s["a" + "x".join(map(str, shape))] = a
    v = d.notify_update()
    out = cli_get(d.name, *arrays)
    assert out["version"] == v
    assert out["status"] == "running"
    for k, a in arrays.items():
        j = out["values"][k]
        assert CLI_DTYPE[j["dtype"]] == np.dtype(dtype), j["dtype"]
        assert j["shape"] == list(a.shape)
        assert_same_array(cli_array(j), a)
        if a.size and a.dtype != np.bool_:
            f = a.astype(np.float64)
            assert j["min"] == f.min() and j["max"] == f.max()
            if a.dtype.kind in "iu":  # (float samples cancel: the order of summing matters)
                assert j["mean"] == pytest.approx(f.mean(), rel=1e-9)


def test_cli_json_int64_arrays_beyond_2_53_are_exact(d, serving):
    cli_path()
    a = np.array([2**63 - 1, -(2**63), 2**53 + 1, -(2**53) - 1], dtype=np.int64)
    d["big"] = a
    d.notify_update()
    j = cli_get(d.name, "big")["values"]["big"]
    assert_same_array(cli_array(j), a)


def test_cli_json_scalars_match(d, serving):
    cli_path()
    want = {
        "none": None,
        "t": True,
        "i": -12345,
        "imax": 2**63 - 1,
        "imin": -(2**63),
        "f": 1.5,
        "third": 1.0 / 3,
        "nz": -0.0,
        "sub": 5e-324,
        "fmax": 1.7976931348623157e308,
        "s": "héllo ∂x/∂t — 温度 🌡",
        "list": [1, 2.5, "x", None, [True]],
        "map": {"a": {"b": [1, 2]}, "c": "d"},
        "np_f32": np.float32(0.1),
        "np_i32": np.int32(7),
    }
    with d.lock() as s:
        for k, v in want.items():
            s[k] = v
        s["nan"] = float("nan")
        s["bytes"] = b"\x00\x01\xff"
    d.notify_update()
    values = cli_get(d.name)["values"]
    for k, v in want.items():
        assert_same(values[k], v.item() if isinstance(v, np.generic) else v, k)
    assert values["nan"] is None  # NaN is null in JSON
    assert values["bytes"] == [0, 1, 255]
