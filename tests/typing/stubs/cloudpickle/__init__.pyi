"""Types for cloudpickle, which ships none: what orchlite calls, typed; the rest Any."""

import pickle
from collections.abc import Callable
from types import ModuleType
from typing import Any

from _typeshed import SupportsWrite

from . import cloudpickle as cloudpickle

__version__: str

_BufferCallback = Callable[[pickle.PickleBuffer], Any] | None

class Pickler(pickle.Pickler):
    def __init__(
        self,
        file: SupportsWrite[bytes],
        protocol: int | None = None,
        buffer_callback: _BufferCallback = None,
    ) -> None: ...

CloudPickler = Pickler

def dumps(
    obj: Any, protocol: int | None = None, buffer_callback: _BufferCallback = None
) -> bytes: ...
def dump(
    obj: Any,
    file: SupportsWrite[bytes],
    protocol: int | None = None,
    buffer_callback: _BufferCallback = None,
) -> None: ...

loads = pickle.loads
load = pickle.load

def register_pickle_by_value(module: ModuleType) -> None: ...
def unregister_pickle_by_value(module: ModuleType) -> None: ...
def __getattr__(name: str) -> Any: ...
