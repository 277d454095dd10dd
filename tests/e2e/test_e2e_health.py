"""`orch flows --health`: each flow's runs, failure rate and last failure, from the store."""

from __future__ import annotations

import json
import re

import pytest

from tests.helpers import Project

FLOWS = r"""
from orchlite import flow


@flow
def etl(fail: bool = False) -> int:
    if fail:
        raise ValueError("bad row 7 \x1b[2J")
    return 1
"""

CONTROL = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f]")


@pytest.mark.slow
def test_flow_health_as_a_table_and_as_json(project: Project) -> None:
    project.write_flow("flows.py", FLOWS)
    project.orch("run", "flows.py:etl")
    project.orch("run", "flows.py:etl", "-p", "fail=true", expect=None)

    table = project.orch("flows", "--health").stdout
    header, etl = table.splitlines()
    assert header.split() == [
        "FLOW",
        "RUNS",
        "FAILED",
        "P50",
        "P95",
        "LATE",
        "SKIPPED",
        "LAST",
        "FAILURE",
    ]
    assert etl.split()[:3] == ["etl", "2", "50%"]
    assert "ValueError: bad row 7 \\x1b[2J" in etl
    assert not CONTROL.search(table)

    shown = json.loads(project.orch("flows", "--health", "--window", "7d", "--json").stdout)
    assert shown["window"] == "7d"
    (flow,) = shown["flows"]
    assert (flow["flow"], flow["runs"], flow["failed"], flow["failure_rate"]) == ("etl", 2, 1, 0.5)
    assert flow["last_failure"].startswith("ValueError: bad row 7 \x1b[2J")
    assert flow["p50"] is not None and flow["p50_change"] is None

    wrong = project.orch("flows", "--health", "--window", "1y", expect=2)
    assert "use one of 24h, 7d, 30d" in wrong.stderr
