"""`orch artifacts` and `orch show` list what runs published with `orchlite.artifacts`."""

from __future__ import annotations

from tests.helpers import Project, assert_usage_error


def test_orch_artifacts_lists_keys_and_versions_and_show_lists_a_runs(project: Project) -> None:
    project.write(
        "flows.py",
        """
        from orchlite import flow, task
        from orchlite.artifacts import create_markdown_artifact, create_table_artifact

        @task
        def load(day: str) -> None:
            create_table_artifact([{"day": day, "rows": 3}], key="loaded-rows")

        @flow
        def nightly(day: str) -> None:
            load(day)
            create_markdown_artifact(f"# Loaded {day}", key="nightly-report")
        """,
    )
    project.orch("run", "flows.py:nightly", "-p", "day=mon")
    project.orch("run", "flows.py:nightly", "-p", "day=tue")

    latest = project.json("artifacts", "--json")
    assert sorted((a["key"], a["type"]) for a in latest) == [
        ("loaded-rows", "table"),
        ("nightly-report", "markdown"),
    ]
    assert {a["key"]: a["data"] for a in latest}["nightly-report"] == "# Loaded tue"

    versions = project.json("artifacts", "loaded-rows", "--json")
    assert [v["data"][0]["day"] for v in versions] == ["tue", "mon"]

    shown = project.show()
    assert [(a["key"], a["task"]) for a in shown["artifacts"]] == [
        ("loaded-rows", "load-0"),
        ("nightly-report", None),
    ]
    text = project.orch("show", "last").stdout
    assert "ARTIFACT" in text and "nightly-report" in text and "# Loaded tue" in text
    listing = project.orch("artifacts").stdout
    assert listing.splitlines()[0].split() == ["KEY", "TYPE", "RUN", "CREATED", "CONTENT"]

    proc = project.orch("artifacts", "no-such-key", expect=2)
    assert_usage_error(proc, 2, "no artifact with key 'no-such-key'")
