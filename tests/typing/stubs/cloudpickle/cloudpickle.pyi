"""cloudpickle's implementation module: its private helpers are read with getattr."""

from typing import Any

def __getattr__(name: str) -> Any: ...
