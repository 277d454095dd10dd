"""The canonical form and the cache-key format: a persisted contract (see orchlite/hashing.py)."""

from __future__ import annotations

import contextlib
import copy
import dataclasses
import datetime as dt
import decimal
import enum
import hashlib
import http
import io
import json
import os
import pickle
import re
import subprocess
import sys
import threading
import uuid
from pathlib import Path, PurePosixPath

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from orchlite import hashing
from orchlite.errors import UnhashableInputError
from orchlite.hashing import (
    HASH_VERSION,
    canonical_bytes,
    hash_arguments,
    hash_bytes,
    hash_parts,
    hash_value,
)

REPO = Path(__file__).resolve().parents[1]

scalars = (
    st.none()
    | st.booleans()
    | st.integers()
    | st.integers(min_value=2**1990, max_value=2**2010)
    | st.floats()
    | st.text(max_size=8)
    | st.binary(max_size=8)
    | st.dates()
    | st.datetimes()
    | st.decimals(places=3, allow_nan=False)
    | st.uuids()
)
hashable_scalars = st.none() | st.booleans() | st.integers() | st.text(max_size=8)
values = st.recursive(
    scalars,
    lambda children: (
        st.lists(children, max_size=4)
        | st.lists(children, max_size=4).map(tuple)
        | st.dictionaries(st.text(max_size=4), children, max_size=4)
        | st.dictionaries(st.integers(-3, 3) | st.text(max_size=2), children, max_size=3)
        | st.frozensets(hashable_scalars, max_size=5)
        | st.sets(st.text(max_size=6), max_size=6)
    ),
    max_leaves=12,
)


def strict(value: object) -> object:
    """Equality as the contract defines it: types matter, except list == tuple."""
    kind = type(value)
    if kind in (list, tuple):
        return ("seq", tuple(strict(item) for item in value))  # type: ignore[attr-defined]
    if kind is dict:
        items = value.items()  # type: ignore[attr-defined]
        return ("dict", frozenset((strict(k), strict(v)) for k, v in items))
    if kind in (set, frozenset):
        return ("set", frozenset(strict(item) for item in value))  # type: ignore[attr-defined]
    if kind in (bytes, bytearray):
        return ("bytes", bytes(value))  # type: ignore[arg-type]
    return (kind.__name__, repr(value))


# -- the documented form ----------------------------------------------------------------------


def test_plain_values_are_sorted_compact_json() -> None:
    value = {"b": 1, "a": [1, 2.0, True, None, "é"], "c": {"z": (1, 2)}}
    expected = b'{"a":[1,2.0,true,null,"\xc3\xa9"],"b":1,"c":{"z":[1,2]}}'
    assert canonical_bytes(value) == expected
    assert hash_value(value) == hashlib.sha256(expected).hexdigest()
    assert hash_bytes(expected) == hashlib.sha256(expected).hexdigest()


def test_one_float_and_true_do_not_collide() -> None:
    digests = {hash_value(v) for v in (1, 1.0, True, "1", [1], {"x": 1})}
    assert len(digests) == 6
    assert hash_value({"x": 1}) != hash_value({"x": 1.0}) != hash_value({"x": True})


def test_tuple_and_list_are_the_same_by_contract() -> None:
    assert hash_value((1, 2)) == hash_value([1, 2])
    assert hash_value({"a": (1, b"x")}) == hash_value({"a": [1, b"x"]})


def test_int_keys_do_not_collide_with_str_keys() -> None:
    assert hash_value({1: "a"}) != hash_value({"1": "a"})
    assert hash_value({None: 1}) != hash_value({"null": 1})


def test_tagged_values_never_collide_with_json_text() -> None:
    assert canonical_bytes(b"x").startswith(b"\0bytes\0")
    assert hash_value(b"abc") != hash_value("abc")
    assert hash_value(bytearray(b"abc")) == hash_value(b"abc")
    assert hash_value({"__tag__": "bytes"}) != hash_value(b"bytes")


def test_other_types_have_tagged_forms() -> None:
    class Color(enum.Enum):
        RED = 1

    when = dt.datetime(2026, 11, 20, 8, 30, tzinfo=dt.timezone.utc)
    assert canonical_bytes(when) == b"\0datetime\0" + b"2026-11-20T08:30:00+00:00|UTC"
    assert canonical_bytes(dt.date(2026, 1, 2)) == b"\0date\x002026-01-02"
    assert canonical_bytes(decimal.Decimal("1.50")) == b"\0decimal\x001.50"
    assert hash_value(decimal.Decimal("1.5")) != hash_value(decimal.Decimal("1.50"))
    ident = uuid.UUID(int=7)
    assert canonical_bytes(ident) == b"\0uuid\0" + str(ident).encode()
    assert hash_value(Color.RED) != hash_value(1)
    assert hash_value(http.HTTPStatus.OK) != hash_value(200)
    assert hash_value(dt.timedelta(days=1)) != hash_value(dt.timedelta(seconds=1))
    assert hash_value(10**700) != hash_value(10**700 + 1)
    assert hash_value(1 + 2j) != hash_value(1 + 3j)


