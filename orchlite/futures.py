"""Futures for submitted task runs: `result()`, `wait()`, `state`, `done()`, plus `wait` and
`as_completed` over many, with the names Prefect's `prefect.futures` uses.
"""

from __future__ import annotations

import concurrent.futures as cf
from collections.abc import Callable, Iterable, Iterator
from typing import Any, Generic, NamedTuple, TypeVar, cast

from .annotations import BaseAnnotation, allow_failure, unmapped
from .errors import UpstreamTaskError
from .states import State, StateName

R = TypeVar("R")


class TaskRunFuture(Generic[R]):
    """The eventual outcome of one submitted task run."""

    def __init__(self, inner: cf.Future[State], name: str, flow_run_id: str, position: int) -> None:
        self._inner = inner
        self.name = name
        self.flow_run_id = flow_run_id
        self.position = position

    @property
    def task_run_id(self) -> str:
        """`<flow run id>/<call position>`: how task runs are keyed in the store."""
        return f"{self.flow_run_id}/{self.position}"

    @property
    def state(self) -> State:
        """The final state if done, else a PENDING (queued) or RUNNING placeholder."""
        if self._inner.done():
            return self._final_state()
        running = self._inner.running()
        return State(StateName.RUNNING if running else StateName.PENDING)

    def done(self) -> bool:
        return self._inner.done()

    def wait(self, timeout: float | None = None) -> None:
        """Block until the task run ends (or `timeout` seconds pass); never raises its error."""
        cf.wait([self._inner], timeout=timeout)

    def result(self, timeout: float | None = None, raise_on_failure: bool = True) -> R:
        """The task's return value; re-raises its exception if it failed."""
        try:
            state = self._inner.result(timeout=timeout)
        except cf.TimeoutError:
            raise TimeoutError(f"task run {self.name!r} did not finish in {timeout} s") from None
        # A State holds any value; this future's task returns R (with raise_on_failure=False,
        # a failure's exception is returned in its place, as in Prefect).
        return cast(R, state.result(raise_on_failure=raise_on_failure))

    def add_done_callback(self, fn: Callable[[TaskRunFuture[R]], object]) -> None:
        self._inner.add_done_callback(lambda _: fn(self))

    def _final_state(self) -> State:
        error = self._inner.exception()
        if error is not None:  # the orchestration itself failed (a bug or a cancellation)
            return State(StateName.CRASHED, str(error), exception=error)
        return self._inner.result()

    def __repr__(self) -> str:
        return f"TaskRunFuture({self.name!r}, {self.state.stored_name.value})"


PrefectFuture = TaskRunFuture
"""Prefect's name for the same thing, so type hints in moved flow files keep working."""


class PrefectFutureList(list[TaskRunFuture[R]], Generic[R]):
    """The list `.map()` returns: also `wait()` for all and `result()` of all."""

    def wait(self, timeout: float | None = None) -> None:
        wait(self, timeout=timeout)

    def result(self, timeout: float | None = None, raise_on_failure: bool = True) -> list[R]:
        return [f.result(timeout=timeout, raise_on_failure=raise_on_failure) for f in self]


class DoneAndNotDoneFutures(NamedTuple):
    done: set[TaskRunFuture[Any]]
    not_done: set[TaskRunFuture[Any]]


def wait(
    futures: Iterable[TaskRunFuture[Any]], timeout: float | None = None
) -> DoneAndNotDoneFutures:
    """Wait for futures to finish; failures do not raise (inspect each future's state)."""
    by_inner = {f._inner: f for f in futures}
    done, not_done = cf.wait(list(by_inner), timeout=timeout)
    return DoneAndNotDoneFutures({by_inner[f] for f in done}, {by_inner[f] for f in not_done})


def as_completed(
    futures: Iterable[TaskRunFuture[R]], timeout: float | None = None
) -> Iterator[TaskRunFuture[R]]:
    """Yield futures as they finish, first finished first."""
    by_inner = {f._inner: f for f in futures}
    try:
        for inner in cf.as_completed(list(by_inner), timeout=timeout):
            yield by_inner[inner]
    except cf.TimeoutError:
        raise TimeoutError(f"futures did not finish in {timeout} s") from None


UpstreamFailed = UpstreamTaskError


def collect(value: Any, found: list[TaskRunFuture[Any]]) -> None:
    """Append every future inside `value` (lists, tuples, sets, dict values, annotations
    such as `allow_failure`) to `found`."""
    kind = type(value)
    if isinstance(value, TaskRunFuture):
        found.append(value)
    elif (
        kind is list
        or kind is tuple
        or kind is set
        or kind is frozenset
        or (isinstance(value, PrefectFutureList))
    ):
        for item in value:
            collect(item, found)
    elif kind is dict:
        for item in value.values():
            collect(item, found)
    elif isinstance(value, BaseAnnotation):
        collect(value.value, found)


