"""Result serializers and the listing preview (see orchlite/serialize.py)."""

from __future__ import annotations

import datetime as dt
import json
import math
import re
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from orchlite.errors import OrchError, SerializationError, UsageError
from orchlite.serialize import SERIALIZERS, dumps, loads, preview

json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=6), children, max_size=4)
    ),
    max_leaves=15,
)
literal = (
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=False)
    | st.text(max_size=10)
    | st.binary(max_size=10)
)
pickle_values = st.recursive(
    literal,
    lambda children: (
        st.lists(children, max_size=4)
        | st.lists(children, max_size=4).map(tuple)
        | st.dictionaries(st.text(max_size=4) | st.integers(), children, max_size=4)
    ),
    max_leaves=15,
)


def test_serializer_names() -> None:
    assert SERIALIZERS == ("cloudpickle", "json")


@settings(max_examples=60, deadline=None)
@given(pickle_values | st.sets(st.text(max_size=4)) | st.frozensets(st.integers()))
def test_cloudpickle_roundtrips(value: object) -> None:
    assert loads(dumps(value, "cloudpickle"), "cloudpickle") == value


@settings(max_examples=60, deadline=None)
@given(json_values)
def test_json_roundtrips(value: object) -> None:
    data = dumps(value, "json")
    assert loads(data, "json") == value
    assert json.loads(data.decode("utf-8")) == value


def test_json_is_lossy_for_tuples_and_int_keys_as_documented() -> None:
    assert loads(dumps({1: (1, 2)}, "json"), "json") == {"1": [1, 2]}
    assert math.isnan(loads(dumps(float("nan"), "json"), "json"))


def test_cloudpickle_roundtrips_functions_and_objects() -> None:
    offset = 3
    value = {"fn": lambda x: x + offset, "when": dt.date(2026, 1, 2), "path": Path("a/b")}
    back = loads(dumps(value, "cloudpickle"), "cloudpickle")
    assert back["fn"](1) == 4
    assert back["when"] == value["when"] and back["path"] == value["path"]


@pytest.mark.parametrize("call", [dumps, loads, preview])
def test_unknown_serializer_is_a_usage_error(call: object) -> None:
    with pytest.raises(UsageError, match=r"unknown result serializer 'yaml'.*cloudpickle, json"):
        call(b"x", "yaml")  # type: ignore[operator]


def test_unpicklable_result_names_its_type_and_serializer() -> None:
    with pytest.raises(SerializationError) as info:
        dumps((i for i in range(3)), "cloudpickle")
    message = str(info.value)
    assert message.startswith("cannot serialize a result of type 'generator' with cloudpickle: ")
    assert isinstance(info.value, OrchError) and info.value.exit_code == 1


def test_json_failure_suggests_cloudpickle() -> None:
    with pytest.raises(SerializationError) as info:
        dumps({"s": {1, 2}}, "json")
    assert "of type 'dict' with json" in str(info.value)
    assert 'result_serializer="cloudpickle"' in str(info.value)


@pytest.mark.parametrize(("data", "serializer"), [(b"\x80\x05junk", "cloudpickle"), (b"{", "json")])
def test_corrupt_data_is_a_serialization_error(data: bytes, serializer: str) -> None:
    with pytest.raises(SerializationError, match=f"cannot deserialize a {serializer} result"):
        loads(data, serializer)


# -- preview ----------------------------------------------------------------------------------


def test_json_preview_is_the_text_truncated() -> None:
    data = dumps({"rows": list(range(100))}, "json")
    shown = preview(data, "json", limit=20)
    assert len(shown) == 20 and shown.endswith("…")
    assert shown.startswith('{"rows": [0, 1')
    assert preview(dumps([1, 2], "json"), "json") == "[1, 2]"


@settings(max_examples=50, deadline=None)
@given(pickle_values)
def test_pickle_preview_of_literals_is_their_repr(value: object) -> None:
    shown = preview(dumps(value, "cloudpickle"), "cloudpickle", limit=100_000)
    assert shown == repr(value)


def test_pickle_preview_truncates_and_describes_objects() -> None:
    shown = preview(dumps(list(range(100)), "cloudpickle"), "cloudpickle", limit=30)
    assert len(shown) == 30 and shown.startswith("[0, 1, 2") and shown.endswith("…")
    assert preview(dumps({"a"}, "cloudpickle"), "cloudpickle") == "{'a'}"
    described = preview(dumps(dt.date(2026, 1, 2), "cloudpickle"), "cloudpickle")
    assert re.fullmatch(r"<cloudpickle, \d+ B, datetime\.date>", described)
    big = preview(dumps(list(range(50_000)), "cloudpickle"), "cloudpickle")
    assert re.fullmatch(r"<cloudpickle, \d+\.\d kB>", big)


def test_pickle_preview_is_bounded_on_shared_structures() -> None:
    value: list[object] = [1]
    for _ in range(60):  # 2**60 leaves when walked naively
        value = [value, value]
    shown = preview(dumps(value, "cloudpickle"), "cloudpickle", limit=50)
    assert len(shown) <= 50


def test_preview_never_raises_on_bad_data() -> None:
    assert preview(b"", "cloudpickle") == "<cloudpickle, 0 B>"
    assert preview(b"\x80\x05garbage", "cloudpickle").startswith("<cloudpickle, ")
    assert preview(b"\xff\xfe", "json") == "\ufffd\ufffd"


class _OpensAFile:
    """Unpickling this calls open(path, "w"), which creates the file."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def __reduce__(self) -> tuple[object, tuple[str, str]]:
        return (open, (str(self.path), "w"))


def test_preview_never_unpickles(tmp_path: Path) -> None:
    marker = tmp_path / "written-by-unpickling"
    data = dumps(_OpensAFile(marker), "cloudpickle")
    shown = preview(data, "cloudpickle")
    assert shown.startswith("<cloudpickle, ")
    assert not marker.exists()
    loads(data, "cloudpickle").close()  # the payload is live: loading does run it
    assert marker.exists()
