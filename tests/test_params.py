from __future__ import annotations

import datetime as dt
import enum
import json
import subprocess
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path, PurePosixPath
from typing import TYPE_CHECKING, Annotated, Any, Literal, NewType, Optional, Union
from uuid import UUID

import pytest

from orchlite.errors import ParameterError, UsageError
from orchlite.params import (
    bind_parameters,
    coerce_value,
    jsonable_parameters,
    load_params_file,
    parse_assignments,
)

if TYPE_CHECKING:
    from some_module_that_does_not_exist import Unknown


class Color(enum.Enum):
    RED = "red"
    GREEN = "green"


class Level(enum.IntEnum):
    LOW = 1
    HIGH = 2


UserId = NewType("UserId", int)


def c(annotation: Any, value: Any) -> Any:
    return coerce_value(annotation, value, name="p")


# --- parse_assignments -------------------------------------------------------------------------


def test_parse_assignments() -> None:
    assert parse_assignments(["a=1", "b=x=y", "c=", " d =2"]) == {
        "a": "1",
        "b": "x=y",
        "c": "",
        "d": "2",
    }
    assert parse_assignments(["a=1", "a=2"]) == {"a": "2"}
    assert parse_assignments([]) == {}


@pytest.mark.parametrize("bad", ["novalue", "=1", "1a=2", "a-b=3", "a b=1"])
def test_parse_assignments_rejects(bad: str) -> None:
    with pytest.raises(ParameterError, match=rf"^bad parameter '{bad}': expected key=value$"):
        parse_assignments([bad])


def test_parameter_error_is_a_usage_error() -> None:
    with pytest.raises(UsageError):
        parse_assignments(["x"])


# --- load_params_file --------------------------------------------------------------------------


def test_load_params_file(tmp_path: Path) -> None:
    path = tmp_path / "p.json"
    path.write_text('{"day": "2026-11-20", "n": 3, "tags": ["a"]}')
    assert load_params_file(path) == {"day": "2026-11-20", "n": 3, "tags": ["a"]}


def test_load_params_file_errors(tmp_path: Path) -> None:
    with pytest.raises(ParameterError, match=r"no such parameters file: .*missing\.json"):
        load_params_file(tmp_path / "missing.json")
    bad = tmp_path / "bad.json"
    bad.write_text('{\n  "a": 1,\n  "b": \n}')
    with pytest.raises(ParameterError, match=r"bad\.json:4:1: invalid JSON: Expecting value$"):
        load_params_file(bad)
    arr = tmp_path / "arr.json"
    arr.write_text("[1, 2]")
    with pytest.raises(ParameterError, match=r"arr\.json: expected a JSON object, got list"):
        load_params_file(arr)
    with pytest.raises(ParameterError, match="cannot read parameters file"):
        load_params_file(tmp_path)
    with pytest.raises(ParameterError) as info:
        load_params_file(bad)
    assert "\n" not in str(info.value)


# --- coerce_value: scalars ---------------------------------------------------------------------


def test_str() -> None:
    assert c(str, "hello") == "hello"
    assert c(str, "") == ""
    with pytest.raises(ParameterError, match=r"^parameter 'p': expected str, got 5$"):
        c(str, 5)


def test_int() -> None:
    assert c(int, "42") == 42
    assert c(int, " -7 ") == -7
    assert c(int, 42) == 42
    assert c(int, 3.0) == 3
    for bad in ("4.5", "x", True, 4.5, None, [1]):
        with pytest.raises(ParameterError, match="parameter 'p': expected int, got "):
            c(int, bad)


def test_float() -> None:
    assert c(float, "1.5") == 1.5
    assert c(float, "3") == 3.0
    value = c(float, 3)
    assert value == 3.0 and type(value) is float
    with pytest.raises(ParameterError, match=r"^parameter 'p': expected float, got 'abc'$"):
        c(float, "abc")
    with pytest.raises(ParameterError):
        c(float, False)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("true", True),
        ("True", True),
        ("YES", True),
        ("on", True),
        ("1", True),
        ("false", False),
        ("FALSE", False),
        ("no", False),
        ("Off", False),
        ("0", False),
        (True, True),
        (False, False),
        (1, True),
        (0, False),
    ],
)
def test_bool(text: Any, expected: bool) -> None:
    assert c(bool, text) is expected


