"""`orchlite.artifacts`, as Prefect 3's artifacts docs describe them: each `create_*`
function returns the new artifact's id; artifacts made in a run belong to that flow run (and
task run); a key versions them; progress artifacts are updated in place; NaN in a table is
stored as null; keys are lowercase letters, digits and dashes."""

from __future__ import annotations

import json
import math
import uuid
from pathlib import Path

import pytest

from orchlite import flow, task
from orchlite.artifacts import (
    create_image_artifact,
    create_link_artifact,
    create_markdown_artifact,
    create_progress_artifact,
    create_table_artifact,
    update_progress_artifact,
)
from orchlite.errors import UsageError
from orchlite.logging import setup_logging
from orchlite.secrets import secret
from tests.helpers.recorded import last_run, store


@pytest.fixture(autouse=True)
def home(orch_home: Path) -> Path:
    setup_logging(console=False)
    return orch_home


def test_artifacts_belong_to_the_run_and_task_that_made_them() -> None:
    made: dict[str, uuid.UUID] = {}

    @task
    def summarize() -> None:
        made["table"] = create_table_artifact(
            {"region": ["eu", "us"], "rows": [120, math.nan]}, key="rows", description="per region"
        )

    @flow
    def report() -> None:
        made["md"] = create_markdown_artifact("# Report", key="daily-report")
        summarize()
        made["link"] = create_link_artifact("https://example.com", link_text="dashboard")
        made["image"] = create_image_artifact("https://example.com/chart.png")

    report()
    run = last_run()
    found = {a.id: a for a in store().artifacts(flow_run_id=run.id)}
    assert set(found) == {str(v) for v in made.values()}
    table = found[str(made["table"])]
    assert (table.key, table.type, table.description) == ("rows", "table", "per region")
    assert json.loads(table.data) == {"region": ["eu", "us"], "rows": [120, None]}
    (task_run,) = store().task_runs(run.id)
    assert table.task_run_id == task_run.id
    assert found[str(made["md"])].task_run_id is None
    assert json.loads(found[str(made["link"])].data) == {
        "link": "https://example.com",
        "text": "dashboard",
    }


def test_a_key_keeps_every_version_and_progress_updates_in_place() -> None:
    @flow
    def nightly(n: int) -> None:
        create_markdown_artifact(f"run {n}", key="nightly")
        bar = create_progress_artifact(0.0, key="load")
        update_progress_artifact(bar, 50)
        update_progress_artifact(bar, 100, description="done")

    nightly(1)
    nightly(2)
    versions = store().artifacts(key="nightly")
    assert [json.loads(a.data) for a in versions] == ["run 2", "run 1"]
    latest = {a.key: a for a in store().artifacts(latest_per_key=True)}
    assert json.loads(latest["nightly"].data) == "run 2"
    assert json.loads(latest["load"].data) == 100.0
    assert latest["load"].description == "done"


def test_artifacts_outside_a_run_are_kept_without_one() -> None:
    artifact_id = create_markdown_artifact("standalone")
    (artifact,) = store().artifacts()
    assert (artifact.id, artifact.flow_run_id) == (str(artifact_id), None)


def test_secret_values_are_masked_in_artifacts(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DB_PASSWORD", "hunter2-very-secret")

    @flow(secrets=["DB_PASSWORD"])
    def leaky() -> None:
        create_markdown_artifact(f"connected with {secret('DB_PASSWORD')}", key="leak")

    leaky()
    (artifact,) = store().artifacts(key="leak")
    assert "hunter2" not in artifact.data


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda: create_markdown_artifact("x", key="Bad Key"), "invalid artifact key"),
        (lambda: create_progress_artifact(150), "from 0 to 100"),
        (lambda: create_progress_artifact("half"), "a number from 0 to 100"),  # type: ignore[arg-type]
        (lambda: create_table_artifact("rows"), "dict of columns or a list of rows"),  # type: ignore[arg-type]
        (lambda: update_progress_artifact(uuid.uuid4(), 5), "no artifact"),
    ],
)
def test_bad_artifacts_are_refused(call: object, message: str) -> None:
    with pytest.raises(UsageError, match=message):
        call()  # type: ignore[operator]
