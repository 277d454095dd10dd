"""Pickling for the trip to a worker: the user's own code travels by value.

A body sent to another process travels as cloudpickle bytes. Functions and classes of the
flow's own file, or of a project module (often loaded by path, under a name a worker cannot
import), are pickled by value; installed packages and the standard library by reference.
"""

from __future__ import annotations

import io
import os
import pickle
import sys
import sysconfig
import types
from collections.abc import Callable
from typing import Any

import cloudpickle

from .worker import ORCHLITE_DIR

_DYNAMIC_CLASS_REDUCE = getattr(cloudpickle.cloudpickle, "_dynamic_class_reduce", None)
_PICKLER_HAS_BY_VALUE = _DYNAMIC_CLASS_REDUCE is not None and hasattr(
    cloudpickle.Pickler, "_dynamic_function_reduce"
)


class _Pickler(cloudpickle.Pickler):
    """cloudpickle, with the functions and classes of some modules pickled by value.

    `cloudpickle.register_pickle_by_value` would do the same for every pickle in the
    process, results in the store included; this keeps it to what is sent to workers.
    """

    def __init__(self, file: Any, by_value: frozenset[str]) -> None:
        super().__init__(file, protocol=pickle.HIGHEST_PROTOCOL)
        self._by_value = by_value

    def reducer_override(self, obj: Any) -> Any:
        if self._by_value:
            if type(obj) is types.FunctionType and obj.__module__ in self._by_value:
                return self._dynamic_function_reduce(obj)  # type: ignore[attr-defined]
            if isinstance(obj, type) and obj.__module__ in self._by_value:
                return _DYNAMIC_CLASS_REDUCE(obj)  # type: ignore[misc]
        return super().reducer_override(obj)


def dumps(obj: Any, by_value: frozenset[str]) -> bytes:
    """`obj` as cloudpickle bytes, with the modules named in `by_value` pickled by value."""
    if not by_value:
        return cloudpickle.dumps(obj, protocol=pickle.HIGHEST_PROTOCOL)
    buffer = io.BytesIO()
    _Pickler(buffer, by_value).dump(obj)
    return buffer.getvalue()


def _installed_dirs() -> tuple[str, ...]:
    paths = sysconfig.get_paths()
    dirs = {paths[key] for key in ("stdlib", "platstdlib", "purelib", "platlib") if key in paths}
    dirs.add(ORCHLITE_DIR)
    return tuple(os.path.join(os.path.realpath(d), "") for d in dirs)


_INSTALLED = _installed_dirs()


def by_value_modules(fn: Callable[..., Any]) -> frozenset[str]:
    """The module of `fn` when it is the user's own code (a flow file, a project module):
    a worker may not be able to import it by name, so its functions and classes travel by
    value. Installed packages and the standard library travel by reference."""
    name = getattr(fn, "__module__", None)
    module = sys.modules.get(name) if name else None
    if name is None or module is None or name == "__main__":
        return frozenset()  # cloudpickle already pickles these by value
    file = getattr(module, "__file__", None)
    if not file or os.path.realpath(file).startswith(_INSTALLED):
        return frozenset()
    if not _PICKLER_HAS_BY_VALUE:
        cloudpickle.register_pickle_by_value(module)
        return frozenset()
    return frozenset({name})