def test_bool_rejects() -> None:
    for bad in ("maybe", "2", 2, None, "y"):
        with pytest.raises(ParameterError, match="parameter 'p': expected bool, got "):
            c(bool, bad)


def test_date() -> None:
    assert c(dt.date, "2026-11-20") == dt.date(2026, 11, 20)
    assert c(dt.date, dt.date(2026, 1, 1)) == dt.date(2026, 1, 1)
    with pytest.raises(ParameterError, match=r"^parameter 'p': expected date, got '20/11/2026'$"):
        c(dt.date, "20/11/2026")
    with pytest.raises(ParameterError):
        c(dt.date, dt.datetime(2026, 1, 1, 12))


def test_datetime() -> None:
    assert c(dt.datetime, "2026-11-20T10:30:00") == dt.datetime(2026, 11, 20, 10, 30)
    utc = c(dt.datetime, "2026-11-20T10:30:00Z")
    assert utc == dt.datetime(2026, 11, 20, 10, 30, tzinfo=dt.timezone.utc)
    offset = c(dt.datetime, "2026-11-20T10:30:00+02:00")
    assert offset.utcoffset() == dt.timedelta(hours=2)
    assert c(dt.datetime, "2026-11-20") == dt.datetime(2026, 11, 20)
    now = dt.datetime.now()
    assert c(dt.datetime, now) is now
    with pytest.raises(ParameterError, match=r"^parameter 'p': expected datetime, got 'soon'$"):
        c(dt.datetime, "soon")


def test_path() -> None:
    assert c(Path, "data/in.csv") == Path("data/in.csv")
    assert isinstance(c(Path, "x"), Path)
    assert c(Path, Path("y")) == Path("y")
    assert c(PurePosixPath, "a/b") == PurePosixPath("a/b")
    with pytest.raises(ParameterError, match="expected Path, got 3"):
        c(Path, 3)


def test_enum_by_value_then_name() -> None:
    assert c(Color, "red") is Color.RED
    assert c(Color, "GREEN") is Color.GREEN
    assert c(Color, Color.RED) is Color.RED
    assert c(Level, "2") is Level.HIGH
    assert c(Level, 1) is Level.LOW
    assert c(Level, "LOW") is Level.LOW
    with pytest.raises(
        ParameterError, match=r"^parameter 'p': expected one of 'red', 'green', got 'blue'$"
    ):
        c(Color, "blue")


def test_literal() -> None:
    assert c(Literal["fast", "slow"], "fast") == "fast"
    assert c(Literal[1, 2], "2") == 2
    assert c(Literal[1, 2], 1) == 1
    with pytest.raises(
        ParameterError, match=r"^parameter 'p': expected one of 'fast', 'slow', got 'medium'$"
    ):
        c(Literal["fast", "slow"], "medium")
    with pytest.raises(ParameterError):
        c(Literal[1], True)


def test_no_annotation_or_any_keeps_the_value() -> None:
    import inspect

    assert c(Any, "[1, 2]") == "[1, 2]"
    assert c(inspect.Parameter.empty, "42") == "42"
    assert c(object, {"a": 1}) == {"a": 1}
    assert c("SomeUnresolved", "x") == "x"


def test_annotated_and_newtype_unwrap() -> None:
    assert c(Annotated[int, "meta"], "5") == 5
    assert c(UserId, "7") == 7


def test_other_classes_are_built_from_strings() -> None:
    assert c(Decimal, "1.10") == Decimal("1.10")
    uid = "12345678-1234-5678-1234-567812345678"
    assert c(UUID, uid) == UUID(uid)
    with pytest.raises(ParameterError, match=r"expected UUID, got 'nope'"):
        c(UUID, "nope")


# --- coerce_value: optional and unions ---------------------------------------------------------


def test_optional() -> None:
    assert c(Optional[int], None) is None  # noqa: UP045 - the old spelling must work too
    assert c(int | None, None) is None
    assert c(int | None, "5") == 5
    assert c(int | None, "null") is None
    assert c(dt.date | None, "None") is None
    # a str parameter keeps the text: only JSON null is None
    assert c(str | None, "null") == "null"
    assert c(str | None, None) is None
    with pytest.raises(ParameterError, match=r"^parameter 'p': expected int \| None, got 'x'$"):
        c(int | None, "x")
    with pytest.raises(ParameterError, match="expected int, got None"):
        c(int, None)


