"""Tags on runs through the CLI: `orch runs --tag`, `orch show` and `--json`."""

from __future__ import annotations

from tests.helpers import Project


def test_orch_runs_filters_by_tag_and_show_lists_tags(project: Project) -> None:
    project.write(
        "flows.py",
        """
        from orchlite import flow, tags

        @flow
        def region(name: str) -> str:
            return name

        @flow
        def nightly() -> None:
            with tags("eu"):
                region("eu")
            with tags("us", "slow"):
                region("us")
        """,
    )
    project.orch("run", "flows.py:nightly")
    eu = project.json("runs", "--tag", "eu", "--json")
    assert [(r["flow"], r["tags"]) for r in eu] == [("region", ["eu"])]
    either = project.json("runs", "--tag", "eu", "--tag", "slow", "--json")
    assert sorted(r["parameters"]["name"] for r in either) == ["eu", "us"]
    assert project.json("runs", "--tag", "none-such", "--json") == []
    shown = project.orch("show", either[0]["id"]).stdout
    assert "tags:" in shown
