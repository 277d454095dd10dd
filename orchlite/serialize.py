"""Result serializers, named by a format tag stored beside every result.

Persisted contract: a result blob holds exactly the bytes `dumps(value, serializer)` returned,
and its row stores the serializer's name, one of `SERIALIZERS`:

    "cloudpickle"  `cloudpickle.dumps(value, protocol=5)`; any picklable value round-trips.
    "json"         UTF-8 `json.dumps(value, ensure_ascii=False)`; NaN and Infinity allowed.
                   Lossy by JSON's nature: tuples come back as lists, non-str dict keys as str.

`dumps` raises SerializationError naming the value's type and the serializer; `loads` raises
SerializationError for bytes it cannot decode (corrupt, or a class that no longer imports), so
a caller can treat any unreadable result as one error. An unknown serializer name is a
UsageError.

`repr_head` is the other way to a short text: from the value itself, before it is stored.

`preview` is for listings and never unpickles. JSON is shown as its text (runs of whitespace
collapsed, cut with an ellipsis). A pickle is read with `pickletools.genops`, which only parses
opcodes, and shown as a value only when it is built from literals and lists, tuples, dicts and
sets of literals; otherwise it is described by its size and, when the pickle starts with one,
the name of its top-level class or function (`<cloudpickle, 1.2 kB, datetime.date>`).
"""

from __future__ import annotations

import contextlib
import json
import pickle
import pickletools
from typing import Any

from .errors import SerializationError, UsageError

SERIALIZERS = ("cloudpickle", "json")
DEFAULT_SERIALIZER = "cloudpickle"

_PICKLE_PROTOCOL = 5
_BUILTIN_SCALARS = frozenset({type(None), bool, int, float, str, bytes})
_MAX_PREVIEW_OPS = 2000


def dumps(value: Any, serializer: str) -> bytes:
    """Serialize a result with the named serializer."""
    _check(serializer)
    try:
        if serializer == "json":
            return json.dumps(value, ensure_ascii=False).encode("utf-8")
        if type(value) in _BUILTIN_SCALARS:
            # What cloudpickle would write for these, minus its Pickler set-up (~8 µs).
            return pickle.dumps(value, protocol=_PICKLE_PROTOCOL)
        import cloudpickle  # imported here: ~35 ms, not needed by listings

        return cloudpickle.dumps(value, protocol=_PICKLE_PROTOCOL)
    except Exception as exc:
        hint = '; use result_serializer="cloudpickle"' if serializer == "json" else ""
        raise SerializationError(
            f"cannot serialize a result of type '{type(value).__qualname__}' with "
            f"{serializer}: {_reason(exc)}{hint}"
        ) from exc


def loads(data: bytes, serializer: str) -> Any:
    """Deserialize bytes written by `dumps(value, serializer)`."""
    _check(serializer)
    try:
        if serializer == "json":
            return json.loads(data)
        import cloudpickle

        return cloudpickle.loads(data)
    except Exception as exc:
        raise SerializationError(
            f"cannot deserialize a {serializer} result: {type(exc).__name__}: {_reason(exc)}"
        ) from exc


def preview(data: bytes, serializer: str, limit: int = 200) -> str:
    """A one-line description of a serialized result, at most `limit` characters; never
    unpickles and never raises for bad data."""
    _check(serializer)
    if serializer == "json":
        text = " ".join(data.decode("utf-8", "replace").split())
        return _truncate(text, limit)
    value, type_name = _read_pickle(data)
    if value is not _UNKNOWN:
        return _Repr(limit).text(value)
    detail = f", {type_name}" if type_name else ""
    return _truncate(f"<cloudpickle, {_size(len(data))}{detail}>", limit)


def repr_head(value: Any, limit: int) -> tuple[str, bool]:
    """The first `limit` characters of `repr(value)`, and whether there was more.

    Lists, tuples, sets and dicts (exactly those types) are walked only as far as the limit,
    and strings and bytes cut first, so a large value costs no more than a small one; any
    other object is its own `repr()` (which may raise).
    """
    return _Repr(limit).head(value)


# -- internals ----------------------------------------------------------------------------------


def _check(serializer: str) -> None:
    if serializer not in SERIALIZERS:
        raise UsageError(
            f"unknown result serializer {serializer!r}; expected one of: {', '.join(SERIALIZERS)}"
        )


def _reason(exc: BaseException) -> str:
    return " ".join(str(exc).split())[:300] or type(exc).__name__


def _truncate(text: str, limit: int) -> str:
    if len(text) <= limit:
        return text
    return text[: max(limit - 1, 0)] + "…"


def _size(count: int) -> str:
    if count < 1000:
        return f"{count} B"
    value = count / 1000
    for unit in ("kB", "MB"):
        if round(value, 1) < 1000:
            return f"{value:.1f} {unit}"
        value /= 1000
    return f"{value:.1f} GB"


_UNKNOWN = object()
_MARK = object()

_LITERALS = {
    "INT", "BININT", "BININT1", "BININT2", "LONG", "LONG1", "LONG4", "FLOAT", "BINFLOAT",
    "UNICODE", "BINUNICODE", "SHORT_BINUNICODE", "BINUNICODE8",
    "BINBYTES", "SHORT_BINBYTES", "BINBYTES8",
}  # fmt: skip
_CONSTANTS = {"NONE": None, "NEWTRUE": True, "NEWFALSE": False}
_EMPTY = {"EMPTY_LIST": list, "EMPTY_DICT": dict, "EMPTY_TUPLE": tuple, "EMPTY_SET": set}
_IGNORED = {"PROTO", "FRAME"}
_MEMO_WRITES = {"MEMOIZE", "PUT", "BINPUT", "LONG_BINPUT"}


class _NotSimple(Exception):
    pass