def test_unions() -> None:
    assert c(int | str, "5") == "5"  # the value's own type is a member: kept
    assert c(int | str, 5) == 5
    assert c(int | dt.date, "2026-01-01") == dt.date(2026, 1, 1)
    assert c(Union[int, float], "1.5") == 1.5  # noqa: UP007
    with pytest.raises(ParameterError, match=r"expected int \| float, got 'x'"):
        c(int | float, "x")


# --- coerce_value: containers ------------------------------------------------------------------


def test_list() -> None:
    assert c(list[int], "[1, 2, 3]") == [1, 2, 3]
    assert c(list[int], ["1", 2]) == [1, 2]
    assert c(list[int], "1,2, 3") == [1, 2, 3]
    assert c(list[str], "a,b") == ["a", "b"]
    assert c(list[str], "solo") == ["solo"]
    assert c(list[str], "true") == ["true"]
    assert c(list[str], "") == []
    assert c(list, '[1, "a"]') == [1, "a"]
    assert c(list[dt.date], '["2026-01-01"]') == [dt.date(2026, 1, 1)]
    assert c(Sequence[int], "1,2") == [1, 2]
    with pytest.raises(ParameterError, match=r"^parameter 'p': expected list\[int\], got '1,x'$"):
        c(list[int], "1,x")
    with pytest.raises(ParameterError, match=r"expected list\[int\], got \{'a': 1\}"):
        c(list[int], {"a": 1})


def test_tuple() -> None:
    assert c(tuple[int, ...], "[1, 2]") == (1, 2)
    assert c(tuple[int, str], '[1, "a"]') == (1, "a")
    assert c(tuple[int, str], [1, "a"]) == (1, "a")
    with pytest.raises(ParameterError, match=r"expected tuple\[int, str\]"):
        c(tuple[int, str], "[1]")
    with pytest.raises(ParameterError, match=r"expected tuple\[int, \.\.\.\]"):
        c(tuple[int, ...], '[1, "x"]')


def test_set() -> None:
    assert c(set[int], "[1, 2, 2]") == {1, 2}
    assert c(set[str], "a,b,a") == {"a", "b"}
    assert c(frozenset[int], [1]) == frozenset({1})


def test_dict() -> None:
    assert c(dict[str, int], '{"a": "1", "b": 2}') == {"a": 1, "b": 2}
    assert c(dict[int, dt.date], '{"1": "2026-01-01"}') == {1: dt.date(2026, 1, 1)}
    assert c(dict, '{"a": [1]}') == {"a": [1]}
    assert c(Mapping[str, float], {"x": 1}) == {"x": 1.0}
    with pytest.raises(
        ParameterError, match=r"^parameter 'p': expected dict\[str, int\], got 'a=1'"
    ):
        c(dict[str, int], "a=1")
    with pytest.raises(ParameterError, match=r"expected dict\[str, int\], got '\[1\]'"):
        c(dict[str, int], "[1]")
    with pytest.raises(ParameterError):
        c(dict[str, int], '{"a": "x"}')


def test_long_values_are_shortened_in_errors() -> None:
    with pytest.raises(ParameterError) as info:
        c(int, "x" * 500)
    assert len(str(info.value)) < 120
    assert str(info.value).endswith("...")


# --- pydantic ----------------------------------------------------------------------------------


def test_pydantic_model() -> None:
    import pydantic

    class Window(pydantic.BaseModel):
        start: dt.date
        days: int = 1

    value = c(Window, '{"start": "2026-01-01", "days": "3"}')
    assert value == Window(start=dt.date(2026, 1, 1), days=3)
    assert c(Window, {"start": "2026-01-02"}).days == 1
    assert c(Window, value) is value
    assert c(list[Window], '[{"start": "2026-01-01"}]')[0].start == dt.date(2026, 1, 1)
    with pytest.raises(ParameterError, match="parameter 'p': expected Window, got"):
        c(Window, '{"days": 2}')
    with pytest.raises(ParameterError, match="expected Window"):
        c(Window, "not json")


def test_importing_params_does_not_import_pydantic() -> None:
    code = "import sys, orchlite.params; print('pydantic' in sys.modules, 'numpy' in sys.modules)"
    out = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        check=True,
        cwd=Path(__file__).resolve().parents[1],
    )
    assert out.stdout.split() == ["False", "False"]


# --- bind_parameters ---------------------------------------------------------------------------


