"""Futures for submitted task runs: `result()`, `wait()`, `state`, `done()`, plus `wait` and
`as_completed` over many, with the names Prefect's `prefect.futures` uses.
"""

from __future__ import annotations

import concurrent.futures as cf
import copy
import dataclasses
import sys
from collections import OrderedDict
from collections.abc import Callable, Iterable, Iterator
from typing import Any, Generic, NamedTuple, TypeVar, cast

from .annotations import BaseAnnotation, allow_failure, quote, unmapped
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


class InputResolutionError(Exception):
    """A container holding futures could not be rebuilt with their results."""


_ATOMS = frozenset({int, float, complex, str, bytes, bool, type(None)})
"""Types that never hold futures: skipped without a look."""

_CONTAINERS = (TaskRunFuture, State, BaseAnnotation, list, tuple, set, frozenset, dict)
"""Types whose values are walked (besides dataclasses and pydantic models)."""

Leaf = Callable[[Any, bool], Any]
"""What a walk does with a future or a state it meets: (value, allowed to fail) -> value."""


def may_hold_futures(value: Any) -> bool:
    """Whether `value` is of a kind the walk looks into; from its type alone, so a call with
    plain arguments pays for nothing else."""
    kind = type(value)
    if kind in _ATOMS:
        return False
    return isinstance(value, _CONTAINERS) or _is_record(kind)


def collect(value: Any, found: list[TaskRunFuture[Any]]) -> None:
    """Append every future inside `value` to `found` (the places `resolve` looks)."""

    def note(item: Any, allow: bool) -> Any:
        if isinstance(item, TaskRunFuture):
            found.append(item)
        return item

    _walk(value, note, False, {})


def resolve(value: Any, upstream: list[int], *, states: bool = False) -> Any:
    """`value` with every future in it replaced by its result, waiting as needed; the
    positions waited for go to `upstream`. With `states`, a `State` is replaced by its
    result too, as Prefect does with task arguments.

    Futures are found where Prefect looks for them: in lists, tuples (named ones too), sets,
    frozensets, dicts (keys and values), dataclasses and pydantic models, at any depth, and
    inside `unmapped(...)` and `allow_failure(...)`, which are unwrapped. Other objects are
    passed as they are, as is anything inside `quote(...)`. A container with nothing to
    replace is passed itself; one with something to replace is rebuilt (a shallow copy).

    A failed future or state raises UpstreamFailed, unless inside `allow_failure(...)`: then
    its exception is passed on as the value.
    """

    def result_of(item: Any, allow: bool) -> Any:
        if isinstance(item, TaskRunFuture):
            cf.wait([item._inner])  # not `item.wait()`: a dependency is not "awaited" by the flow
            upstream.append(item.position)
            state = item.state
            problem = f"upstream task run {item.name!r} ended {state.type.value}"
        elif states:
            state = item
            problem = f"a state passed to this task run is {state.type.value}"
        else:
            return item
        if state.is_completed():
            return state.result()
        if allow:
            return state.result(raise_on_failure=False)
        raise UpstreamFailed(problem)

    return _walk(value, result_of, False, {})


def _walk(value: Any, leaf: Leaf, allow: bool, memo: dict[int, Any]) -> Any:
    """`value` with `leaf` applied to each future and state inside it; `memo` maps the ids
    of the objects met so far to what they became (an object met twice is walked once, and a
    cycle meets the original)."""
    if type(value) in _ATOMS:
        return value
    key = id(value)
    if key in memo:
        return memo[key]
    if isinstance(value, (TaskRunFuture, State)):
        result = leaf(value, allow)
    elif isinstance(value, BaseAnnotation):
        if isinstance(value, quote):
            return value.value
        return _walk(value.value, leaf, allow or isinstance(value, allow_failure), memo)
    else:
        memo[key] = value
        try:
            result = _rebuild(value, leaf, allow, memo)
        except (UpstreamFailed, InputResolutionError):
            raise
        except Exception as exc:
            raise InputResolutionError(
                f"could not rebuild a {type(value).__name__} with the results of the futures "
                f"in it ({exc}); pass it inside `quote(...)` to have it passed as it is"
            ) from exc
    memo[key] = result
    return result


def _rebuild(value: Any, leaf: Leaf, allow: bool, memo: dict[int, Any]) -> Any:
    """A container walked: itself if nothing in it changed, else a copy with the changes."""
    kind = type(value)
    if isinstance(value, (list, tuple, set, frozenset)):
        items = [item if type(item) in _ATOMS else _walk(item, leaf, allow, memo) for item in value]
        if all(new is old for new, old in zip(items, value, strict=True)):
            return value
        if isinstance(value, PrefectFutureList):
            return items
        if isinstance(value, tuple) and hasattr(kind, "_fields"):  # a named tuple
            return kind(*items)
        return kind(items)
    if kind is dict or kind is OrderedDict:
        pairs = [
            (_walk(k, leaf, allow, memo), _walk(v, leaf, allow, memo)) for k, v in value.items()
        ]
        if all(
            k is old_k and v is old_v
            for (k, v), (old_k, old_v) in zip(pairs, value.items(), strict=True)
        ):
            return value
        return kind(pairs)
    if _is_dataclass_type(kind):
        return _rebuild_dataclass(value, leaf, allow, memo)
    if _is_pydantic_type(kind):
        return _rebuild_model(value, leaf, allow, memo)
    return value


def _rebuild_dataclass(value: Any, leaf: Leaf, allow: bool, memo: dict[int, Any]) -> Any:
    changed = {}
    for field in dataclasses.fields(value):
        old = getattr(value, field.name)
        new = _walk(old, leaf, allow, memo)
        if new is not old:
            changed[field.name] = new
    if not changed:
        return value
    # A copy with the fields set, not a new instance: fields left out of __init__, frozen
    # classes and __post_init__ side effects all stay as they were.
    copied = copy.copy(value)
    for name, new in changed.items():
        object.__setattr__(copied, name, new)
    return copied


def _rebuild_model(value: Any, leaf: Leaf, allow: bool, memo: dict[int, Any]) -> Any:
    fields = dict(value.__dict__)
    fields.update(value.__pydantic_extra__ or {})
    changed = {}
    for name, old in fields.items():
        new = _walk(old, leaf, allow, memo)
        if new is not old:
            changed[name] = new
    if not changed:
        return value
    return value.model_copy(update=changed)  # no validation, as Prefect's model_construct


def _is_record(kind: type) -> bool:
    return _is_dataclass_type(kind) or _is_pydantic_type(kind)


def _is_dataclass_type(kind: type) -> bool:
    return hasattr(kind, "__dataclass_fields__")


def _is_pydantic_type(kind: type) -> bool:
    """Whether `kind` is a pydantic model class; pydantic is never imported for the answer
    (if it is not loaded, no value can be a model)."""
    module = sys.modules.get("pydantic.main")
    return module is not None and issubclass(kind, module.BaseModel)


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
