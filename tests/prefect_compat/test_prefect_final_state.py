"""How a flow run's final state is decided, as Prefect 3's "Manage states" page describes
("Final state determination"): an exception that escapes the body fails the run; a returned
state, future, or list/tuple/set of them decides it; anything else completes it.

Each test is written from that documentation (and checked against Prefect 3.9.1): the flow
body is the one a Prefect user writes, with only the imports changed.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from orchlite import flow, task
from orchlite.futures import wait
from orchlite.logging import setup_logging
from orchlite.states import Completed, Failed, State, StateType
from tests.helpers.recorded import last_run


@pytest.fixture(autouse=True)
def home(orch_home: Path) -> Path:
    setup_logging(console=False)
    return orch_home


@task
def ok(x: int) -> int:
    return x


@task
def bad(x: int) -> int:
    raise ValueError(f"bad {x}")


def test_a_flow_that_waits_and_returns_the_successes_completes() -> None:
    @flow
    def keep_the_good_ones() -> list[int]:
        futures = [ok.submit(1), bad.submit(2), ok.submit(3)]
        wait(futures)
        return [f.result() for f in futures if f.state.is_completed()]

    assert keep_the_good_ones() == [1, 3]
    assert last_run().state == "COMPLETED"


def test_failed_task_runs_the_flow_neither_returned_nor_raised_from_do_not_fail_it() -> None:
    @flow
    def ignores_a_failure() -> int:
        bad.submit(1)
        bad(2, return_state=True)
        return 3

    assert ignores_a_failure() == 3
    assert last_run().state == "COMPLETED"


def test_an_exception_that_escapes_the_body_fails_the_flow_and_is_raised() -> None:
    @flow
    def lets_it_through() -> int:
        return bad(1)

    with pytest.raises(ValueError, match="bad 1"):
        lets_it_through()
    assert last_run().state == "FAILED"
    state = lets_it_through(return_state=True)
    assert state.is_failed()
    assert isinstance(state.result(raise_on_failure=False), ValueError)


def test_a_returned_failed_future_fails_the_flow_with_the_tasks_exception() -> None:
    @flow
    def returns_it() -> object:
        return bad.submit(1)

    with pytest.raises(ValueError, match="bad 1"):
        returns_it()
    run = last_run()
    assert (run.state, run.state_message) == ("FAILED", "1/1 states failed.")


def test_a_returned_completed_future_gives_its_state() -> None:
    @flow
    def returns_it() -> object:
        return ok.submit(7)

    returned = returns_it()
    assert isinstance(returned, State)
    assert returned.is_completed() and returned.result() == 7
    run = last_run()
    assert (run.state, run.state_message) == ("COMPLETED", "All states completed.")


def test_a_returned_list_of_futures_decides_by_count_and_is_returned_as_states() -> None:
    @flow
    def some_fail() -> object:
        return [ok.submit(1), bad.submit(2), ok.submit(3)]

    states = some_fail()  # Prefect returns the states, even though the run failed
    assert [s.type for s in states] == [StateType.COMPLETED, StateType.FAILED, StateType.COMPLETED]
    run = last_run()
    assert (run.state, run.state_message) == ("FAILED", "1/3 states failed.")
    state = some_fail(return_state=True)
    with pytest.raises(ValueError, match="bad 2"):
        state.result()

    @flow
    def all_pass() -> object:
        return (ok.submit(1), ok.submit(2))

    assert [s.result() for s in all_pass()] == [1, 2]
    assert last_run().state_message == "All states completed."


def test_a_dict_or_a_mixed_list_of_futures_does_not_decide_the_state() -> None:
    @flow
    def in_a_dict() -> object:
        return {"a": ok.submit(1), "b": bad.submit(2)}

    returned = in_a_dict()
    assert returned["b"].is_failed()
    assert last_run().state == "COMPLETED"

    @flow
    def mixed() -> object:
        return [bad.submit(1), 5]

    assert mixed()[1] == 5
    assert last_run().state == "COMPLETED"


def test_a_returned_manual_state_is_the_flows_state() -> None:
    @flow
    def says_fine() -> object:
        return Completed(message="fine", data=7)

    assert says_fine() == 7
    run = last_run()
    assert (run.state, run.state_message) == ("COMPLETED", "fine")

    @flow
    def says_no() -> object:
        return Failed(message="nope")

    from orchlite.exceptions import FailedRun

    with pytest.raises(FailedRun, match="nope"):
        says_no()
    run = last_run()
    assert (run.state, run.state_message) == ("FAILED", "nope")


def test_orch_run_exits_by_the_final_state(tmp_path: Path) -> None:
    """`orch run` reports the final state in its exit code, even when the body returned
    normally (a returned list of failed futures)."""
    import subprocess
    import sys

    (tmp_path / "pipeline.py").write_text(
        "from orchlite import flow, task\n"
        "@task\n"
        "def bad(x):\n"
        "    raise ValueError(x)\n"
        "@flow\n"
        "def returns_failures():\n"
        "    return [bad.submit(1)]\n"
        "@flow\n"
        "def waits_on_failures():\n"
        "    bad.submit(1).wait()\n"
    )
    orch = Path(sys.executable).with_name("orch")

    def run(target: str) -> int:
        done = subprocess.run(
            [orch, "run", f"pipeline.py:{target}"], cwd=tmp_path, capture_output=True, timeout=60
        )
        return done.returncode

    assert run("returns_failures") == 1
    assert run("waits_on_failures") == 0