def etl(day: dt.date, n: int = 3, *, tags: list[str] | None = None, dry_run: bool = False):
    return day


def test_bind_coerces_and_applies_defaults_in_signature_order() -> None:
    bound = bind_parameters(etl, {"dry_run": "yes", "day": "2026-11-20"}, flow_name="etl")
    assert bound == {"day": dt.date(2026, 11, 20), "n": 3, "tags": None, "dry_run": True}
    assert list(bound) == ["day", "n", "tags", "dry_run"]
    assert etl(**bound) == dt.date(2026, 11, 20)


def test_bind_string_annotations_are_resolved() -> None:
    # this module uses `from __future__ import annotations`, so every annotation is a string
    assert isinstance(etl.__annotations__["n"], str)
    assert bind_parameters(etl, {"day": "2026-01-01", "n": "7"}, flow_name="etl")["n"] == 7


def test_bind_unresolvable_annotation_falls_back_to_the_raw_value() -> None:
    def fn(a: Unknown, b: int):
        return a, b

    bound = bind_parameters(fn, {"a": "raw", "b": "2"}, flow_name="f")
    assert bound == {"a": "raw", "b": 2}


def test_bind_unknown_parameter() -> None:
    with pytest.raises(
        ParameterError,
        match=r"^unknown parameter 'dya' for flow 'etl' \(it takes: day, n, tags, dry_run\); "
        r"did you mean 'day'\?$",
    ):
        bind_parameters(etl, {"dya": "x"}, flow_name="etl")
    with pytest.raises(ParameterError, match=r"\(it takes: day, n, tags, dry_run\)$"):
        bind_parameters(etl, {"day": "2026-01-01", "zzzz": 1}, flow_name="etl")

    def empty():
        pass

    with pytest.raises(ParameterError, match=r"\(it takes no parameters\)"):
        bind_parameters(empty, {"a": 1}, flow_name="empty")


def test_bind_missing_parameter() -> None:
    with pytest.raises(ParameterError, match=r"^missing parameter 'day' for flow 'etl'$"):
        bind_parameters(etl, {"n": "1"}, flow_name="etl")

    def two(a: int, b: int):
        pass

    with pytest.raises(ParameterError, match=r"^missing parameters 'a', 'b' for flow 'two'$"):
        bind_parameters(two, {}, flow_name="two")


def test_a_parameter_error_names_the_parameters_it_is_about() -> None:
    """So a form can show it beside their fields."""

    def two(a: int, b: int):
        pass

    for given, names in (
        ({"a": "x", "b": "1"}, ("a",)),
        ({"a": "1", "b": "2", "c": "3"}, ("c",)),
        ({"b": "2"}, ("a",)),
        ({}, ("a", "b")),
    ):
        with pytest.raises(ParameterError) as caught:
            bind_parameters(two, given, flow_name="two")
        assert caught.value.names == names


def test_bind_reports_bad_values_by_name() -> None:
    with pytest.raises(ParameterError, match=r"^parameter 'n': expected int, got 'many'$"):
        bind_parameters(etl, {"day": "2026-01-01", "n": "many"}, flow_name="etl")


def test_bind_kwargs_converts_extra_names_by_its_annotation() -> None:
    def fn(a: int, **extra: int):
        return a, extra

    bound = bind_parameters(fn, {"x": "1", "a": "2", "y": 3}, flow_name="f")
    assert bound == {"a": 2, "x": 1, "y": 3}
    assert list(bound) == ["a", "x", "y"]
    with pytest.raises(ParameterError, match=r"^parameter 'y': expected int, got 'z'$"):
        bind_parameters(fn, {"a": "2", "y": "z"}, flow_name="f")

    def dates(**days: dt.date):  # a string annotation (future annotations) too
        return days

    assert bind_parameters(dates, {"start": "2026-01-02"}, flow_name="f") == {
        "start": dt.date(2026, 1, 2)
    }

    def untyped(**extra):  # type: ignore[no-untyped-def]
        return extra

    assert bind_parameters(untyped, {"x": "1"}, flow_name="f") == {"x": "1"}


def test_a_flow_with_typed_kwargs_gets_converted_values() -> None:
    from orchlite import flow

    @flow
    def kw(**options: int) -> dict[str, int]:
        return options

    assert kw(a="1", b=2) == {"a": 1, "b": 2}