FUTURE_LIKE = (TaskRunFuture, list, tuple, set, frozenset, dict, BaseAnnotation)
"""Argument types that may hold futures (checked before walking the arguments)."""


def resolve(value: Any, upstream: list[int], *, allow: bool = False) -> Any:
    """`value` with every future in it (at any depth of lists, tuples, sets and dict values)
    replaced by its result, waiting as needed; the positions waited for go to `upstream`.

    A failed future raises UpstreamFailed, unless wrapped in `allow_failure(...)`: then its
    exception is passed on as the value.
    """
    kind = type(value)
    if isinstance(value, TaskRunFuture):
        cf.wait([value._inner])
        upstream.append(value.position)
        state = value.state
        if state.is_completed():
            return state.result()
        if allow:
            return state.result(raise_on_failure=False)
        raise UpstreamFailed(f"upstream task run {value.name!r} ended {state.stored_name.value}")
    if isinstance(value, allow_failure):
        return resolve(value.value, upstream, allow=True)
    if isinstance(value, BaseAnnotation):
        return resolve(value.value, upstream, allow=allow)
    if kind is list or kind is tuple or kind is set or kind is frozenset:
        return kind(resolve(item, upstream, allow=allow) for item in value)
    if isinstance(value, PrefectFutureList):
        return [resolve(item, upstream, allow=allow) for item in value]
    if kind is dict:
        return {k: resolve(v, upstream, allow=allow) for k, v in value.items()}
    return value


def mapped_calls(
    name: str, args: tuple[Any, ...], kwargs: dict[str, Any]
) -> list[tuple[tuple[Any, ...], dict[str, Any]]]:
    """The (args, kwargs) of each call `.map()` makes: iterables are zipped element-wise,
    `unmapped(x)` and non-iterables are passed whole. Lengths must agree."""
    slots: list[tuple[str | int, Any, bool]] = []
    for index, value in enumerate(args):
        slots.append((index, *_mappable(value)))
    for key, value in kwargs.items():
        slots.append((key, *_mappable(value)))
    lengths = {
        str(k) if isinstance(k, str) else f"argument {k + 1}": len(v) for k, v, m in slots if m
    }
    if not lengths:
        raise ValueError(f"{name}.map() needs at least one iterable argument")
    if len(set(lengths.values())) > 1:
        shown = ", ".join(f"{k} has {n}" for k, n in lengths.items())
        raise ValueError(f"{name}.map() got iterables of different lengths: {shown}")
    count = next(iter(lengths.values()))
    calls = []
    for i in range(count):
        call_args = tuple(v[i] if m else v for k, v, m in slots if isinstance(k, int))
        call_kwargs = {k: (v[i] if m else v) for k, v, m in slots if isinstance(k, str)}
        calls.append((call_args, call_kwargs))
    return calls


def _label(slot: str | int) -> str:
    return slot if isinstance(slot, str) else f"argument {slot + 1}"


def _mappable(value: Any) -> tuple[Any, bool]:
    if isinstance(value, unmapped):
        return value.value, False
    if isinstance(value, (str, bytes, bytearray, TaskRunFuture)) or not isinstance(value, Iterable):
        return value, False
    if hasattr(value, "read"):  # a file or stream: a single value, not a sequence
        return value, False
    return list(value), True


def resolve_futures_to_states(value: Any) -> Any:
    """`value` with every future in it (at any depth of lists, tuples, sets and dict values)
    replaced by its final state, waiting as needed: what a flow's return value is judged by.
    """
    if isinstance(value, TaskRunFuture):
        cf.wait([value._inner])
        return value.state
    kind = type(value)
    if kind is list or kind is tuple or kind is set or kind is frozenset:
        return kind(resolve_futures_to_states(item) for item in value)
    if isinstance(value, PrefectFutureList):
        return [resolve_futures_to_states(item) for item in value]
    if kind is dict:
        return {k: resolve_futures_to_states(v) for k, v in value.items()}
    return value


def finished(state: State, name: str, flow_run_id: str, position: int) -> TaskRunFuture[Any]:
    """A future that is already done (a task submitted outside a flow ran at once)."""
    inner: cf.Future[State] = cf.Future()
    inner.set_result(state)
    return TaskRunFuture(inner, name, flow_run_id, position)


__all__ = [
    "DoneAndNotDoneFutures",
    "PrefectFuture",
    "PrefectFutureList",
    "TaskRunFuture",
    "as_completed",
    "resolve_futures_to_states",
    "wait",
]
