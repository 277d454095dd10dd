"""Argument wrappers for `.map()` and `.submit()`: `unmapped` and `allow_failure` (Prefect's)."""

from __future__ import annotations

from typing import Any, Generic, TypeVar

T = TypeVar("T")


class BaseAnnotation(Generic[T]):
    __slots__ = ("value",)

    def __init__(self, value: T) -> None:
        self.value = value

    def unwrap(self) -> T:
        return self.value

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.value!r})"


class unmapped(BaseAnnotation[T]):
    """Pass the same value to every mapped call: `task.map(items, static=unmapped(x))`."""

    def __getitem__(self, _: Any) -> T:
        return self.value


class allow_failure(BaseAnnotation[T]):
    """Run the downstream task even if this upstream future failed (it receives the error)."""


class quote(BaseAnnotation[T]):
    """Pass this value to the task as it is: futures and states inside it are not looked for
    (nor waited for), which also spares the walk through a large structure."""
