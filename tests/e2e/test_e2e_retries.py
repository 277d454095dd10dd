"""Task and flow retries, seen through `orch show --json` and the store itself."""

from __future__ import annotations

from datetime import datetime

from tests.helpers import Project

FLAKY = """
from pathlib import Path

from orchlite import flow, task


@task(retries=2, retry_delay_seconds=[0.05, 0.1])
def flaky() -> int:
    bump("flaky.count")
    n = len(Path("flaky.count").read_text())
    if n < 3:
        raise RuntimeError(f"failure number {n}")
    return n


@flow
def recovers() -> int:
    return flaky()
"""


def test_task_retries_until_it_succeeds(project: Project) -> None:
    project.write_flow("flows.py", FLAKY)
    proc = project.orch("run", "flows.py:recovers")
    assert "retrying in 0.05 s" in proc.stderr
    assert project.count("flaky.count") == 3

    detail = project.show()
    assert detail["state"] == "COMPLETED"
    [task] = detail["tasks"]
    assert (task["name"], task["state"], task["attempts"]) == ("flaky-0", "COMPLETED", 3)
    states = [h["state"] for h in task["history"]]
    assert states == [
        "PENDING",
        "RUNNING",
        "RETRYING",
        "RUNNING",
        "RETRYING",
        "RUNNING",
        "COMPLETED",
    ]
    retrying = [h["message"] for h in task["history"] if h["state"] == "RETRYING"]
    assert "failure number 1" in retrying[0] and "0.05 s" in retrying[0]
    assert "failure number 2" in retrying[1] and "0.1 s" in retrying[1]

    # The same history, read from the database through the store API.
    store = project.store()
    rows = store.history(detail["id"], position=task["position"])
    assert [r.state for r in rows] == states
    assert [r.message for r in rows if r.state == "RETRYING"] == retrying
    # Each retry waited at least its delay before the next attempt started.
    times = {i: r.ts for i, r in enumerate(rows)}
    assert times[3] - times[2] >= 0.05
    assert times[5] - times[4] >= 0.1
    [stored] = store.task_runs(detail["id"])
    assert stored.attempts == 3
    assert stored.state == "COMPLETED"
    assert stored.error_type is None
    started = datetime.fromisoformat(task["started"])
    ended = datetime.fromisoformat(task["ended"])
    assert (ended - started).total_seconds() >= 0.15


def test_retry_condition_fn_false_stops_after_the_first_attempt(project: Project) -> None:
    project.write_flow(
        "flows.py",
        """
        from orchlite import flow, task

        seen = []


        def only_on_timeouts(task, task_run, state) -> bool:
            seen.append((task.name, task_run.attempts, state.type.value))
            return isinstance(state.result(raise_on_failure=False), TimeoutError)


        @task(retries=3, retry_delay_seconds=0.05, retry_condition_fn=only_on_timeouts)
        def picky():
            bump("picky.count")
            raise ValueError("not worth retrying")


        @flow
        def gives_up():
            try:
                picky()
            finally:
                with open("seen.txt", "w") as fh:
                    fh.write(repr(seen))
        """,
    )
    project.orch("run", "flows.py:gives_up", expect=1)
    assert project.count("picky.count") == 1
    assert (project.root / "seen.txt").read_text() == "[('picky', 1, 'FAILED')]"
    detail = project.show()
    assert detail["state"] == "FAILED"
    [task] = detail["tasks"]
    assert (task["state"], task["attempts"]) == ("FAILED", 1)
    assert task["error"] == "ValueError: not worth retrying"
    assert "RETRYING" not in [h["state"] for h in task["history"]]


def test_task_that_keeps_failing_exhausts_its_retries(project: Project) -> None:
    project.write_flow(
        "flows.py",
        """
        from orchlite import flow, task


        @task(retries=2, retry_delay_seconds=0.05)
        def hopeless():
            bump("hopeless.count")
            raise OSError("disk on fire")


        @flow
        def doomed():
            hopeless()
        """,
    )
    project.orch("run", "flows.py:doomed", expect=1)
    assert project.count("hopeless.count") == 3
    [task] = project.show()["tasks"]
    assert (task["state"], task["attempts"]) == ("FAILED", 3)
    assert [h["state"] for h in task["history"]].count("RETRYING") == 2
    assert "disk on fire" in task["error"]


def test_flow_retry_reuses_tasks_completed_in_the_first_attempt(project: Project) -> None:
    project.write_flow(
        "flows.py",
        """
        from pathlib import Path

        from orchlite import flow, task
        from orchlite.cache_policies import NO_CACHE


        @task(cache_policy=NO_CACHE)
        def extract() -> list[int]:
            bump("extract.count")
            return [1, 2, 3]


        @task(cache_policy=NO_CACHE)
        def load(rows: list[int]) -> int:
            bump("load.count")
            if len(Path("load.count").read_text()) < 2:
                raise ConnectionError("warehouse is napping")
            return sum(rows)


        @flow(retries=1, retry_delay_seconds=0.05)
        def etl() -> int:
            return load(extract())
        """,
    )
    proc = project.orch("run", "flows.py:etl")
    assert "warehouse is napping" in proc.stderr
    assert project.count("extract.count") == 1, "extract completed in attempt 1: not re-run"
    assert project.count("load.count") == 2

    detail = project.show()
    assert (detail["state"], detail["attempts"]) == ("COMPLETED", 2)
    flow_states = [h["state"] for h in detail["history"]]
    assert flow_states == ["PENDING", "RUNNING", "RETRYING", "RUNNING", "COMPLETED"]
    assert [(t["name"], t["state"]) for t in detail["tasks"]] == [
        ("extract-0", "COMPLETED"),
        ("load-0", "COMPLETED"),
    ]