def test_var_positional_values_are_given_by_its_name() -> None:
    def fn(a: int, *rest: int):
        return a

    assert bind_parameters(fn, {"a": "1"}, flow_name="f") == {"a": 1}
    assert bind_parameters(fn, {"a": "1", "rest": "2,3"}, flow_name="f") == {"a": 1, "rest": (2, 3)}
    assert bind_parameters(fn, {"a": 1, "rest": [4]}, flow_name="f") == {"a": 1, "rest": (4,)}
    assert bind_parameters(fn, {"a": 1, "rest": "[5, 6]"}, flow_name="f")["rest"] == (5, 6)
    with pytest.raises(ParameterError, match=r"parameter 'rest\[1\]': expected int, got 'x'"):
        bind_parameters(fn, {"a": "1", "rest": "2,x"}, flow_name="f")
    with pytest.raises(ParameterError, match=r"parameter 'rest' \(\*rest\): expected a list"):
        bind_parameters(fn, {"a": "1", "rest": 2}, flow_name="f")
    with pytest.raises(ParameterError, match=r"unknown parameter 'b' .*\(it takes: a, rest\)"):
        bind_parameters(fn, {"a": "1", "b": "2"}, flow_name="f")


def test_bind_typed_json_values_pass_through() -> None:
    bound = bind_parameters(etl, {"day": "2026-01-01", "tags": ["a", "b"], "n": 5}, flow_name="etl")
    assert bound["tags"] == ["a", "b"] and bound["n"] == 5


def test_bind_follows_wrapped_functions() -> None:
    import functools

    def deco(fn):
        @functools.wraps(fn)
        def wrapper(*args, **kwargs):
            return fn(*args, **kwargs)

        return wrapper

    @deco
    def wrapped(n: int = 1):
        return n

    assert bind_parameters(wrapped, {"n": "4"}, flow_name="w") == {"n": 4}


# --- jsonable_parameters -----------------------------------------------------------------------


@dataclass
class Point:
    x: int
    y: int


class Unprintable:
    def __repr__(self) -> str:
        raise RuntimeError("no")


def test_jsonable_parameters() -> None:
    out = jsonable_parameters(
        {
            "day": dt.date(2026, 11, 20),
            "at": dt.datetime(2026, 11, 20, 10, 0, tzinfo=dt.timezone.utc),
            "path": Path("data") / "x.csv",
            "color": Color.RED,
            "level": Level.HIGH,
            "tags": {"b", "a"},
            "pair": (1, "x"),
            "nested": {"when": [dt.date(2026, 1, 1)], 3: None},
            "point": Point(1, 2),
            "money": Decimal("1.10"),
            "nan": float("nan"),
            "obj": object(),
            "long": "x" * 300,
            "big": list(range(3)),
            "bad": Unprintable(),
            "raw": b"\x00",
        }
    )
    assert out["day"] == "2026-11-20"
    assert out["at"] == "2026-11-20T10:00:00+00:00"
    assert out["path"] == str(Path("data") / "x.csv")
    assert out["color"] == "red"
    assert out["level"] == 2
    assert out["tags"] == ["a", "b"]
    assert out["pair"] == [1, "x"]
    assert out["nested"] == {"when": ["2026-01-01"], "3": None}
    assert out["point"] == {"x": 1, "y": 2}
    assert out["money"] == "1.10"
    assert out["nan"] == "nan"
    assert out["obj"].startswith("<object object at")
    assert out["long"] == "x" * 300  # strings are data, not reprs: kept whole
    assert out["bad"] == "<Unprintable object>"
    assert out["raw"] == "b'\\x00'"
    json.dumps(out, allow_nan=False)


def test_jsonable_truncates_long_reprs() -> None:
    class Long:
        def __repr__(self) -> str:
            return "L" * 1000

    out = jsonable_parameters({"x": Long()})
    assert len(out["x"]) == 200 and out["x"].endswith("...")


def test_jsonable_pydantic_model() -> None:
    import pydantic

    class M(pydantic.BaseModel):
        day: dt.date

    assert jsonable_parameters({"m": M(day=dt.date(2026, 1, 1))}) == {"m": {"day": "2026-01-01"}}


def test_jsonable_never_raises_on_cycles() -> None:
    loop: list[Any] = []
    loop.append(loop)
    out = jsonable_parameters({"loop": loop})
    json.dumps(out)
