"""`orchlite.tags(...)`, as Prefect's `tags` context manager: runs created in the block carry
its tags (nested blocks add theirs), a task run's tags join its task's own, and tags from the
block take slots of concurrency limits as a task's own tags do."""

from __future__ import annotations

import json
import threading
import time
from pathlib import Path

import pytest

from orchlite import flow, tags, task
from orchlite.logging import setup_logging
from orchlite.task_runners import ThreadPoolTaskRunner
from tests.helpers.recorded import last_run, store


@pytest.fixture(autouse=True)
def home(orch_home: Path) -> Path:
    setup_logging(console=False)
    return orch_home


def test_runs_created_in_the_block_carry_its_tags() -> None:
    @task(tags=["db"])
    def load() -> None:
        pass

    @flow
    def child() -> None:
        load()

    @flow
    def parent() -> None:
        load()
        with tags("eu"):
            child()

    with tags("nightly") as in_effect:
        assert in_effect == {"nightly"}
        parent()
    run = last_run()
    assert json.loads(run.tags) == ["nightly"]
    (own_task,) = store().task_runs(run.id)
    assert json.loads(own_task.tags) == ["db", "nightly"]
    (sub,) = store().child_flow_runs(run.id)
    assert json.loads(sub.tags) == ["eu", "nightly"]
    (sub_task,) = store().task_runs(sub.id)
    assert json.loads(sub_task.tags) == ["db", "eu", "nightly"]

    parent()  # outside the block: no tags, but its subflow is still tagged eu
    assert json.loads(last_run().tags) == []
    tagged = store().list_flow_runs(tags=["eu"])
    assert [r.flow_name for r in tagged] == ["child", "child"]
    assert sub.id in {r.id for r in tagged}
    assert [r.id for r in store().list_flow_runs(tags=["nightly"], include_subflows=False)] == [
        run.id
    ]


def test_tags_from_the_block_take_slots_of_concurrency_limits() -> None:
    store().set_concurrency_limit("api", 1)
    lock = threading.Lock()
    running: list[int] = []
    most: list[int] = []

    @task
    def call_api(n: int) -> int:
        with lock:
            running.append(n)
            most.append(len(running))
        time.sleep(0.05)
        with lock:
            running.remove(n)
        return n

    @flow(task_runner=ThreadPoolTaskRunner(max_workers=4))
    def pipeline() -> list[int]:
        with tags("api"):
            futures = call_api.map(range(4))
        return futures.result()

    assert pipeline() == [0, 1, 2, 3]
    assert max(most) == 1


def test_a_tag_must_be_a_non_empty_string() -> None:
    with pytest.raises(ValueError, match="non-empty string"), tags(""):
        pass


def test_runtime_flow_run_tags_reads_the_runs_tags() -> None:
    from orchlite.runtime import flow_run

    @flow
    def tagged() -> list[str]:
        return sorted(flow_run.tags)

    with tags("nightly", "eu"):
        assert tagged() == ["eu", "nightly"]
    assert tagged() == []
    assert flow_run.tags == []
