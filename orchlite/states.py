"""Run states, which of them are final, and which transitions are allowed."""

from __future__ import annotations

from enum import Enum


class StateType(str, Enum):
    SCHEDULED = "SCHEDULED"
    PENDING = "PENDING"
    RUNNING = "RUNNING"
    RETRYING = "RETRYING"
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


TERMINAL = frozenset(
    {
        StateType.COMPLETED,
        StateType.CACHED,
        StateType.FAILED,
        StateType.CRASHED,
        StateType.CANCELLED,
        StateType.TIMED_OUT,
        StateType.SKIPPED,
    }
)
"""States a run never leaves."""

SUCCESS = frozenset({StateType.COMPLETED, StateType.CACHED})
"""Terminal states whose result is usable (and resumable)."""


def task_state_after(flow_state: StateType) -> StateType:
    """The state an unfinished task run ends in when its flow run ends in `flow_state`.

    FAILED, CRASHED and CANCELLED: the same. TIMED_OUT: CANCELLED (the flow's timeout cut
    the task run short; the task itself did not time out). Any other: CRASHED (a task run
    with no recorded outcome under a COMPLETED flow run).
    """
    if flow_state in (StateType.FAILED, StateType.CRASHED, StateType.CANCELLED):
        return flow_state
    if flow_state is StateType.TIMED_OUT:
        return StateType.CANCELLED
    return StateType.CRASHED


_ALLOWED: dict[StateType, frozenset[StateType]] = {
    StateType.SCHEDULED: frozenset(
        {StateType.PENDING, StateType.LATE, StateType.SKIPPED, StateType.CANCELLED}
    ),
    StateType.LATE: frozenset({StateType.PENDING, StateType.SKIPPED, StateType.CANCELLED}),
    StateType.PENDING: frozenset(
        {StateType.RUNNING, StateType.CACHED, StateType.CANCELLING} | TERMINAL
    ),
    StateType.RUNNING: frozenset(
        {StateType.RETRYING, StateType.CANCELLING, StateType.PENDING} | TERMINAL
    ),
    StateType.RETRYING: frozenset({StateType.RUNNING, StateType.CANCELLING} | TERMINAL),
    StateType.CANCELLING: frozenset({StateType.CANCELLED, StateType.CRASHED} | TERMINAL),
}


def can_transition(current: StateType, new: StateType) -> bool:
    """Whether a run in `current` may move to `new`; terminal states never move."""
    if current in TERMINAL:
        return False
    return new in _ALLOWED.get(current, frozenset())


class State:
    """The outcome of one attempt or run, as hooks and `retry_condition_fn` receive it.

    Mirrors Prefect's `State`: `type`, `name`, `message`, `is_completed()`, `is_failed()`,
    and `result()`, which returns the value or re-raises the attempt's exception.
    """

    __slots__ = ("_exception", "_value", "message", "timestamp", "type")

    def __init__(
        self,
        type: StateType,
        message: str | None = None,
        *,
        value: object = None,
        exception: BaseException | None = None,
        timestamp: float = 0.0,
    ) -> None:
        self.type = type
        self.message = message
        self._value = value
        self._exception = exception
        self.timestamp = timestamp

    @property
    def name(self) -> str:
        return self.type.value.replace("_", " ").title().replace(" ", "")

    def result(self, raise_on_failure: bool = True) -> object:
        if self._exception is not None:
            if raise_on_failure:
                raise self._exception
            return self._exception
        return self._value

    def is_completed(self) -> bool:
        return self.type in SUCCESS

    def is_failed(self) -> bool:
        return self.type in (StateType.FAILED, StateType.TIMED_OUT)

    def is_crashed(self) -> bool:
        return self.type is StateType.CRASHED

    def is_cancelled(self) -> bool:
        return self.type is StateType.CANCELLED

    def is_final(self) -> bool:
        return self.type in TERMINAL

    def __repr__(self) -> str:
        return f"{self.name}({self.message!r})" if self.message else f"{self.name}()"
