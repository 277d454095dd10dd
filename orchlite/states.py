"""Run states: Prefect's `State` objects and state types, and the state names the store keeps.

Two enums, as in Prefect:

- `StateType`, Prefect's nine types (`COMPLETED`, `FAILED`, ...): what `state.type` is, so
  code that compares types gets Prefect's answers (a cache hit is `COMPLETED`, a timeout is
  `FAILED`).
- `StateName`, the finer names the store records and the CLI and TUI show (`CACHED`,
  `TIMED_OUT`, `RETRYING`, `SKIPPED`, ...). Each has one `StateType`; transitions and the
  terminal set are defined on names.

`State` is what hooks, `retry_condition_fn`, `return_state=True` and futures hand to user
code; `Completed(...)`, `Failed(...)` and the other constructors build one, and a task or flow
that returns one ends in it.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Iterable
from enum import Enum
from typing import TYPE_CHECKING, Any, Generic, Literal, Protocol, TypeGuard, overload

from .errors import CancelledRun, CrashedRun, FailedRun, MissingResult, PausedRun, UnfinishedRun

if TYPE_CHECKING:
    from typing_extensions import TypeVar

    R = TypeVar("R", default=Any)  # a bare `State` means `State[Any]`
else:
    from typing import TypeVar

    R = TypeVar("R")


class StateType(str, Enum):
    """Prefect's state types."""

    SCHEDULED = "SCHEDULED"
    PENDING = "PENDING"
    RUNNING = "RUNNING"
    COMPLETED = "COMPLETED"
    FAILED = "FAILED"
    CANCELLED = "CANCELLED"
    CRASHED = "CRASHED"
    PAUSED = "PAUSED"
    CANCELLING = "CANCELLING"

    def __str__(self) -> str:
        return self.value


class StateName(str, Enum):
    """The state a run is recorded in: a `StateType` or a finer name of one."""

    SCHEDULED = "SCHEDULED"
    PENDING = "PENDING"
    RUNNING = "RUNNING"
    RETRYING = "RETRYING"
    PAUSED = "PAUSED"
    COMPLETED = "COMPLETED"
    CACHED = "CACHED"
    FAILED = "FAILED"
    CRASHED = "CRASHED"
    CANCELLING = "CANCELLING"
    CANCELLED = "CANCELLED"
    TIMED_OUT = "TIMED_OUT"
    LATE = "LATE"
    SKIPPED = "SKIPPED"

    def __str__(self) -> str:
        return self.value

    @property
    def type(self) -> StateType:
        """The Prefect state type this name belongs to."""
        return _TYPE_OF[self]

    @property
    def display_name(self) -> str:
        """The name as Prefect spells it: `Cached`, `TimedOut`, `Retrying`."""
        return _DISPLAY_NAME[self]

    @classmethod
    def parse(cls, text: str) -> StateName:
        """The state a user typed, in any case (`failed`, `TIMED_OUT`, `TimedOut`); a
        ValueError naming every state otherwise."""
        wanted = text.strip().upper()
        for name in cls:
            if wanted in (name.value, name.display_name.upper()):
                return name
        names = ", ".join(name.value for name in cls)
        raise ValueError(f"unknown state {text.strip()!r} (one of: {names})")


_FINER_TYPE = {
    StateName.RETRYING: StateType.RUNNING,
    StateName.CACHED: StateType.COMPLETED,
    StateName.TIMED_OUT: StateType.FAILED,
    StateName.LATE: StateType.SCHEDULED,
    StateName.SKIPPED: StateType.CANCELLED,
}
# Read on every state built: tables, not enum lookups and string work.
_TYPE_OF = {name: _FINER_TYPE.get(name) or StateType(name.value) for name in StateName}
_DISPLAY_NAME = {name: name.value.replace("_", " ").title().replace(" ", "") for name in StateName}
_NAME_BY_DISPLAY = {name.display_name: name for name in StateName}

