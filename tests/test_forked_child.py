"""A process forked from one that already ran flows records its own runs correctly: it
draws its own run ids (not its parent's, not ones a `random.seed()` in user code fixes) and
starts its own recorder thread, which writes the start of a task still running after
`START_DELAY` (the parent's thread does not exist in the child)."""

from __future__ import annotations

import os
import random
import time
from pathlib import Path

import pytest

from orchlite import flow, task
from orchlite.logging import setup_logging
from orchlite.recorder import START_DELAY
from orchlite.run_support import new_run_id
from tests.helpers.recorded import last_run, store


@pytest.fixture(autouse=True)
def home(orch_home: Path) -> Path:
    setup_logging(console=False)
    return orch_home


def in_child(body: object) -> int:
    """Run `body()` in a forked child; its exit code (0 when it returned True)."""
    pid = os.fork()
    if pid == 0:
        code = 1
        try:
            code = 0 if body() else 1  # type: ignore[operator]
        finally:
            os._exit(code)
    return os.waitstatus_to_exitcode(os.waitpid(pid, 0)[1])


def test_run_ids_differ_in_a_forked_child_and_after_random_seed(tmp_path: Path) -> None:
    out = tmp_path / "child-ids"
    random.seed(7)
    before = new_run_id()

    def child() -> bool:
        random.seed(7)
        out.write_text(" ".join(new_run_id() for _ in range(3)))
        return True

    assert in_child(child) == 0
    random.seed(7)
    mine = {new_run_id() for _ in range(3)}
    theirs = set(out.read_text().split())
    assert len(mine | theirs | {before}) == 7
    assert all(len(i) == 32 and int(i, 16) >= 0 for i in mine | theirs)


@task
def slow_step() -> str:
    time.sleep(START_DELAY + 0.4)
    return "done"


@task
def quick_step() -> int:
    return 1


@flow
def warm() -> int:
    return quick_step()


def test_a_forked_child_writes_the_start_of_a_long_task(tmp_path: Path) -> None:
    assert warm() == 1  # the parent's recorder thread is running now
    seen = tmp_path / "seen"

    def child() -> bool:
        @task
        def look() -> str:
            run = last_run()
            return ",".join(t.state for t in store().task_runs(run.id))

        @flow
        def probe() -> str:
            slow = slow_step.submit()
            time.sleep(START_DELAY + 0.2)
            states = look()
            return f"{slow.result()}|{states}"

        seen.write_text(probe())
        return True

    assert in_child(child) == 0
    result, states = seen.read_text().split("|")
    assert result == "done"
    assert states.split(",")[0] == "RUNNING"  # written by the child's own recorder thread
    assert [t.state for t in store().task_runs(last_run().id)] == ["COMPLETED", "COMPLETED"]
