"""Turn `-p key=value` strings and JSON parameters into a flow function's typed arguments.

Coercion follows the parameter's annotation. A string from the command line is converted;
a value that already has the right type (from a JSON file, or from Python) is kept.

- str, int, float (an int is accepted), bool (true/false, 1/0, yes/no, on/off, any case)
- datetime.date, datetime.datetime (ISO 8601, a trailing `Z` means UTC), pathlib paths
- Enum subclasses: by value, then by member name
- list[X], tuple[X, ...], tuple[X, Y], set[X], frozenset[X], dict[K, V]: a string is read as
  JSON; for lists, tuples and sets a string that is not JSON is split on commas (`a,b,c`)
- Literal[...]: one of the listed values (the string "1" matches the literal 1)
- X | None: JSON null gives None; a string "null"/"none" gives None only when it does not
  fit X, so a `str | None` parameter keeps the text "null"
- other unions: a value whose type is a member is kept, else the members are tried in order
- pydantic models (anything with `model_validate`): a dict, or a JSON string
- no annotation, or `Any`: the value as given (a command-line value stays a string)
- other classes: an instance is kept; a string is passed to the class (Decimal, UUID, ...)
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import difflib
import enum
import inspect
import json
import math
import types
import typing
from collections import abc
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path, PurePath
from typing import Any

from orchlite.errors import ParameterError
from orchlite.isotime import parse_iso_datetime
from orchlite.redaction import redact_data

_TRUE = frozenset({"true", "1", "yes", "on"})
_FALSE = frozenset({"false", "0", "no", "off"})
_NULL = frozenset({"null", "none"})
_REPR_LIMIT = 200
_UNCHECKED = (str, typing.TypeVar, typing.ForwardRef)


class _Mismatch(Exception):
    """A value does not fit a type; turned into one ParameterError about the whole value."""


def parse_assignments(pairs: Sequence[str]) -> dict[str, str]:
    """`["a=1", "b=x=y"]` → `{"a": "1", "b": "x=y"}`; a later key wins."""
    out: dict[str, str] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        key = key.strip()
        if not sep or not key.isidentifier():
            raise ParameterError(f"bad parameter '{pair}': expected key=value")
        out[key] = value
    return out


def load_params_file(path: Path) -> dict[str, Any]:
    """A JSON object of parameters."""
    try:
        text = Path(path).read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ParameterError(f"no such parameters file: {path}") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ParameterError(f"cannot read parameters file {path}: {exc}") from None
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ParameterError(f"{path}:{exc.lineno}:{exc.colno}: invalid JSON: {exc.msg}") from None
    except RecursionError:
        raise ParameterError(f"{path}: invalid JSON: nested too deeply") from None
    if not isinstance(data, dict):
        raise ParameterError(f"{path}: expected a JSON object, got {type(data).__name__}")
    return data


def coerce_value(annotation: Any, value: Any, *, name: str) -> Any:
    """`value` converted to `annotation`, or ParameterError naming the parameter."""
    try:
        return _coerce(annotation, value)
    except _Mismatch:
        shown = repr(value)
        if len(shown) > 80:
            shown = shown[:77] + "..."
        expected = _type_name(annotation)
        if isinstance(annotation, type) and issubclass(annotation, enum.Enum):
            expected = "one of " + ", ".join(repr(m.value) for m in annotation)
        raise ParameterError(
            f"parameter '{name}': expected {expected}, got {shown}", names=(name,)
        ) from None


def _coerce(tp: Any, value: Any) -> Any:
    if tp in (Any, inspect.Parameter.empty, object) or isinstance(tp, _UNCHECKED):
        return value  # nothing to check against (an unresolved string annotation included)
    if tp is None:
        tp = type(None)
    origin = typing.get_origin(tp)
    args = typing.get_args(tp)
    if origin is typing.Annotated:
        return _coerce(args[0], value)
    if hasattr(tp, "__supertype__"):  # typing.NewType
        return _coerce(tp.__supertype__, value)
    if origin is typing.Union or origin is types.UnionType:
        return _coerce_union(args, value)
    if origin is typing.Literal:
        for choice in args:
            if value == choice and type(value) is type(choice):
                return choice
        for choice in args:
            if isinstance(value, str) and value == str(choice):
                return choice
        raise _Mismatch
    if tp is type(None):
        if value is None:
            return None
        raise _Mismatch
    if origin is not None or tp in (list, tuple, set, frozenset, dict):
        return _coerce_container(origin or tp, args, value)
    if not isinstance(tp, type):
        return value  # Callable, Protocol aliases and the like: not checked
    return _coerce_class(tp, value)


def _coerce_union(members: tuple[Any, ...], value: Any) -> Any:
    if value is None:
        if type(None) in members:
            return None
        raise _Mismatch
    others = [m for m in members if m is not type(None)]
    for member in others:
        if isinstance(member, type) and type(value) is member:
            return value
    for member in others:
        try:
            return _coerce(member, value)
        except _Mismatch:
            continue
    if type(None) in members and isinstance(value, str) and value.strip().lower() in _NULL:
        return None
    raise _Mismatch


def _coerce_container(container: Any, args: tuple[Any, ...], value: Any) -> Any:
    kind = _container_kind(container)
    if kind is None:  # a generic we do not know (a user's Generic class, Callable, ...)
        return _coerce_class(container, value) if isinstance(container, type) else value
    if isinstance(value, str):
        value = _parse_container_text(value, split=kind is not dict)
    if kind is dict:
        if not isinstance(value, Mapping):
            raise _Mismatch
        key_t, val_t = args if len(args) == 2 else (Any, Any)
        return {_coerce(key_t, k): _coerce(val_t, v) for k, v in value.items()}
    if not isinstance(value, (list, tuple, set, frozenset)):
        raise _Mismatch
    items = list(value)
    if kind is tuple and args and not (len(args) == 2 and args[1] is Ellipsis):
        if len(items) != len(args):
            raise _Mismatch
        return tuple(_coerce(t, v) for t, v in zip(args, items, strict=True))
    item_t = args[0] if args else Any
    return kind(_coerce(item_t, v) for v in items)


def _container_kind(container: Any) -> type | None:
    """The concrete type to build for a container annotation (`Sequence` → list)."""
    if not isinstance(container, type):
        return None
    if container in (list, tuple, set, frozenset, dict):
        return container
    if issubclass(container, abc.Mapping):
        return dict
    if issubclass(container, abc.Set):
        return set
    if container in (abc.Sequence, abc.MutableSequence, abc.Iterable, abc.Collection):
        return list
    return None


def _parse_container_text(text: str, *, split: bool) -> Any:
    """JSON first; for sequences, text that is not a JSON array is split on commas."""
    try:
        parsed = json.loads(text)
    except json.JSONDecodeError:
        parsed = text
    except RecursionError:  # nested deeper than Python recurses: no parameter wants that
        raise _Mismatch from None
    if not split or isinstance(parsed, list):
        if parsed is text:
            raise _Mismatch
        return parsed
    stripped = text.strip()
    return [part.strip() for part in stripped.split(",")] if stripped else []


def _coerce_class(tp: type[Any], value: Any) -> Any:
    if tp is bool:
        if isinstance(value, bool):
            return value
        if isinstance(value, int) and value in (0, 1):
            return bool(value)
        if isinstance(value, str) and value.strip().lower() in _TRUE | _FALSE:
            return value.strip().lower() in _TRUE
        raise _Mismatch
    if isinstance(value, bool) and tp in (int, float):
        raise _Mismatch
    if tp is int:
        if isinstance(value, float) and value.is_integer():
            return int(value)
        return _convert(int, value, (int,), lambda v: int(v.strip()))
    if tp is float:
        return _convert(float, value, (int, float), lambda v: float(v.strip()))
    if tp is str:
        if isinstance(value, str):
            return value
        raise _Mismatch
    if tp is dt.datetime:
        return _convert(dt.datetime, value, (dt.datetime,), parse_iso_datetime)
    if tp is dt.date:
        if isinstance(value, dt.date) and not isinstance(value, dt.datetime):
            return value
        return _convert(dt.date, value, (), lambda v: dt.date.fromisoformat(v.strip()))
    if issubclass(tp, enum.Enum):
        return _coerce_enum(tp, value)
    if issubclass(tp, PurePath):
        return _convert(tp, value, (PurePath,), tp)
    if hasattr(tp, "model_validate"):  # a pydantic model; pydantic is imported by its user
        return _coerce_model(tp, value)
    try:
        if isinstance(value, tp):
            return value
    except TypeError:
        return value
    if isinstance(value, str):
        try:
            return tp(value)
        except (TypeError, ValueError, ArithmeticError):
            pass
    raise _Mismatch


def _convert(tp: type, value: Any, accepted: tuple[type, ...], parse: Callable[[str], Any]) -> Any:
    if isinstance(value, accepted):
        return value if type(value) is tp else tp(value)
    if isinstance(value, str):
        try:
            return parse(value)
        except (TypeError, ValueError, OverflowError):
            raise _Mismatch from None
    raise _Mismatch


def _coerce_enum(tp: type[enum.Enum], value: Any) -> Any:
    if isinstance(value, tp):
        return value
    try:
        return tp(value)
    except (ValueError, TypeError):
        pass
    for member in tp:
        if isinstance(value, str) and value == str(member.value):
            return member
    if isinstance(value, str) and value in tp.__members__:
        return tp.__members__[value]
    raise _Mismatch


def _coerce_model(tp: Any, value: Any) -> Any:
    if isinstance(value, tp):
        return value
    if isinstance(value, str):
        try:
            value = json.loads(value)
        except (json.JSONDecodeError, RecursionError):
            raise _Mismatch from None
    try:
        return tp.model_validate(value)
    except ValueError:  # pydantic.ValidationError is a ValueError
        raise _Mismatch from None


def _type_name(tp: Any) -> str:
    """`list[int]`, `int | None`, `one of 'a', 'b'`: the type as a user would write it."""
    origin, args = typing.get_origin(tp), typing.get_args(tp)
    if tp in (Any, inspect.Parameter.empty):
        return "any value"
    if tp is None or tp is type(None):
        return "None"
    if tp is Ellipsis:
        return "..."
    if origin is typing.Literal:
        return "one of " + ", ".join(repr(a) for a in args)
    if origin is typing.Annotated:
        return _type_name(args[0])
    if origin is typing.Union or origin is types.UnionType:
        return " | ".join(_type_name(a) for a in args)
    if origin is not None and args:
        return f"{_type_name(origin)}[{', '.join(_type_name(a) for a in args)}]"
    return getattr(tp, "__name__", None) or str(tp)


def bind_parameters(
    fn: Callable[..., Any], given: Mapping[str, Any], *, flow_name: str
) -> dict[str, Any]:
    """Every argument of `fn` by name, in signature order: given values coerced, defaults applied.

    Extra names are allowed only when `fn` takes `**kwargs`, each value coerced to the
    annotation of `**kwargs` (`**options: int` makes `-p a=1` give `options == {"a": 1}`).
    The values of `*args` are given under its name, as a sequence (a JSON array, or
    comma-separated text from the command line), each coerced to the annotation of `*args`
    (`*args: int` makes `-p args=1,2` give `args == (1, 2)`), as Prefect records them.
    """
    sig = inspect.signature(fn)
    named = {
        p.name: p
        for p in sig.parameters.values()
        if p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD)
    }
    extra = next((p for p in sig.parameters.values() if p.kind is p.VAR_KEYWORD), None)
    rest = next((p for p in sig.parameters.values() if p.kind is p.VAR_POSITIONAL), None)
    if extra is None:
        accepted = list(sig.parameters)  # the named ones, and *args by its name
        for key in given:
            if key not in accepted:
                takes = f"it takes: {', '.join(accepted)}" if accepted else "it takes no parameters"
                hint = difflib.get_close_matches(key, accepted, n=1)
                tip = f"; did you mean '{hint[0]}'?" if hint else ""
                raise ParameterError(
                    f"unknown parameter '{key}' for flow '{flow_name}' ({takes}){tip}",
                    names=(key,),
                )
    missing = [n for n, p in named.items() if n not in given and p.default is p.empty]
    if len(missing) == 1:
        raise ParameterError(
            f"missing parameter '{missing[0]}' for flow '{flow_name}'", names=(missing[0],)
        )
    if missing:
        listed = ", ".join(f"'{n}'" for n in missing)
        raise ParameterError(
            f"missing parameters {listed} for flow '{flow_name}'", names=tuple(missing)
        )
    variadic = {p.name: p for p in (extra, rest) if p is not None}
    hints = _type_hints(fn, {**named, **variadic})
    out: dict[str, Any] = {}
    for pname, param in sig.parameters.items():
        if param is rest and pname in given:
            out[pname] = _coerce_rest(hints.get(pname, Any), given[pname], pname)
        elif pname not in named:
            continue
        elif pname in given and given[pname] is not param.default:
            # (A default passed back in, as when a bound call is bound again, is kept as is:
            # `day: date = None` must not fail on its own default.)
            out[pname] = coerce_value(hints.get(pname, Any), given[pname], name=pname)
        elif pname in given:
            out[pname] = given[pname]
        else:
            out[pname] = param.default
    if extra is not None:
        hint = hints.get(extra.name, Any)
        out.update((k, coerce_value(hint, v, name=k)) for k, v in given.items() if k not in out)
    return out


def _coerce_rest(hint: Any, value: Any, name: str) -> tuple[Any, ...]:
    """The values of `*name` (a sequence, or text: a JSON array or comma-separated), each
    coerced to its annotation `hint`."""
    try:
        values = _parse_container_text(value, split=True) if isinstance(value, str) else value
    except _Mismatch:
        values = None
    if not isinstance(values, (list, tuple)):
        raise ParameterError(
            f"parameter '{name}' (*{name}): expected a list of values, got {_short_repr(value)}",
            names=(name,),
        )
    try:
        return tuple(coerce_value(hint, v, name=f"{name}[{i}]") for i, v in enumerate(values))
    except ParameterError as exc:  # about one of its values: the parameter is `name`
        raise ParameterError(str(exc), names=(name,)) from None


def call_form(sig: inspect.Signature, parameters: dict[str, Any]) -> Any:
    """How a flow body is called with its bound `parameters`: as keywords (the dict itself),
    unless it takes `*args`: then as `BoundArguments`, whose `.args` carry the named
    positional parameters and the values of `*args` in order."""
    rest = next((p for p in sig.parameters.values() if p.kind is p.VAR_POSITIONAL), None)
    if rest is None:
        return parameters
    arguments: dict[str, Any] = {}
    spread: dict[str, Any] = {}
    for name, value in parameters.items():
        param = sig.parameters.get(name)
        if param is None or param.kind is param.VAR_KEYWORD:
            spread[name] = value
        else:
            arguments[name] = value
    arguments[rest.name] = tuple(arguments.get(rest.name, ()))
    extra = next((p for p in sig.parameters.values() if p.kind is p.VAR_KEYWORD), None)
    if extra is not None:
        arguments[extra.name] = spread
    return inspect.BoundArguments(sig, arguments)


def call_arguments(sig: inspect.Signature, arguments: Mapping[str, Any]) -> dict[str, Any]:
    """`BoundArguments.arguments` as the keywords of a call: what `**kwargs` collected is
    spread out (so `kw(a=1)` gives `{"a": 1}`, not `{"kwargs": {"a": 1}}`)."""
    out = dict(arguments)
    for param in sig.parameters.values():
        if param.kind is param.VAR_KEYWORD:
            out.update(out.pop(param.name, {}))
    return out


def _type_hints(fn: Callable[..., Any], named: Mapping[str, inspect.Parameter]) -> dict[str, Any]:
    """Annotations with string forms resolved; one that cannot be resolved is left unchecked."""
    target = inspect.unwrap(fn)
    try:
        return typing.get_type_hints(target, include_extras=True)
    except Exception:
        pass
    scope = dict(getattr(target, "__globals__", {}))
    hints: dict[str, Any] = {}
    for pname, param in named.items():
        ann = param.annotation
        if isinstance(ann, str):
            try:
                ann = eval(ann, scope)  # what get_type_hints does, one name at a time
            except Exception:
                ann = Any
        hints[pname] = ann
    return hints


def jsonable_parameters(params: Mapping[str, Any]) -> dict[str, Any]:
    """A JSON-serializable copy of `params` for recording, secret values as `***`; never
    raises."""
    try:
        data = {str(k): _jsonable(v, 0) for k, v in params.items()}
    except Exception:
        return {"__error__": "parameters could not be recorded"}
    return redact_data(data)  # type: ignore[no-any-return]


def _jsonable(value: Any, depth: int) -> Any:
    if value is None or isinstance(value, (bool, int, str)):
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else str(value)
    if depth > 20:
        return _short_repr(value)
    if isinstance(value, enum.Enum):
        return _jsonable(value.value, depth + 1)
    if isinstance(value, (dt.date, dt.time)):
        return value.isoformat()
    if isinstance(value, PurePath) or type(value).__module__ in ("uuid", "decimal"):
        return str(value)
    if isinstance(value, Mapping):
        return {str(k): _jsonable(v, depth + 1) for k, v in value.items()}
    if isinstance(value, (list, tuple, set, frozenset)):
        items = sorted(value, key=repr) if isinstance(value, (set, frozenset)) else value
        return [_jsonable(v, depth + 1) for v in items]
    if hasattr(value, "model_dump") and not isinstance(value, type):
        try:
            return value.model_dump(mode="json")
        except Exception:
            pass
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        fields = {f.name: getattr(value, f.name, None) for f in dataclasses.fields(value)}
        return _jsonable(fields, depth + 1)
    return _short_repr(value)


def _short_repr(value: Any) -> str:
    try:
        text = repr(value)
    except Exception:
        text = f"<{type(value).__name__} object>"
    return text if len(text) <= _REPR_LIMIT else text[: _REPR_LIMIT - 3] + "..."
