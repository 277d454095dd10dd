"""The canonical form of values and the cache-key format.

This is a persisted contract: cache keys built from it are stored in `.orch/` and compared
across processes, machines and Python runs (whatever PYTHONHASHSEED is). Any change that alters
the bytes of a value that was hashable before must bump `HASH_VERSION`; keys of the old version
then simply miss.

Canonical bytes, version 1. `canonical_bytes(v)` is `E(v)`:

1. A *plain* value is a tree made only of exact `None`, `bool`, `int` (|v| < 2**2000), `float`,
   `str`, `list`, `tuple`, and `dict` with `str` keys, nested at most 64 deep. Its form is
   compact sorted-key JSON: `json.dumps(v, sort_keys=True, ensure_ascii=False,
   separators=(",", ":"))` encoded as UTF-8 (lone surrogates kept, "surrogatepass"). So `1`,
   `1.0` and `True` never collide (`1`, `1.0`, `true`), while a tuple and a list with the same
   items have the same form (both are JSON arrays): a deliberate choice, so that the common case
   costs one `json.dumps` call. This is the fast path.
2. Every other value is a tagged frame `b"\\0" + tag + b"\\0" + body`. JSON text never starts
   with a NUL byte, so frames and plain forms never collide. Inside a body, a child value or a
   string is written as a netstring `N(b) = ascii(len(b)) + b":" + b`, so bodies parse one way.

   tag                  body
   ---------------------------------------------------------------------------------------------
   int                  hex digits of an int too large for the plain form ("-" before if < 0)
   list                 N(E(item))... for a list or tuple that holds a non-plain item
   list:<class>         the same, for a list/tuple subclass (a namedtuple, ...)
   dict                 N(E(key)) N(E(value)) per item, items sorted by those bytes
   dict:<class>         the same, for a dict subclass
   set / set:<class>    N(E(item))... sorted by those bytes; set and frozenset are the same
   bytes                raw bytes of bytes, bytearray and memoryview (all three the same)
   str:<class>          UTF-8 of a str subclass; int:<class>: hex as above; float:<class>: repr()
   complex              repr()
   enum                 N(<class>) N(member name) N(E(member value))
   datetime/date/time   isoformat(), then "|" + str(tzinfo) when aware, "|fold=1" when folded
   timedelta            "<days>,<seconds>,<microseconds>"
   decimal / uuid       str()
   file                 N(str(path)) + sha256 of the file's bytes (32 raw bytes, read streamed)
   dir                  N(str(path)) + per entry below it, sorted by relative POSIX path:
                        N(rel) + b"f" + sha256 of a file | b"d" for a folder
                        | b"l" + N(link target) for a symlink to a folder (not followed)
                        | b"s" for a fifo, socket or device | b"m" for a dangling symlink
   path-missing         str(path) of a path that does not exist
   path-special         str(path) of a fifo, socket or device (never opened)
   ndarray              N(dtype) N(shape) + C-order raw bytes (exact numpy.ndarray only;
                        subclasses use the pickle form); for dtype=object:
                        N("O") N(shape) + N(E(item))... in C order
   npscalar             N(dtype) + raw bytes of a numpy scalar
   series / dataframe   N(E(name or column labels)) N(E(dtype strings)) + little-endian uint64
                        values of `pandas.util.hash_pandas_object(v, index=True)`
   dataclass            N(<class>) + N(E(field name)) N(E(field value)) per field, in order
   pickle               `cloudpickle.dumps(v, protocol=5)`: every other value

   `<class>` is `module.qualname`. A `pathlib.PurePath` is hashed by the content it names at
   hashing time *and* by its path string: the same content at another path is another key,
   because a task may use the path itself (write next to it, return it, log it).

Values that cannot be hashed stably raise `UnhashableInputError` naming the argument and the
fixes: a value cloudpickle refuses (locks, generators, sockets), an open file or stream
(`io.IOBase`, which cloudpickle would read from its current position), a path that cannot be
read. A reference cycle is hashed through the pickle form of the whole value. The pickle
form is stable for the same state, but may miss (never falsely hit) across processes for
objects whose pickled state holds sets of strings.

numpy and pandas are never imported here: they are only looked up in `sys.modules`, since a
value of their types implies they are loaded.

Cache keys: `hash_parts({...})` returns `"v1:sha256:<64 hex>"`, the sha256 of the header
`b"orchlite-cache-key\0v1\0"` followed by `N(key) + type byte (b"s" str, b"b" bytes) +
N(value)` for each part, in sorted key order.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import decimal
import enum
import hashlib
import io
import json
import os
import stat
import sys
import uuid
from collections.abc import Callable, Mapping
from pathlib import PurePath
from typing import Any

from .errors import UnhashableInputError

HASH_VERSION = 1
"""Version of the canonical form and of the cache-key format; part of every cache key."""

_INT_LIMIT = 1 << 2000  # decimal form < 640 digits: within every `sys.int_info` digit limit
_MAX_DEPTH = 64
_SCALARS = frozenset({str, int, float, bool, type(None)})
_CHUNK = 1 << 20
_PICKLE_PROTOCOL = 5
_KEY_HEADER = f"orchlite-cache-key\0v{HASH_VERSION}\0".encode()

_encoder = json.JSONEncoder(
    sort_keys=True, ensure_ascii=False, separators=(",", ":"), check_circular=False
)


def _make_json_encode() -> Callable[[Any], str]:
    """`_encoder.encode`, with the C encoder it makes on every call made once instead (the
    values encoded are plain: no cycles to look for, nothing for `default`)."""
    make = getattr(json.encoder, "c_make_encoder", None)
    if make is None:
        return _encoder.encode
    chunks = make(
        None,
        _encoder.default,
        json.encoder.encode_basestring,
        None,
        _encoder.key_separator,
        _encoder.item_separator,
        True,
        False,
        True,
    )
    return lambda value: "".join(chunks(value, 0))


_json_encode = _make_json_encode()

_FIXES = (
    "pass cache_key_fn=... to the task, or use a cache policy without INPUTS "
    "(cache_policy=TASK_SOURCE or cache_policy=NO_CACHE)"
)


class _Unhashable(Exception):
    """Internal: raised deep in the encoder, turned into UnhashableInputError at the top."""

    def __init__(self, value: object, reason: str) -> None:
        super().__init__(reason)
        self.type_name = type(value).__qualname__
        self.reason = " ".join(reason.split())[:200]
        self.path: list[tuple[str, object]] = []  # ("item", key) | ("attr", name); innermost first

    def where(self, name: str | None) -> tuple[str, str]:
        """(argument name, path inside it); with no name the outermost key is the name."""
        segments = list(reversed(self.path))
        if name is None:
            if not segments or segments[0][0] != "item":
                return "arguments", _format_path(segments)
            name, segments = str(segments[0][1]), segments[1:]
        return name, _format_path(segments)


class _Cycle(Exception):
    """Internal: the value contains a reference cycle."""


def hash_bytes(data: bytes) -> str:
    """sha256 hex digest of `data`."""
    return hashlib.sha256(data).hexdigest()


def hash_value(value: Any, *, name: str = "value") -> str:
    """sha256 hex digest of `canonical_bytes(value)`."""
    return hashlib.sha256(canonical_bytes(value, name=name)).hexdigest()


def hash_arguments(arguments: Mapping[str, Any]) -> str:
    """sha256 hex digest of a mapping of argument names to values.

    Equal to `hash_value(dict(arguments))`; an argument without a stable hash raises
    UnhashableInputError naming that argument.
    """
    args = arguments if type(arguments) is dict else dict(arguments)
    if _is_plain(args, 0):
        return hashlib.sha256(_json_encode(args).encode("utf-8", "surrogatepass")).hexdigest()
    try:
        data = _encode_top(args)
    except _Unhashable as exc:
        raise _error(exc.where(None), exc) from None
    return hashlib.sha256(data).hexdigest()


def canonical_bytes(value: Any, *, name: str = "value") -> bytes:
    """The canonical byte form of `value` (see the module docstring); stable across runs.

    `name` is the argument name used in the UnhashableInputError message.
    """
    if _is_plain(value, 0):
        return _json_encode(value).encode("utf-8", "surrogatepass")
    try:
        return _encode_top(value)
    except _Unhashable as exc:
        raise _error(exc.where(name), exc) from None


def hash_parts(parts: Mapping[str, str | bytes]) -> str:
    """The cache-key format: `"v1:sha256:<hex>"` over the sorted parts and HASH_VERSION."""
    chunks = [_KEY_HEADER]
    for key in sorted(parts):
        value = parts[key]
        label = _labels.get(key)
        if label is None:
            label = _net(key.encode("utf-8", "surrogatepass"))
            if len(_labels) < 256:
                _labels[key] = label
        if isinstance(value, str):
            raw = value.encode("utf-8", "surrogatepass")
            chunks.append(b"%ss%d:%s" % (label, len(raw), raw))
        else:
            raw = bytes(value)
            chunks.append(b"%sb%d:%s" % (label, len(raw), raw))
    return _KEY_PREFIX + hashlib.sha256(b"".join(chunks)).hexdigest()


_labels: dict[str, bytes] = {}
"""The netstrings of part names seen (policies use a handful): hash_parts runs per call."""
_KEY_PREFIX = f"v{HASH_VERSION}:sha256:"


# -- internals ----------------------------------------------------------------------------------


def _error(where: tuple[str, str], exc: _Unhashable) -> UnhashableInputError:
    name, path = where
    at = f" at {name}{path}" if path else ""
    return UnhashableInputError(
        f"cannot compute a cache key: argument '{name}'{at} holds a value of type "
        f"'{exc.type_name}' with no stable hash ({exc.reason}); {_FIXES}"
    )


def _format_path(segments: list[tuple[str, object]]) -> str:
    return "".join(f".{key}" if kind == "attr" else f"[{repr(key)[:40]}]" for kind, key in segments)


def _is_plain(value: Any, depth: int) -> bool:
    kind = type(value)
    if kind is int:
        number: int = value
        return -_INT_LIMIT < number < _INT_LIMIT
    if kind in _SCALARS:
        return True
    if depth >= _MAX_DEPTH:
        return False
    if kind is list or kind is tuple:
        depth += 1
        return all(_is_plain(item, depth) for item in value)
    if kind is dict:
        depth += 1
        for key, item in value.items():
            if type(key) is not str or not _is_plain(item, depth):
                return False
        return True
    return False


def _net(data: bytes) -> bytes:
    return b"%d:%s" % (len(data), data)


def _frame(tag: str, body: bytes) -> bytes:
    return b"\0" + tag.encode() + b"\0" + body


def _class_name(kind: type) -> str:
    return f"{kind.__module__}.{kind.__qualname__}"


def _encode_top(value: Any) -> bytes:
    try:
        return _encode(value, set())
    except (_Cycle, RecursionError):
        return _frame("pickle", _pickle(value))


def _encode(value: Any, active: set[int]) -> bytes:
    if _is_plain(value, 0):
        return _json_encode(value).encode("utf-8", "surrogatepass")
    kind = type(value)
    if kind is int:
        return _frame("int", format(value, "x").encode())
    if isinstance(value, enum.Enum):
        body = _net(_class_name(kind).encode()) + _net(str(value.name).encode())
        return _frame("enum", body + _net(_encode(value.value, active)))
    special = _encode_library_value(value, active)
    if special is not None:
        return special
    if isinstance(value, (list, tuple, dict, set, frozenset)):
        return _encode_container(value, active)
    if isinstance(value, (bytes, bytearray, memoryview)):
        return _frame("bytes", bytes(value))
    if isinstance(value, str):
        return _frame("str:" + _class_name(kind), value.encode("utf-8", "surrogatepass"))
    if isinstance(value, int):
        return _frame("int:" + _class_name(kind), format(int(value), "x").encode())
    if isinstance(value, float):
        return _frame("float:" + _class_name(kind), repr(float(value)).encode())
    if isinstance(value, complex):
        return _frame("complex", repr(complex(value)).encode())
    if isinstance(value, (dt.datetime, dt.time)):
        text = value.isoformat()
        if value.tzinfo is not None:
            text += f"|{value.tzinfo}"
        if value.fold:
            text += "|fold=1"
        return _frame("datetime" if isinstance(value, dt.datetime) else "time", text.encode())
    if isinstance(value, dt.date):
        return _frame("date", value.isoformat().encode())
    if isinstance(value, dt.timedelta):
        text = f"{value.days},{value.seconds},{value.microseconds}"
        return _frame("timedelta", text.encode())
    if isinstance(value, decimal.Decimal):
        return _frame("decimal", str(value).encode())
    if isinstance(value, uuid.UUID):
        return _frame("uuid", str(value).encode())
    if isinstance(value, PurePath):
        return _encode_path(value)
    if isinstance(value, io.IOBase):
        # cloudpickle would read a file's content from its current position: not stable.
        raise _Unhashable(value, "an open file or stream")
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return _encode_dataclass(value, active)
    return _frame("pickle", _pickle(value))


def _encode_container(value: Any, active: set[int]) -> bytes:
    ident = id(value)
    if ident in active:
        raise _Cycle
    active.add(ident)
    try:
        kind = type(value)
        if isinstance(value, (list, tuple)):
            base = "list"
            parts = []
            for index, item in enumerate(value):
                parts.append(_net(_child(item, active, ("item", index))))
            body = b"".join(parts)
        elif isinstance(value, dict):
            base = "dict"
            pairs = []
            for key, item in value.items():
                encoded_key = _child(key, active, None)
                pairs.append(_net(encoded_key) + _net(_child(item, active, ("item", key))))
            body = b"".join(sorted(pairs))
        else:
            base = "set"
            body = b"".join(sorted(_net(_child(item, active, None)) for item in value))
        exact = kind in (list, tuple, dict, set, frozenset)
        return _frame(base if exact else f"{base}:{_class_name(kind)}", body)
    finally:
        active.discard(ident)


def _child(value: Any, active: set[int], segment: tuple[str, object] | None) -> bytes:
    try:
        return _encode(value, active)
    except _Unhashable as exc:
        if segment is not None:
            exc.path.append(segment)
        raise


def _encode_dataclass(value: Any, active: set[int]) -> bytes:
    ident = id(value)
    if ident in active:
        raise _Cycle
    active.add(ident)
    try:
        parts = [_net(_class_name(type(value)).encode())]
        for field in dataclasses.fields(value):
            item = getattr(value, field.name)
            parts.append(_net(_json_encode(field.name).encode("utf-8", "surrogatepass")))
            parts.append(_net(_child(item, active, ("attr", field.name))))
        return _frame("dataclass", b"".join(parts))
    finally:
        active.discard(ident)


def _encode_library_value(value: Any, active: set[int]) -> bytes | None:
    """numpy and pandas values, when those libraries are already loaded; else None."""
    np = sys.modules.get("numpy")
    if np is not None:
        if type(value) is np.ndarray:
            shape = _net(repr(tuple(value.shape)).encode())
            if value.dtype == object:
                items = [_net(_child(item, active, None)) for item in value.flat]
                return _frame("ndarray", _net(b"O") + shape + b"".join(items))
            if value.dtype.hasobject:
                return None  # structured with object fields: pickle form
            dtype = value.dtype.str if value.dtype.fields is None else repr(value.dtype.descr)
            return _frame("ndarray", _net(dtype.encode()) + shape + value.tobytes(order="C"))
        if isinstance(value, np.generic) and not value.dtype.hasobject:
            return _frame("npscalar", _net(value.dtype.str.encode()) + value.tobytes())
    pd = sys.modules.get("pandas")
    if pd is not None and isinstance(value, (pd.DataFrame, pd.Series)):
        try:
            hashed = pd.util.hash_pandas_object(value, index=True).to_numpy().astype("<u8")
        except TypeError:
            return None  # cells pandas cannot hash (lists, dicts): pickle form
        if isinstance(value, pd.DataFrame):
            tag, labels = "dataframe", list(value.columns)
            dtypes = [str(kind) for kind in value.dtypes]
        else:
            tag, labels, dtypes = "series", value.name, [str(value.dtype)]
        meta = _net(_encode(labels, active)) + _net(_encode(dtypes, active))
        return _frame(tag, meta + hashed.tobytes())
    return None


def _encode_path(path: PurePath) -> bytes:
    text = str(path)
    name = _net(text.encode("utf-8", "surrogatepass"))
    try:
        info = os.stat(text)
    except (FileNotFoundError, NotADirectoryError):
        return _frame("path-missing", text.encode("utf-8", "surrogatepass"))
    except OSError as exc:
        raise _Unhashable(path, f"cannot read {text}: {exc}") from None
    if stat.S_ISREG(info.st_mode):
        return _frame("file", name + _file_digest(path, text))
    if stat.S_ISDIR(info.st_mode):
        return _frame("dir", name + _dir_body(path, text))
    return _frame("path-special", text.encode("utf-8", "surrogatepass"))


def _file_digest(path: PurePath, text: str) -> bytes:
    digest = hashlib.sha256()
    buffer = bytearray(_CHUNK)
    view = memoryview(buffer)
    try:
        with open(text, "rb", buffering=0) as handle:
            while True:
                count = handle.readinto(buffer)
                if not count:
                    break
                digest.update(view[:count])
    except OSError as exc:
        raise _Unhashable(path, f"cannot read {text}: {exc}") from None
    return digest.digest()


def _dir_body(path: PurePath, root: str) -> bytes:
    entries: list[tuple[str, bytes]] = []

    def fail(exc: OSError) -> None:
        raise _Unhashable(path, f"cannot read {exc.filename}: {exc.strerror}")

    for folder, dirnames, filenames in os.walk(root, onerror=fail):
        rel_folder = os.path.relpath(folder, root)
        for dirname in dirnames:
            full = os.path.join(folder, dirname)
            rel = _rel(rel_folder, dirname)
            if os.path.islink(full):
                entries.append((rel, b"l" + _net(os.fsencode(os.readlink(full)))))
            else:
                entries.append((rel, b"d"))
        for filename in filenames:
            full = os.path.join(folder, filename)
            rel = _rel(rel_folder, filename)
            try:
                mode = os.stat(full).st_mode
            except FileNotFoundError:
                entries.append((rel, b"m"))
                continue
            except OSError as exc:
                raise _Unhashable(path, f"cannot read {full}: {exc}") from None
            if stat.S_ISREG(mode):
                entries.append((rel, b"f" + _file_digest(path, full)))
            else:
                entries.append((rel, b"s"))
    entries.sort()
    return b"".join(_net(rel.encode("utf-8", "surrogatepass")) + kind for rel, kind in entries)


def _rel(folder: str, name: str) -> str:
    rel = name if folder == os.curdir else os.path.join(folder, name)
    return rel.replace(os.sep, "/")


def _pickle(value: Any) -> bytes:
    import cloudpickle  # imported here: ~35 ms, and most keys never need it

    try:
        return cloudpickle.dumps(value, protocol=_PICKLE_PROTOCOL)
    except RecursionError:
        raise _Unhashable(value, "nested too deeply to pickle") from None
    except Exception as exc:
        raise _Unhashable(value, str(exc) or type(exc).__name__) from None