TERMINAL = frozenset(
    {
        StateName.COMPLETED,
        StateName.CACHED,
        StateName.FAILED,
        StateName.CRASHED,
        StateName.CANCELLED,
        StateName.TIMED_OUT,
        StateName.SKIPPED,
    }
)
"""States a run never leaves."""

SUCCESS = frozenset({StateName.COMPLETED, StateName.CACHED})
"""Terminal states whose result is usable (and resumable)."""


def task_state_after(flow_state: StateName) -> StateName:
    """The state an unfinished task run ends in when its flow run ends in `flow_state`.

    FAILED, CRASHED and CANCELLED: the same. TIMED_OUT: CANCELLED (the flow's timeout cut
    the task run short; the task itself did not time out). Any other: CRASHED (a task run
    with no recorded outcome under a COMPLETED flow run).
    """
    if flow_state in (StateName.FAILED, StateName.CRASHED, StateName.CANCELLED):
        return flow_state
    if flow_state is StateName.TIMED_OUT:
        return StateName.CANCELLED
    return StateName.CRASHED


FINAL_TYPES = frozenset(
    {StateType.COMPLETED, StateType.FAILED, StateType.CRASHED, StateType.CANCELLED}
)

_ALLOWED: dict[StateName, frozenset[StateName]] = {
    StateName.SCHEDULED: frozenset(
        {StateName.PENDING, StateName.LATE, StateName.SKIPPED, StateName.CANCELLED}
    ),
    StateName.LATE: frozenset({StateName.PENDING, StateName.SKIPPED, StateName.CANCELLED}),
    StateName.PENDING: frozenset(
        {StateName.RUNNING, StateName.CACHED, StateName.CANCELLING} | TERMINAL
    ),
    StateName.RUNNING: frozenset(
        {StateName.RETRYING, StateName.CANCELLING, StateName.PENDING, StateName.PAUSED} | TERMINAL
    ),
    StateName.PAUSED: frozenset(
        {StateName.RUNNING, StateName.PENDING, StateName.CANCELLING} | TERMINAL
    ),
    StateName.RETRYING: frozenset({StateName.RUNNING, StateName.CANCELLING} | TERMINAL),
    StateName.CANCELLING: frozenset({StateName.CANCELLED, StateName.CRASHED} | TERMINAL),
}


def can_transition(current: StateName, new: StateName) -> bool:
    """Whether a run in `current` may move to `new`; terminal states never move."""
    if current in TERMINAL:
        return False
    return new in _ALLOWED.get(current, frozenset())


_MISSING: Any = object()