def test_dataclasses_hash_by_class_and_fields() -> None:
    @dataclasses.dataclass
    class Point:
        x: int
        y: object

    @dataclasses.dataclass
    class Other:
        x: int
        y: object

    assert hash_value(Point(1, {"a"})) == hash_value(Point(1, {"a"}))
    assert hash_value(Point(1, 2)) != hash_value(Point(1, 3))
    assert hash_value(Point(1, 2)) != hash_value(Other(1, 2))


def test_reference_cycles_hash_through_pickle() -> None:
    loop: list[object] = [1]
    loop.append(loop)
    assert canonical_bytes(loop).startswith(b"\0pickle\0")
    assert hash_value(loop) == hash_value(loop)


def test_hash_parts_is_the_tagged_cache_key_format() -> None:
    key = hash_parts({"b": "2", "a": b"1"})
    assert re.fullmatch(r"v1:sha256:[0-9a-f]{64}", key)
    assert HASH_VERSION == 1
    header = b"orchlite-cache-key\0v1\0"
    body = b"1:ab1:1" + b"1:bs1:2"
    assert key == "v1:sha256:" + hashlib.sha256(header + body).hexdigest()
    assert hash_parts({"a": b"1", "b": "2"}) == key
    assert hash_parts({"a": "1"}) != hash_parts({"a": b"1"})
    assert hash_parts({"ab": "c"}) != hash_parts({"a": "bc"})


def test_hash_arguments_equals_hash_value_of_the_dict() -> None:
    assert hash_arguments({"x": 1}) == hash_value({"x": 1})
    mixed = {"x": {1, 2}, "p": b"raw"}
    assert hash_arguments(mixed) == hash_value(mixed)


@settings(max_examples=100, deadline=None)
@given(values)
def test_fast_path_gives_the_same_bytes_as_the_recursive_encoder(value: object) -> None:
    assert hashing._encode(value, set()) == canonical_bytes(value)


@settings(max_examples=100, deadline=None)
@given(values, values)
def test_different_values_give_different_digests(a: object, b: object) -> None:
    if strict(a) == strict(b):
        assert hash_value(a) == hash_value(b)
    else:
        assert hash_value(a) != hash_value(b)


@settings(max_examples=50, deadline=None)
@given(values)
def test_copies_hash_the_same(value: object) -> None:
    assert hash_value(copy.deepcopy(value)) == hash_value(value)


# -- stability across processes ---------------------------------------------------------------

CHILD = """
import json, pickle, sys
from orchlite.hashing import hash_value
batch = pickle.loads(sys.stdin.buffer.read())
print(json.dumps([hash_value(v) for v in batch]))
print(json.dumps(sorted(m for m in ("numpy", "pandas") if m in sys.modules)))
"""


def digests_in_child(batch: list[object], seed: str) -> tuple[list[str], list[str]]:
    env = {**os.environ, "PYTHONHASHSEED": seed, "PYTHONPATH": str(REPO)}
    out = subprocess.run(
        [sys.executable, "-c", CHILD],
        input=pickle.dumps(batch),
        capture_output=True,
        env=env,
        check=True,
        cwd=REPO,
    ).stdout
    digests, loaded = out.decode().splitlines()
    return json.loads(digests), json.loads(loaded)


@settings(
    max_examples=4,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
@given(st.lists(values, min_size=30, max_size=60))
def test_equal_values_give_equal_digests_across_processes(batch: list[object]) -> None:
    words = {f"word-{i}" for i in range(50)}
    batch = [*batch, words, frozenset(words), {"nested": [words, {"k": words}]}]
    seed = str(len(batch) * 7919 % 4_000_000_000)
    child, _ = digests_in_child(batch, seed)
    assert child == [hash_value(v) for v in batch]


def test_stdlib_values_and_paths_are_stable_across_processes(tmp_path: Path) -> None:
    data = tmp_path / "data.csv"
    data.write_text("a,b\n1,2\n")
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "x.txt").write_text("x")
    batch = [
        data,
        tmp_path,
        tmp_path / "missing",
        http.HTTPStatus.NOT_FOUND,
        dt.datetime(2026, 3, 29, 1, 30, tzinfo=dt.timezone(dt.timedelta(hours=2))),
        decimal.Decimal("3.14"),
        {"words": {"alpha", "beta", "gamma", "delta"}, "when": dt.date(2026, 1, 1)},
        frozenset({("a", 1), ("b", 2)}),
    ]
    first, loaded = digests_in_child(batch, "1")
    second, _ = digests_in_child(batch, "2")
    assert first == second == [hash_value(v) for v in batch]
    assert loaded == []  # numpy and pandas are never imported by hashing


