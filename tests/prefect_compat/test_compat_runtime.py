"""`orchlite.runtime` as Prefect 3's "Access runtime information" docs and its
`prefect.runtime` reference describe it: `flow_run`, `task_run` and `deployment` modules
whose attributes are read from the run in progress when accessed, are empty (None, `{}`,
`[]`, 0; `scheduled_start_time` now) outside a run and never raise, and can be set from
the environment for tests (`ORCH__RUNTIME__<MODULE>__<NAME>`, Prefect's
`PREFECT__RUNTIME__...`), the text converted to the attribute's type.
"""

from __future__ import annotations

import datetime as dt
import importlib
import json
from pathlib import Path
from typing import Any

import pytest

from orchlite import flow, task
from orchlite.logging import setup_logging
from orchlite.runtime import deployment, flow_run, task_run
from orchlite.store import Store
from orchlite.task_runners import ProcessPoolTaskRunner, ThreadPoolTaskRunner
from tests.helpers import orch, start_daemon, stop_daemon, wait_for, write
from tests.helpers.daemon import runs
from tests.helpers.recorded import last_run, store


@pytest.fixture(autouse=True)
def home(orch_home: Path) -> Path:
    setup_logging(console=False)
    return orch_home


def _flow_facts() -> dict[str, Any]:
    return {
        "id": flow_run.id,
        "name": flow_run.name,
        "flow_name": flow_run.flow_name,
        "parameters": flow_run.parameters,
        "run_count": flow_run.run_count,
        "tags": flow_run.tags,
        "scheduled_start_time": flow_run.scheduled_start_time,
    }


def _task_facts() -> dict[str, Any]:
    return {
        "id": task_run.id,
        "name": task_run.name,
        "task_name": task_run.task_name,
        "parameters": task_run.parameters,
        "run_count": task_run.run_count,
        "tags": task_run.tags,
    }


EMPTY_TASK = {
    "id": None,
    "name": None,
    "task_name": None,
    "parameters": {},
    "run_count": 0,
    "tags": [],
}


def test_outside_any_run_attributes_are_empty_and_never_raise() -> None:
    before = dt.datetime.now(dt.timezone.utc)
    facts = _flow_facts()
    start = facts.pop("scheduled_start_time")
    assert facts == {
        "id": None,
        "name": None,
        "flow_name": None,
        "parameters": {},
        "run_count": 0,
        "tags": [],
    }
    assert before <= start <= dt.datetime.now(dt.timezone.utc)  # "defaults to now"
    assert flow_run.parent_flow_run_id is None and flow_run.root_flow_run_id is None
    assert flow_run.flow_version is None and flow_run.ui_url is None
    assert _task_facts() == EMPTY_TASK
    assert (deployment.id, deployment.name, deployment.flow_run_id) == (None, None, None)
    assert deployment.parameters == {}


def test_inside_a_flow_the_flow_run_attributes_describe_the_run() -> None:
    seen: dict[str, Any] = {}

    @flow(flow_run_name="report-{day}", version="7")
    def report(day: str, region: str = "eu") -> None:
        seen.update(_flow_facts(), version=flow_run.flow_version, task=_task_facts())
        seen["deployment"] = (deployment.id, deployment.name, deployment.parameters)

    before = dt.datetime.now(dt.timezone.utc)
    report("2026-12-01")
    run = last_run()
    assert seen["id"] == run.id
    assert seen["name"] == "report-2026-12-01" == run.name
    assert seen["flow_name"] == "report"
    assert seen["version"] == "7"
    assert seen["parameters"] == {"day": "2026-12-01", "region": "eu"}
    assert seen["run_count"] == 1
    assert seen["tags"] == []
    start = seen["scheduled_start_time"]
    assert start.tzinfo is not None and start.utcoffset() == dt.timedelta(0)
    assert before - dt.timedelta(seconds=1) <= start <= dt.datetime.now(dt.timezone.utc)
    assert seen["task"] == EMPTY_TASK  # a flow body is not a task run
    assert seen["deployment"] == (None, None, {})  # not started by a schedule or trigger