class State(Generic[R]):
    """The state of a run, as Prefect's `State`: `type`, `name`, `message`, `data`,
    `timestamp`, the `is_*()` checks and `result()`.

    `State(StateType.COMPLETED, data=1)` (or `Completed(data=1)`) is a state built by user
    code; the engine builds its own from a `StateName` (`State(StateName.CACHED, ...)`), and
    those count as a run's states when a flow returns them (see `orchlite.engine`).
    """

    __slots__ = ("_has_data", "data", "from_run", "message", "name", "timestamp", "type")

    def __init__(
        self,
        type: StateType | StateName,
        message: str | None = None,
        *,
        name: str | None = None,
        data: Any = _MISSING,
        value: Any = None,
        exception: BaseException | None = None,
        timestamp: float | None = None,
    ) -> None:
        self.from_run = isinstance(type, StateName)
        if self.from_run:
            self.type: StateType = _TYPE_OF[type]  # type: ignore[index]
            self.name: str = name or _DISPLAY_NAME[type]  # type: ignore[index]
        else:
            self.type = StateType(type)
            self.name = name or self.type.title()
        self.message = message
        if data is _MISSING:
            data = exception if exception is not None else value
            self._has_data = self.from_run
        else:
            self._has_data = True
        self.data: Any = data
        self.timestamp = time.time() if timestamp is None else timestamp

    def adopt(self) -> State[R]:
        """Mark this state as a run's own (the run returned it): its data is the result."""
        self.from_run = True
        self._has_data = True
        return self

    @property
    def stored_name(self) -> StateName:
        """The name the store records for this state (a custom name records its type)."""
        known = _NAME_BY_DISPLAY.get(self.name)
        if known is not None and known.type is self.type:
            return known
        return StateName(self.type.value)

    @property
    def stored_message(self) -> str | None:
        """The message the store records: a custom name that the store's state names cannot
        hold (`Failed(name="Rejected")`) leads it, as `Rejected: <message>`."""
        if self.name == self.stored_name.display_name:
            return self.message
        return f"{self.name}: {self.message}" if self.message else self.name

    @overload
    def result(self, raise_on_failure: Literal[True] = ...) -> R: ...

    @overload
    def result(self, raise_on_failure: bool = ...) -> R | BaseException: ...

    def result(self, raise_on_failure: bool = True) -> R | BaseException:
        """The run's value; a failed, crashed or cancelled run's exception is raised (or,
        with `raise_on_failure=False`, returned). Paused and unfinished runs have no result.
        """
        if self.type is StateType.PAUSED:
            raise PausedRun("Run is paused, its result is not available.")
        if self.type not in FINAL_TYPES:
            raise UnfinishedRun(f"Run is in {self.type.value} state, its result is not available.")
        if self.type is not StateType.COMPLETED:
            error = self.exception()
            if raise_on_failure:
                raise error
            return error
        if not self._has_data:
            raise MissingResult("State data is missing: this state was created without data.")
        return self.data  # type: ignore[no-any-return]

    def exception(self) -> BaseException:
        """The exception a failed, crashed or cancelled state stands for (Prefect's
        `get_state_exception`): its own, the first failed one of the states it holds, or a
        `FailedRun` / `CrashedRun` / `CancelledRun` with its message."""
        data = self.data
        if isinstance(data, BaseException):
            return data
        if isinstance(data, State) and not data.is_completed():
            return data.exception()
        if is_state_iterable(data):
            for state in data:
                if state.type in (StateType.FAILED, StateType.CRASHED, StateType.CANCELLED):
                    return state.exception()
        wrapper, default = _WRAPPERS.get(self.type, (FailedRun, "Run failed."))
        return wrapper(data if isinstance(data, str) else self.message or default)

    def is_scheduled(self) -> bool:
        return self.type is StateType.SCHEDULED

    def is_pending(self) -> bool:
        return self.type is StateType.PENDING

    def is_running(self) -> bool:
        return self.type is StateType.RUNNING

    def is_paused(self) -> bool:
        return self.type is StateType.PAUSED

    def is_completed(self) -> bool:
        return self.type is StateType.COMPLETED

    def is_failed(self) -> bool:
        return self.type is StateType.FAILED

    def is_crashed(self) -> bool:
        return self.type is StateType.CRASHED

    def is_cancelling(self) -> bool:
        return self.type is StateType.CANCELLING

    def is_cancelled(self) -> bool:
        return self.type is StateType.CANCELLED

    def is_final(self) -> bool:
        return self.type in FINAL_TYPES

    def __repr__(self) -> str:
        return f"{self.name}(message={self.message!r}, type={self.type.value})"

    def __str__(self) -> str:
        return f"{self.name}({self.message!r})" if self.message else f"{self.name}()"


_WRAPPERS: dict[StateType, tuple[type[BaseException], str]] = {
    StateType.FAILED: (FailedRun, "Run failed."),
    StateType.CRASHED: (CrashedRun, "Run crashed."),
    StateType.CANCELLED: (CancelledRun, "Run cancelled."),
}


def is_state_iterable(value: object) -> TypeGuard[Iterable[State[Any]]]:
    """A non-empty list, tuple or set of states only (Prefect's rule: not dicts)."""
    return (
        type(value) in (list, tuple, set)
        and bool(value)
        and all(isinstance(item, State) for item in value)  # type: ignore[attr-defined]
    )