# -- paths ------------------------------------------------------------------------------------


def test_paths_hash_by_content(tmp_path: Path) -> None:
    data = tmp_path / "data.csv"
    data.write_text("a,b\n1,2\n")
    before = hash_arguments({"p": data})
    assert hash_arguments({"p": data}) == before
    data.write_text("a,b\n1,3\n")
    assert hash_arguments({"p": data}) != before
    data.write_text("a,b\n1,2\n")
    assert hash_arguments({"p": data}) == before
    assert hash_value(data) != hash_value(str(data))


def test_same_content_at_another_path_is_another_key(tmp_path: Path) -> None:
    (tmp_path / "a.txt").write_text("same")
    (tmp_path / "b.txt").write_text("same")
    assert hash_value(tmp_path / "a.txt") != hash_value(tmp_path / "b.txt")
    assert hash_value(tmp_path / "a.txt") == hash_value(PurePosixPath(tmp_path / "a.txt"))


def test_directories_hash_by_names_and_contents(tmp_path: Path) -> None:
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "x.txt").write_text("x")
    before = hash_value(tmp_path)
    (tmp_path / "sub" / "x.txt").write_text("y")
    changed = hash_value(tmp_path)
    assert changed != before
    (tmp_path / "sub" / "x.txt").rename(tmp_path / "sub" / "z.txt")
    assert hash_value(tmp_path) not in (before, changed)
    (tmp_path / "empty").mkdir()
    assert hash_value(tmp_path) not in (before, changed)


def test_missing_and_special_paths_are_tagged(tmp_path: Path) -> None:
    missing = tmp_path / "nope"
    assert canonical_bytes(missing) == b"\0path-missing\0" + str(missing).encode()
    if hasattr(os, "mkfifo"):
        fifo = tmp_path / "fifo"
        os.mkfifo(fifo)  # never opened: opening a fifo would block
        assert canonical_bytes(fifo) == b"\0path-special\0" + str(fifo).encode()


# -- unhashable values ------------------------------------------------------------------------


def _assert_names_fixes(message: str) -> None:
    assert "cache_key_fn=" in message
    assert "INPUTS" in message
    assert "TASK_SOURCE" in message and "NO_CACHE" in message
    assert "\n" not in message


@pytest.mark.parametrize("type_name", ["lock", "generator", "TextIOWrapper", "BytesIO"])
def test_unhashable_values_name_the_argument_and_the_fixes(type_name: str) -> None:
    with contextlib.ExitStack() as stack:
        value = {
            "lock": threading.Lock,
            "generator": lambda: (i for i in range(3)),
            "TextIOWrapper": lambda: stack.enter_context(open(__file__)),
            "BytesIO": lambda: io.BytesIO(b"data"),
        }[type_name]()
        with pytest.raises(UnhashableInputError) as info:
            hash_arguments({"x": 1, "resource": value})
        message = str(info.value)
        assert "'resource'" in message and f"'{type_name}'" in message
        _assert_names_fixes(message)
        with pytest.raises(UnhashableInputError, match="'conn'"):
            canonical_bytes(value, name="conn")


def test_nested_unhashable_values_say_where(tmp_path: Path) -> None:
    with pytest.raises(UnhashableInputError) as info:
        hash_arguments({"rows": [1, {"lock": threading.Lock()}]})
    assert "argument 'rows' at rows[1]['lock']" in str(info.value)
    _assert_names_fixes(str(info.value))


# -- numpy, and speed -------------------------------------------------------------------------


def test_numpy_arrays_hash_by_dtype_shape_and_bytes() -> None:
    import numpy as np

    a = np.arange(6, dtype="int64")
    assert hash_value(a) == hash_value(a.copy())
    assert hash_value(a) != hash_value(a.astype("int32"))
    assert hash_value(a) != hash_value(a.reshape(2, 3))
    assert hash_value(a.reshape(2, 3).T) == hash_value(np.ascontiguousarray(a.reshape(2, 3).T))
    assert hash_value(np.array([{"a"}, "b"], dtype=object)) == hash_value(
        np.array([{"a"}, "b"], dtype=object)
    )
    assert hash_value(np.float64(1.0)) != hash_value(1.0)
