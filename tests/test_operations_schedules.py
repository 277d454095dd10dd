"""The schedule actions of `orchlite.operations` that `orch schedule pause|resume NAME`,
`orch run --schedule NAME` and the TUI's schedules screen share: their requests, their
store changes and their messages."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

import pytest

from orchlite import operations
from orchlite.errors import UsageError
from orchlite.project import load_schedules
from orchlite.store import Store
from tests.helpers import write

FLOWS = """
from orchlite import flow, interval


@flow(schedules=[interval(hours=1, name="hourly")])
def sales_etl(day: str = "none", size: int = 1):
    return day
"""

TOML = """
[[schedule]]
name = "nightly"
target = "flows.py:sales_etl"
cron = "30 2 * * *"
parameters = { day = "{scheduled_time:%Y-%m-%d}", size = 3 }
env = { REGION = "eu" }
"""


@pytest.fixture
def project(tmp_path: Path, orch_home: Path) -> Path:
    write(tmp_path, "flows.py", FLOWS)
    write(tmp_path, "orch.toml", TOML)
    Store(orch_home).close()
    return tmp_path


def paused(home: Path) -> set[str]:
    with Store(home) as store:
        return set(store.paused_schedules())


def test_pause_and_resume_say_what_changed_in_the_store(project: Path, orch_home: Path) -> None:
    assert operations.pause_schedule(orch_home, "nightly").message == "schedule 'nightly' paused"
    assert paused(orch_home) == {"nightly"}
    again = operations.pause_schedule(orch_home, "nightly")
    assert again.message == "schedule 'nightly' was paused already" and again.ok
    resumed = operations.resume_schedule(orch_home, "nightly")
    assert resumed.message == "schedule 'nightly' resumed"
    assert paused(orch_home) == set()
    assert operations.resume_schedule(orch_home, "nightly").message == (
        "schedule 'nightly' was not paused"
    )


def test_an_unknown_schedule_is_a_usage_error_naming_close_ones(
    project: Path, orch_home: Path
) -> None:
    with pytest.raises(UsageError, match="no schedule named 'nigthly'; did you mean 'nightly'"):
        operations.pause_schedule(orch_home, "nigthly")
    with pytest.raises(UsageError, match="no schedule named 'gone'"):
        operations.resume_schedule(orch_home, "gone")
    with pytest.raises(UsageError, match="no schedule named 'gone'"):
        operations.schedule_run(orch_home, "gone")
    assert paused(orch_home) == set()


def test_schedule_run_is_the_schedules_target_with_its_parameters_and_env(
    project: Path, orch_home: Path
) -> None:
    before = dt.datetime.now(dt.timezone.utc)
    scheduled = operations.schedule_run(orch_home, "nightly")
    after = dt.datetime.now(dt.timezone.utc)
    request = scheduled.request
    assert request.target == "flows.py:sales_etl" and request.trigger == "manual"
    assert request.params["size"] == 3
    assert request.params["day"] in {before.strftime("%Y-%m-%d"), after.strftime("%Y-%m-%d")}
    assert request.env == {"REGION": "eu"}
    (entry,) = [e for e in load_schedules(project)[0] if e.source == "orch.toml"]
    assert (scheduled.name, scheduled.key) == ("nightly", entry.key)
    assert before.timestamp() <= scheduled.at <= after.timestamp()

    given = operations.schedule_run(orch_home, "nightly", {"day": "given"}).request
    assert given.params == {"day": "given", "size": 3}
    assert given.run_id != request.run_id


def test_a_launched_schedule_run_is_recorded_as_started_by_the_schedule(
    project: Path, orch_home: Path
) -> None:
    scheduled = operations.schedule_run(orch_home, "nightly", {"day": "given"})
    outcome = operations.launch(orch_home, scheduled.request, started_by=scheduled)
    assert outcome.ok and outcome.run_id == scheduled.request.run_id, outcome.message
    assert outcome.message == f"Run {outcome.run_id[:8]} (flows.py:sales_etl) COMPLETED"
    with Store(orch_home) as store:
        assert store.slot_claim(outcome.run_id) == (scheduled.key, "nightly")
        run = store.get_flow_run(outcome.run_id)
    assert json.loads(run.parameters or "{}") == {"day": "given", "size": 3}