def test_inside_a_task_both_the_task_run_and_its_flow_run_are_seen() -> None:
    seen: list[dict[str, Any]] = []

    @task(tags=["db"])
    def load(table: str, rows: int = 10) -> None:
        seen.append({"task": _task_facts(), "flow_id": flow_run.id, "flow": flow_run.name})

    @flow(task_runner=ThreadPoolTaskRunner(max_workers=2))
    def pipeline() -> None:
        load("users")
        load.submit("orders", rows=3).result()

    pipeline()
    run = last_run()
    task_runs = store().task_runs(run.id)
    assert [s["task"] for s in seen] == [
        {
            "id": task_runs[0].id,
            "name": "load-0",
            "task_name": "load",
            "parameters": {"table": "users", "rows": 10},
            "run_count": 1,
            "tags": ["db"],
        },
        {
            "id": task_runs[1].id,
            "name": "load-1",
            "task_name": "load",
            "parameters": {"table": "orders", "rows": 3},
            "run_count": 1,
            "tags": ["db"],
        },
    ]
    assert {(s["flow_id"], s["flow"]) for s in seen} == {(run.id, "pipeline")}


def test_a_task_body_in_a_worker_process_knows_its_task_run_and_the_flow_run_id() -> None:
    @task(tags=["cpu"])
    def crunch(n: int) -> dict[str, Any]:
        return {
            "task": _task_facts(),
            "flow": [flow_run.id, flow_run.name, flow_run.flow_name],
            "unknown_there": [flow_run.parameters, flow_run.run_count, deployment.name],
        }

    @flow(task_runner=ProcessPoolTaskRunner(max_workers=1))
    def pipeline(size: int = 4) -> dict[str, Any]:
        return crunch.submit(size).result()

    seen = pipeline()
    run = last_run()
    (task_row,) = store().task_runs(run.id)
    assert seen["task"] == {
        "id": task_row.id,
        "name": "crunch-0",
        "task_name": "crunch",
        "parameters": {"n": 4},
        "run_count": 1,
        "tags": ["cpu"],
    }
    assert seen["flow"] == [run.id, "pipeline", "pipeline"]
    assert seen["unknown_there"] == [{}, 0, None]  # as documented: no store in a worker


def test_a_task_called_on_its_own_has_a_task_run_but_no_flow_run() -> None:
    @task
    def alone(x: int) -> tuple[Any, ...]:
        return flow_run.id, flow_run.parameters, task_run.task_name, task_run.parameters

    assert alone(3) == (None, {}, "alone", {"x": 3})


def test_a_subflow_sees_its_own_run_and_its_parent() -> None:
    seen: dict[str, Any] = {}

    @flow
    def child(n: int) -> None:
        seen["child"] = (flow_run.id, flow_run.name, flow_run.parameters)
        seen["lineage"] = (flow_run.parent_flow_run_id, flow_run.root_flow_run_id)

    @flow
    def parent() -> None:
        seen["parent"] = (flow_run.id, flow_run.parent_flow_run_id, flow_run.root_flow_run_id)
        child(2)
        seen["after"] = flow_run.id

    parent()
    parent_run = last_run()
    (sub,) = store().child_flow_runs(parent_run.id)
    assert seen["parent"] == (parent_run.id, None, parent_run.id)
    assert seen["child"] == (sub.id, "child", {"n": 2})
    assert seen["lineage"] == (parent_run.id, parent_run.id)
    assert seen["after"] == parent_run.id  # back in the parent once the subflow returned


def test_a_retried_task_sees_its_run_count_grow() -> None:
    counts: list[tuple[str | None, int]] = []

    @task(retries=2, retry_delay_seconds=0)
    def flaky() -> str:
        counts.append((task_run.id, task_run.run_count))
        if len(counts) < 2:
            raise ValueError("not yet")
        return "ok"

    @flow
    def pipeline() -> str:
        return flaky()

    assert pipeline() == "ok"
    assert [count for _, count in counts] == [1, 2]
    assert counts[0][0] == counts[1][0]  # the same task run, run twice


