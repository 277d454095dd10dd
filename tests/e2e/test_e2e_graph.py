"""`orch show RUN --graph`: a run's task runs as a dependency graph, as text and as JSON."""

from __future__ import annotations

import re

from tests.helpers import Project

PIPELINE = """
from orchlite import flow, task


@task
def extract() -> list[int]:
    return list(range(12))


@task
def double(x: int) -> int:
    if x == 7:
        raise ValueError("seven")
    return 2 * x


@task
def inc(x: int) -> int:
    return x + 1


@task
def total(xs: list[int]) -> int:
    return sum(xs)


@flow
def report(n: int = 1) -> int:
    return n


@flow
def pipeline() -> int:
    rows = extract.submit()
    doubled = double.map(rows.result(), wait_for=[rows])
    step = inc.submit(1)
    step = inc.submit(step)
    step = inc.submit(step)
    report(3)
    return total.submit(doubled).result()
"""


def test_show_graph_draws_map_groups_chains_and_subflows(project: Project) -> None:
    project.write("flows.py", PIPELINE)
    project.orch("run", "flows.py:pipeline", expect=1)  # double(7) fails, and so total

    lines = project.orch("show", "last", "--graph").stdout.splitlines()
    assert lines[0].startswith("pipeline / pipeline  ✗ FAILED")
    assert lines[1] == "17 task runs, 1 subflow: 7 nodes in 3 layers"
    assert all(len(line) <= 80 for line in lines)  # not a terminal: 80 columns
    assert not any("\x1b" in line for line in lines)
    rule = "─" * 72
    body = [re.sub(r" +\d+(ms|\.\ds)$", "", line) for line in lines[2:]]  # no durations
    assert body == [
        f"layer 1 {rule}",
        "  ✓ extract-0",
        "  ✓ inc-0",
        "  ✓ subflow report",
        f"layer 2 {rule}",
        "  ✗ double ×12 (11 ✓ 1 ✗)",
        "    ← extract-0",
        "  ✓ inc-1",
        "    ← inc-0",
        f"layer 3 {rule}",
        "  ✓ inc-2",
        "    ← inc-1",
        "  ✗ total-0",
        "    ← double ×12",
    ]

    shown = project.json("show", "last", "--graph", "--json")
    assert shown["flow"] == "pipeline" and shown["state"] == "FAILED"
    nodes = {node["id"]: node for node in shown["nodes"]}
    assert [node["id"] for node in shown["nodes"]] == [
        "t0",
        "t13",
        "s16",
        "m1",
        "t14",
        "t15",
        "t17",
    ]
    double = nodes["m1"]
    assert double["kind"] == "map" and double["name"] == "double"
    assert double["positions"] == [1, 12] and double["size"] == 12
    assert double["counts"] == {"COMPLETED": 11, "FAILED": 1}
    assert double["state"] == "FAILED" and double["layer"] == 1
    subflow = nodes["s16"]
    assert subflow["kind"] == "subflow" and subflow["flow"] == "report"
    assert subflow["run"] == project.show()["children"][0]["id"]
    assert shown["edges"] == [
        {"from": "t0", "to": "m1", "count": 12},
        {"from": "t13", "to": "t14", "count": 1},
        {"from": "t14", "to": "t15", "count": 1},
        {"from": "m1", "to": "t17", "count": 8},  # total stopped at the failed double-7
    ]