def _read_pickle(data: bytes) -> tuple[Any, str | None]:
    """(value, None) for a pickle of literals and containers; else (_UNKNOWN, class name)."""
    stack: list[Any] = []
    memo: dict[int, Any] = {}
    seen: list[tuple[str, Any]] = []
    try:
        for count, (opcode, arg, _pos) in enumerate(pickletools.genops(data)):
            name = opcode.name
            if len(seen) < 4 and name not in _IGNORED and name not in _MEMO_WRITES:
                seen.append((name, arg))
            if count >= _MAX_PREVIEW_OPS:
                raise _NotSimple
            if name == "STOP":
                if len(stack) != 1:
                    raise _NotSimple
                return stack[0], None
            _step(name, arg, stack, memo)
    except Exception:
        pass
    return _UNKNOWN, _first_global(seen)


def _step(name: str, arg: Any, stack: list[Any], memo: dict[int, Any]) -> None:
    if name in _IGNORED:
        return
    if name in _LITERALS:
        stack.append(arg)
    elif name in _CONSTANTS:
        stack.append(_CONSTANTS[name])
    elif name in _EMPTY:
        stack.append(_EMPTY[name]())
    elif name == "MARK":
        stack.append(_MARK)
    elif name in _MEMO_WRITES:
        memo[len(memo) if name == "MEMOIZE" else arg] = stack[-1]
    elif name in ("GET", "BINGET", "LONG_BINGET"):
        stack.append(memo[arg])
    elif name in ("TUPLE1", "TUPLE2", "TUPLE3"):
        size = int(name[-1])
        items = stack[-size:]
        del stack[-size:]
        stack.append(tuple(_plain_items(items)))
    elif name in ("TUPLE", "LIST", "FROZENSET", "DICT"):
        items = _pop_mark(stack)
        if name == "TUPLE":
            stack.append(tuple(items))
        elif name == "LIST":
            stack.append(list(items))
        elif name == "FROZENSET":
            stack.append(frozenset(items))
        else:
            stack.append(dict(zip(items[::2], items[1::2], strict=True)))
    elif name == "APPEND":
        item = stack.pop()
        _target(stack, list).append(item)
    elif name == "APPENDS":
        items = _pop_mark(stack)
        _target(stack, list).extend(items)
    elif name == "SETITEM":
        value, key = stack.pop(), stack.pop()
        _target(stack, dict)[key] = value
    elif name == "SETITEMS":
        items = _pop_mark(stack)
        _target(stack, dict).update(zip(items[::2], items[1::2], strict=True))
    elif name == "ADDITEMS":
        items = _pop_mark(stack)
        _target(stack, set).update(items)
    else:
        raise _NotSimple(name)


def _plain_items(items: list[Any]) -> list[Any]:
    if any(item is _MARK for item in items):
        raise _NotSimple
    return items


def _pop_mark(stack: list[Any]) -> list[Any]:
    for index in range(len(stack) - 1, -1, -1):
        if stack[index] is _MARK:
            items = stack[index + 1 :]
            del stack[index:]
            return items
    raise _NotSimple


def _target(stack: list[Any], kind: type) -> Any:
    if not stack or type(stack[-1]) is not kind:
        raise _NotSimple
    return stack[-1]


def _first_global(seen: list[tuple[str, Any]]) -> str | None:
    """The class or function a pickle starts with, from its first opcodes, if that is clear."""
    if not seen:
        return None
    name = None
    if seen[0][0] == "GLOBAL":
        name = str(seen[0][1]).replace(" ", ".")
    elif len(seen) >= 3 and seen[2][0] == "STACK_GLOBAL":
        module, qualname = seen[0][1], seen[1][1]
        if isinstance(module, str) and isinstance(qualname, str):
            name = f"{module}.{qualname}"
    if name is None or name.startswith(("cloudpickle.", "copyreg.")):
        return None
    return name[:120]


class _Repr:
    """repr() with a character budget and a depth limit: safe on shared or deep structures."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.parts: list[str] = []
        self.size = 0

    def text(self, value: Any) -> str:
        with contextlib.suppress(_NotSimple):
            self._write(value, 0)
        return _truncate("".join(self.parts), self.limit)

    def head(self, value: Any) -> tuple[str, bool]:
        with contextlib.suppress(_NotSimple):
            self._write(value, 0)
        text = "".join(self.parts)
        return text[: self.limit], len(text) > self.limit

    def _emit(self, text: str) -> None:
        self.parts.append(text)
        self.size += len(text)
        if self.size > self.limit:
            raise _NotSimple

    def _write(self, value: Any, depth: int) -> None:
        if type(value) in _BRACKETS:
            if depth >= 8:
                self._emit("…")
                return
            open_, close = _BRACKETS[type(value)]
            if not value and type(value) in (set, frozenset):
                self._emit(f"{type(value).__name__}()")
                return
            self._emit(open_)
            for index, item in enumerate(value.items() if isinstance(value, dict) else value):
                if index:
                    self._emit(", ")
                if isinstance(value, dict):
                    self._write(item[0], depth + 1)
                    self._emit(": ")
                    self._write(item[1], depth + 1)
                else:
                    self._write(item, depth + 1)
            if type(value) is tuple and len(value) == 1:
                self._emit(",")
            self._emit(close)
        elif type(value) is int and value.bit_length() > 512:
            self._emit(f"<int of {value.bit_length()} bits>")
        elif type(value) in (str, bytes):
            shown = repr(value[: self.limit + 1])
            self._emit(shown)
        else:
            self._emit(repr(value))


_BRACKETS: dict[type, tuple[str, str]] = {
    list: ("[", "]"),
    tuple: ("(", ")"),
    set: ("{", "}"),
    frozenset: ("frozenset({", "})"),
    dict: ("{", "}"),
}