def test_a_retried_flow_sees_its_run_count_grow() -> None:
    counts: list[int] = []

    @flow(retries=1, retry_delay_seconds=0)
    def pipeline() -> None:
        counts.append(flow_run.run_count)
        if len(counts) < 2:
            raise ValueError("not yet")

    pipeline()
    assert counts == [1, 2]
    assert last_run().state == "COMPLETED"


def test_attributes_import_by_name_and_unknown_ones_raise_attribute_error() -> None:
    module = importlib.import_module("orchlite.runtime.flow_run")

    @flow
    def pipeline() -> Any:
        from orchlite.runtime.flow_run import id as run_id

        return run_id

    assert pipeline() == last_run().id
    assert "scheduled_start_time" in dir(module) and "run_count" in dir(task_run)
    with pytest.raises(AttributeError, match="no attribute 'colour'"):
        _ = flow_run.colour


def test_environment_variables_set_attributes_converted_to_their_type(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("ORCH__RUNTIME__FLOW_RUN__ID", "abc")
    monkeypatch.setenv("ORCH__RUNTIME__FLOW_RUN__RUN_COUNT", "3")
    monkeypatch.setenv("ORCH__RUNTIME__FLOW_RUN__SCHEDULED_START_TIME", "2026-01-02T03:04:05")
    monkeypatch.setenv("ORCH__RUNTIME__TASK_RUN__FAKE_KEY", "foo")
    monkeypatch.setenv("ORCH__RUNTIME__DEPLOYMENT__NAME", "nightly")
    assert flow_run.id == "abc"
    assert flow_run.run_count == 3
    assert flow_run.scheduled_start_time == dt.datetime(2026, 1, 2, 3, 4, 5, tzinfo=dt.timezone.utc)
    assert task_run.fake_key == "foo"  # not an attribute: the text itself
    assert deployment.name == "nightly"

    seen: list[Any] = []

    @flow
    def pipeline() -> None:
        seen.extend([flow_run.id, flow_run.run_count, flow_run.name])

    pipeline()
    assert seen == ["abc", 3, "pipeline"]  # set ones win inside a run too

    monkeypatch.setenv("ORCH__RUNTIME__FLOW_RUN__PARAMETERS", '{"a": 1}')
    with pytest.raises(ValueError, match="cannot be set from the environment"):
        _ = flow_run.parameters


# -- started by the daemon ------------------------------------------------------------------

FLOWS = """
    import json
    from pathlib import Path

    from orchlite import flow, interval
    from orchlite.runtime import deployment, flow_run


    def facts():
        return {
            "id": flow_run.id,
            "deployment": [deployment.name, deployment.id, deployment.flow_run_id],
            "deployment_parameters": deployment.parameters,
            "scheduled_start_time": flow_run.scheduled_start_time.isoformat(),
        }


    @flow
    def inner():
        return facts()


    @flow(schedules=[interval(seconds=1, name="every-second", parameters={"size": 2})])
    def sized(size: int = 1):
        seen = {**facts(), "subflow": inner()}
        Path(f"seen-{flow_run.id}.json").write_text(json.dumps(seen))


    @flow
    def manual():
        Path("manual.json").write_text(json.dumps(facts()))
"""


@pytest.mark.slow  # a daemon's life: a schedule must fire and its run complete
def test_a_run_the_daemon_started_names_its_schedule(tmp_path: Path) -> None:
    write(tmp_path, "flows.py", FLOWS)
    daemon = start_daemon(tmp_path)
    try:
        seen_files = wait_for(
            lambda: sorted(tmp_path.glob("seen-*.json")),
            timeout=30,
            what="a scheduled run to record what it saw",
        )
    finally:
        stop_daemon(daemon)
    seen = json.loads(seen_files[0].read_text())
    run = next(r for r in runs(tmp_path) if r.id == seen["id"])
    assert run.trigger == "schedule"
    name, key, started_run = seen["deployment"]
    assert name == "every-second"
    assert key.startswith("flows.py:sized|")
    assert started_run == run.id
    assert seen["deployment_parameters"] == {"size": 2}
    assert seen["subflow"]["deployment"] == seen["deployment"]  # the outermost run's
    assert seen["subflow"]["id"] != run.id
    start = dt.datetime.fromisoformat(seen["scheduled_start_time"])
    with Store(tmp_path / ".orch") as store_of_project:
        assert start.timestamp() == store_of_project.slot_time(run.id)  # the slot it was due
    assert 0 <= run.created - start.timestamp() < 5  # claimed within a few ticks of it

    orch(tmp_path, "run", "flows.py:manual", expect=0)
    manual = json.loads((tmp_path / "manual.json").read_text())
    assert manual["deployment"] == [None, None, None]
    assert manual["deployment_parameters"] == {}


CLAIMED = """
    import json
    from pathlib import Path

    from orchlite import cron, flow, on_files
    from orchlite.runtime import deployment


    @flow(schedules=[cron("0 6 * * *")], triggers=[on_files("inbox/*.csv")])
    def ingest(day: str = "today"):
        out = Path(__file__).parent / "seen.json"
        seen = json.loads(out.read_text()) if out.exists() else []
        seen.append([deployment.name, deployment.id, deployment.flow_run_id, deployment.parameters])
        out.write_text(json.dumps(seen))
"""


def test_a_claimed_run_names_its_unnamed_schedule_or_trigger_and_retries_keep_it(
    tmp_path: Path,
) -> None:
    from orchlite.executor import RunRequest, run_target
    from orchlite.project import load_schedules, load_triggers

    write(tmp_path, "flows.py", CLAIMED)
    (schedule,), _ = load_schedules(tmp_path)
    (trigger,), _ = load_triggers(tmp_path)
    s = store()
    claim = {"flow_name": "ingest", "target": "flows.py:ingest", "parameters": '{"day": "d1"}'}
    s.claim_slot(run_id="a" * 32, key=schedule.key, slot=0.0, name="ingest-slot", **claim)
    s.claim_trigger_run(
        run_id="b" * 32, key=trigger.key, name="ingest-files", trigger="file", **claim
    )
    for run_id in ("a" * 32, "b" * 32):
        assert run_target(RunRequest("flows.py:ingest", {"day": "d1"}, run_id=run_id))[1] == 0
    retry = RunRequest("flows.py:ingest", {"day": "d2"}, resume_from="a" * 32, trigger="retry")
    run_target(retry)
    run_target(RunRequest("flows.py:ingest", {"day": "d3"}))
    seen = json.loads((tmp_path / "seen.json").read_text())
    assert seen == [
        ["cron 0 6 * * * (UTC)", schedule.key, "a" * 32, {"day": "d1"}],
        ["files inbox/*.csv (debounce 1 s)", trigger.key, "b" * 32, {"day": "d1"}],
        ["cron 0 6 * * * (UTC)", schedule.key, retry.run_id, {"day": "d2"}],
        [None, None, None, {}],
    ]


DUE = """
from pathlib import Path

from orchlite import flow
from orchlite.runtime import flow_run


@flow
def nightly() -> None:
    out = Path(__file__).parent / "due.txt"
    out.write_text(flow_run.scheduled_start_time.isoformat())
"""


def test_scheduled_start_time_is_the_slot_even_when_claimed_late(tmp_path: Path) -> None:
    from orchlite.executor import RunRequest, run_target

    write(tmp_path, "flows.py", DUE)
    slot = dt.datetime(2026, 3, 1, 2, 0, tzinfo=dt.timezone.utc)
    store().claim_slot(
        run_id="c" * 32,
        key="flows.py:nightly|cron|late",
        slot=slot.timestamp(),
        flow_name="nightly",
        name="nightly-late",
        target="flows.py:nightly",
        parameters="{}",
        now=slot.timestamp() + 86_400,  # caught up a day late
    )
    assert run_target(RunRequest("flows.py:nightly", {}, run_id="c" * 32))[1] == 0
    assert (tmp_path / "due.txt").read_text() == "2026-03-01T02:00:00+00:00"
