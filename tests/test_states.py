"""States: names and types, the transitions a run may take, results, and what a run's
returned value means for its state (Prefect's rules)."""

from __future__ import annotations

import pytest

from orchlite.errors import CancelledRun, FailedRun, MissingResult, PausedRun, UnfinishedRun
from orchlite.states import (
    SUCCESS,
    TERMINAL,
    Cached,
    Cancelled,
    Completed,
    Crashed,
    Failed,
    Paused,
    Pending,
    Running,
    State,
    StateName,
    StateType,
    TimedOut,
    aggregate,
    can_transition,
    returned_state,
    task_state_after,
)


@pytest.mark.parametrize(
    ("name", "kind", "display"),
    [
        (StateName.CACHED, StateType.COMPLETED, "Cached"),
        (StateName.TIMED_OUT, StateType.FAILED, "TimedOut"),
        (StateName.RETRYING, StateType.RUNNING, "Retrying"),
        (StateName.LATE, StateType.SCHEDULED, "Late"),
        (StateName.SKIPPED, StateType.CANCELLED, "Skipped"),
        (StateName.FAILED, StateType.FAILED, "Failed"),
    ],
)
def test_each_name_belongs_to_a_prefect_type_and_is_spelled_as_prefect_does(
    name: StateName, kind: StateType, display: str
) -> None:
    assert name.type is kind
    assert name.display_name == display
    assert str(name) == name.value


def test_terminal_states_never_move() -> None:
    for terminal in TERMINAL:
        assert not any(can_transition(terminal, new) for new in StateName)
    assert SUCCESS <= TERMINAL


@pytest.mark.parametrize(
    ("current", "new", "allowed"),
    [
        (StateName.SCHEDULED, StateName.PENDING, True),
        (StateName.SCHEDULED, StateName.RUNNING, False),
        (StateName.PENDING, StateName.CACHED, True),
        (StateName.RUNNING, StateName.RETRYING, True),
        (StateName.RETRYING, StateName.RUNNING, True),
        (StateName.RUNNING, StateName.PAUSED, True),
        (StateName.PAUSED, StateName.RUNNING, True),
        (StateName.CANCELLING, StateName.CANCELLED, True),
        (StateName.CANCELLING, StateName.RUNNING, False),
        (StateName.LATE, StateName.RUNNING, False),
    ],
)
def test_transitions(current: StateName, new: StateName, allowed: bool) -> None:
    assert can_transition(current, new) is allowed


@pytest.mark.parametrize(
    ("flow_state", "task_state"),
    [
        (StateName.FAILED, StateName.FAILED),
        (StateName.CRASHED, StateName.CRASHED),
        (StateName.CANCELLED, StateName.CANCELLED),
        (StateName.TIMED_OUT, StateName.CANCELLED),
        (StateName.COMPLETED, StateName.CRASHED),
    ],
)
def test_an_unfinished_task_run_ends_as_its_flow_run_says(
    flow_state: StateName, task_state: StateName
) -> None:
    assert task_state_after(flow_state) is task_state


def test_a_completed_state_gives_its_data() -> None:
    state = Completed(data=41)
    assert (state.type, state.name, state.result()) == (StateType.COMPLETED, "Completed", 41)
    assert state.is_completed() and state.is_final() and not state.is_failed()


def test_a_state_built_without_data_has_no_result() -> None:
    with pytest.raises(MissingResult):
        Completed().result()


def test_a_failed_state_raises_its_exception_or_returns_it() -> None:
    error = ValueError("boom")
    state = Failed(data=error)
    with pytest.raises(ValueError, match="boom"):
        state.result()
    assert state.result(raise_on_failure=False) is error


def test_a_failed_state_without_an_exception_stands_for_a_failed_run() -> None:
    state = Failed(message="rejected")
    assert isinstance(state.exception(), FailedRun)
    assert str(state.exception()) == "rejected"
    assert isinstance(Cancelled().exception(), CancelledRun)


@pytest.mark.parametrize(("state", "error"), [(Paused(), PausedRun), (Running(), UnfinishedRun)])
def test_paused_and_unfinished_states_have_no_result(
    state: State[object], error: type[Exception]
) -> None:
    with pytest.raises(error):
        state.result()


def test_a_finer_name_is_stored_as_itself_and_a_custom_one_as_its_type() -> None:
    assert Cached(data=1).stored_name is StateName.CACHED
    assert TimedOut().stored_name is StateName.TIMED_OUT
    rejected = Failed(name="Rejected", message="too big")
    assert rejected.stored_name is StateName.FAILED
    assert rejected.stored_message == "Rejected: too big"
    assert Failed(name="Rejected").stored_message == "Rejected"
    assert Failed(message="plain").stored_message == "plain"


def test_engine_states_from_a_state_name_hold_their_value() -> None:
    state = State(StateName.CACHED, value=3)
    assert state.from_run and state.type is StateType.COMPLETED and state.name == "Cached"
    assert state.result() == 3


@pytest.mark.parametrize(
    ("states", "name", "message"),
    [
        ([Completed(data=1), Completed(data=2)], StateName.COMPLETED, "All states completed."),
        ([Completed(data=1), Failed(), Crashed()], StateName.FAILED, "2/3 states failed."),
        ([Failed(), Cancelled()], StateName.CANCELLED, "1/2 states cancelled."),
        ([Completed(data=1), Paused()], StateName.PAUSED, "1/2 states paused."),
        ([Completed(data=1), Pending()], StateName.FAILED, "1/2 states are not final."),
    ],
)
def test_aggregate_follows_prefects_order(
    states: list[State[object]], name: StateName, message: str
) -> None:
    state = aggregate(states, data="returned")
    assert (state.stored_name, state.message, state.data) == (name, message, "returned")


def test_plain_data_does_not_decide_a_runs_state() -> None:
    assert returned_state(1) is None
    assert returned_state([]) is None
    assert returned_state({"a": Completed()}) is None  # dicts are data, as in Prefect
    assert returned_state([Completed(), 1]) is None


def test_a_state_the_run_built_is_its_state() -> None:
    built = Failed(message="no")
    assert returned_state(built) is built
    assert built.from_run


def test_states_of_other_runs_give_the_aggregate() -> None:
    other = State(StateName.FAILED, "child failed")
    state = returned_state([other, State(StateName.COMPLETED, value=1)])
    assert state is not None and state.stored_name is StateName.FAILED
    assert state.message == "1/2 states failed."


def test_a_returned_state_that_is_not_final_fails_the_run() -> None:
    state = returned_state(Pending())
    assert state is not None and state.stored_name is StateName.FAILED
    with pytest.raises(UnfinishedRun):
        state.result()
