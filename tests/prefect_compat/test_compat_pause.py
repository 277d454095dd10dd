"""`pause_flow_run` / `resume_flow_run`, as Prefect 3's "pause or suspend a flow run" docs
describe them: the run goes PAUSED until resumed; with `wait_for_input` the resume must
carry input the `RunInput` model accepts, and the pause returns it; past its timeout the
run fails with `FlowPauseTimeout`; only a flow run itself can pause."""

from __future__ import annotations

import threading
import time
from pathlib import Path
from typing import Any

import pytest

from orchlite import flow, pause_flow_run, resume_flow_run, task
from orchlite.errors import UsageError
from orchlite.exceptions import FlowPauseTimeout
from orchlite.input import RunInput
from orchlite.logging import setup_logging
from tests.helpers.recorded import store


@pytest.fixture(autouse=True)
def home(orch_home: Path) -> Path:
    setup_logging(console=False)
    return orch_home


class Approval(RunInput):
    approved: bool
    note: str = ""


def paused_run(timeout: float = 15) -> str:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        runs = store().list_flow_runs(state="PAUSED")
        if runs:
            return runs[0].id
        time.sleep(0.02)
    raise AssertionError("no run paused")


def in_thread(fn: Any) -> tuple[threading.Thread, list[Any]]:
    outcome: list[Any] = []

    def target() -> None:
        try:
            outcome.append(fn())
        except BaseException as exc:
            outcome.append(exc)

    thread = threading.Thread(target=target)
    thread.start()
    return thread, outcome


def test_a_paused_run_waits_for_input_its_model_accepts() -> None:
    @flow
    def deploy(version: str) -> str:
        answer = pause_flow_run(wait_for_input=Approval, timeout=60)
        assert isinstance(answer, Approval)
        return f"{version}: approved={answer.approved} note={answer.note!r}"

    thread, outcome = in_thread(lambda: deploy("1.2"))
    run_id = paused_run()
    assert "orch resume" in (store().get_flow_run(run_id).state_message or "")
    with pytest.raises(UsageError, match="refused the input: approved: Input should be a valid"):
        resume_flow_run(run_id, run_input={"approved": "perhaps"})
    with pytest.raises(UsageError, match="note"):
        resume_flow_run(run_id[:10], run_input={"approved": True, "note": ["not", "text"]})
    assert store().get_flow_run(run_id).state == "PAUSED"  # refused input: still waiting
    resume_flow_run(run_id, run_input={"approved": True, "note": "ship it"})
    thread.join(30)
    assert outcome == ["1.2: approved=True note='ship it'"]
    run = store().get_flow_run(run_id)
    assert run.state == "COMPLETED"
    states = [h.state for h in store().history(run_id) if h.position is None]
    assert states == ["PENDING", "RUNNING", "PAUSED", "RUNNING", "COMPLETED"]


def test_a_pause_without_input_resumes_with_none() -> None:
    @flow
    def wait_for_ok() -> object:
        return pause_flow_run(timeout=60)

    thread, outcome = in_thread(wait_for_ok)
    resume_flow_run(paused_run())
    thread.join(30)
    assert outcome == [None]


def test_a_pause_that_times_out_fails_the_run() -> None:
    @flow
    def forgotten() -> None:
        pause_flow_run(timeout=1)

    with pytest.raises(FlowPauseTimeout, match="paused and never resumed"):
        forgotten()
    (run,) = store().list_flow_runs()
    assert run.state == "FAILED"


def test_only_a_flow_run_can_pause_and_only_a_paused_run_resumes() -> None:
    with pytest.raises(RuntimeError, match="only be paused from within a flow run"):
        pause_flow_run()

    @task
    def inside_a_task() -> None:
        pause_flow_run()

    @flow
    def pipeline() -> None:
        inside_a_task()

    with pytest.raises(RuntimeError, match="not a task"):
        pipeline()
    (run,) = store().list_flow_runs()
    with pytest.raises(UsageError, match="is FAILED, not PAUSED"):
        resume_flow_run(run.id)


def test_a_pause_whose_key_was_answered_returns_that_answer_without_pausing() -> None:
    @flow
    def review() -> list[Any]:
        answers = []
        for _ in range(2):  # a loop reaching the same keyed pause twice
            answer = pause_flow_run(wait_for_input=Approval, key="sign-off", timeout=60)
            answers.append(answer.note)
        answers.append(pause_flow_run(wait_for_input=Approval, timeout=60).note)
        return answers

    thread, outcome = in_thread(review)
    run_id = paused_run()
    resume_flow_run(run_id, run_input={"approved": True, "note": "first"})
    # "sign-off" answered: the second call returns at once; the unkeyed pause waits.
    deadline = time.monotonic() + 15
    while (store().pause_of(run_id) or {}).get("key") != "pause-1":
        assert time.monotonic() < deadline, "the run did not reach its unkeyed pause"
        time.sleep(0.02)
    resume_flow_run(run_id, run_input={"approved": True, "note": "second"})
    thread.join(30)
    assert outcome == [["first", "first", "second"]]
    states = [h.state for h in store().history(run_id) if h.position is None]
    assert states.count("PAUSED") == 2