def aggregate(states: Iterable[State[Any]], data: Any) -> State[Any]:
    """The state of a run that returned these states of other runs (Prefect's aggregate
    rule): completed if all completed, else cancelled, paused or failed, with a count;
    `data` (what the run returned) is its result."""
    states = list(states)
    total = len(states)
    counts = Counter(state.type for state in states)
    failed = counts[StateType.FAILED] + counts[StateType.CRASHED]
    if counts[StateType.COMPLETED] == total:
        name, message = StateName.COMPLETED, "All states completed."
    elif counts[StateType.CANCELLED]:
        name, message = (
            StateName.CANCELLED,
            f"{counts[StateType.CANCELLED]}/{total} states cancelled.",
        )
    elif counts[StateType.PAUSED]:
        name, message = StateName.PAUSED, f"{counts[StateType.PAUSED]}/{total} states paused."
    elif failed:
        name, message = StateName.FAILED, f"{failed}/{total} states failed."
    else:
        unfinished = sum(1 for state in states if not state.is_final())
        name, message = StateName.FAILED, f"{unfinished}/{total} states are not final."
    return State(name, message, data=data)


def returned_state(value: object) -> State[Any] | None:
    """The state a run ends in when its function returned `value`, if `value` decides it
    (Prefect's `return_value_to_state`); None for plain data, which completes the run.

    A state the function built itself is the run's state. A state of another run, or a
    non-empty list, tuple or set made only of states, gives the aggregate state.
    """
    if value is None:  # what most tasks return
        return None
    if isinstance(value, State) and not value.from_run:
        state = value.adopt()
    elif isinstance(value, State):
        state = aggregate([value], data=value)
    elif is_state_iterable(value):
        state = aggregate(value, data=value)
    else:
        return None
    return state if state.is_final() else _unfinished(state)


def _unfinished(state: State[Any]) -> State[Any]:
    """A run that returned a state that is not final (`Pending()`, `Paused()`, ...) ends
    FAILED: nothing would move it on later (Prefect leaves that to its server), and its
    `result()` raises `UnfinishedRun`, as the returned state's would."""
    error = UnfinishedRun(f"the run returned a state that is not final: {state}")
    return State(StateName.FAILED, str(error), exception=error)


class StateConstructor(Protocol):
    """`Completed(message=..., name=..., data=...)` and its siblings."""

    def __call__(
        self, *, message: str | None = None, name: str | None = None, data: Any = ...
    ) -> State[Any]: ...


def _constructor(kind: StateType, default_name: str | None = None) -> StateConstructor:
    def build(
        *, message: str | None = None, name: str | None = None, data: Any = _MISSING
    ) -> State[Any]:
        return State(kind, message, name=name or default_name, data=data)

    build.__name__ = build.__qualname__ = default_name or kind.title()
    build.__doc__ = f"A {kind.value} state named {build.__name__!r} (Prefect's constructor)."
    return build


Scheduled = _constructor(StateType.SCHEDULED)
Late = _constructor(StateType.SCHEDULED, "Late")
AwaitingRetry = _constructor(StateType.SCHEDULED, "AwaitingRetry")
Pending = _constructor(StateType.PENDING)
Running = _constructor(StateType.RUNNING)
Retrying = _constructor(StateType.RUNNING, "Retrying")
Paused = _constructor(StateType.PAUSED)
Completed = _constructor(StateType.COMPLETED)
Cached = _constructor(StateType.COMPLETED, "Cached")
Failed = _constructor(StateType.FAILED)
TimedOut = _constructor(StateType.FAILED, "TimedOut")
Crashed = _constructor(StateType.CRASHED)
Cancelling = _constructor(StateType.CANCELLING)
Cancelled = _constructor(StateType.CANCELLED)
