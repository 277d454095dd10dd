"""One name per flow: Prefect's default (`def sales_etl` is `sales-etl`), everywhere, and every
command that takes a flow name accepts the function's spelling too."""

from __future__ import annotations

from tests.helpers import Project, describe

SALES = """
from orchlite import flow


@flow
def sales_etl(n: int = 1) -> int:
    return n


@flow(name="load_all")
def loader() -> int:
    return 2
"""


def test_a_flow_has_one_name_and_both_spellings_name_it(project: Project) -> None:
    project.write("flows.py", SALES)
    listed = {row["name"]: row["target"] for row in project.json("flows", "--json")}
    assert listed == {"sales-etl": "flows.py:sales_etl", "load_all": "flows.py:loader"}

    project.orch("run", "sales-etl")
    project.orch("run", "sales_etl")
    project.orch("run", "flows.py:sales_etl")
    project.orch("run", "load-all")
    project.orch("run", "load_all")
    assert [r["flow"] for r in project.runs()] == ["load_all"] * 2 + ["sales-etl"] * 3

    for spelling in ("sales-etl", "sales_etl"):
        rows = project.json("runs", "--flow", spelling, "--json")
        assert [r["flow"] for r in rows] == ["sales-etl"] * 3, spelling
    for spelling in ("load-all", "load_all"):
        assert len(project.json("runs", "--flow", spelling, "--json")) == 2, spelling


def test_runs_recorded_under_the_other_spelling_are_found(project: Project) -> None:
    """A store written when the flow recorded `sales_etl` (a renamed flow, or an older
    orchlite) lists those runs under either spelling too."""
    project.write("flows.py", SALES.replace("@flow\ndef", '@flow(name="sales_etl")\ndef'))
    project.orch("run", "sales_etl")
    project.write("flows.py", SALES)
    project.orch("run", "sales_etl")
    assert [r["flow"] for r in project.runs()] == ["sales-etl", "sales_etl"]
    for spelling in ("sales-etl", "sales_etl"):
        proc = project.orch("runs", "--flow", spelling)
        assert proc.stdout.count("sales") == 2, describe(proc)


def test_backfill_takes_either_spelling(project: Project) -> None:
    project.write("flows.py", SALES)
    project.write("orch.toml", '[[schedule]]\ntarget = "flows.py:sales_etl"\ncron = "0 3 * * *"\n')
    for spelling, day in (("sales_etl", "2026-03-01"), ("sales-etl", "2026-03-02")):
        proc = project.orch("backfill", spelling, "--start", day, "--end", day)
        assert proc.stdout.count("  claimed\n") == 1, describe(proc)
    assert [r["flow"] for r in project.runs()] == ["sales-etl"] * 2
