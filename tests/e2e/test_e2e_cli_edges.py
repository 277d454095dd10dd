"""`orch`'s edges: what `--json` prints, repeatable options, loading errors, option order."""

from __future__ import annotations

import json

import pytest
from orchtest import Project, describe

PRINTING = """
import subprocess
import sys

from orchlite import flow


@flow
def chatty(fail: bool = False) -> int:
    print("about to divide")
    subprocess.run([sys.executable, "-c", "print('from a child process')"], check=True)
    if fail:
        raise ValueError("boom")
    return 1
"""


@pytest.mark.parametrize("extra", [[], ["--subprocess"]], ids=["in-process", "subprocess"])
def test_json_run_stdout_is_the_document_alone(project: Project, extra: list[str]) -> None:
    project.write("flows.py", PRINTING)
    proc = project.orch("run", "flows.py:chatty", "--json", *extra)
    assert json.loads(proc.stdout)["state"] == "COMPLETED", describe(proc)
    assert "about to divide" in proc.stderr, describe(proc)
    assert "from a child process" in proc.stderr, describe(proc)


@pytest.mark.parametrize("extra", [[], ["--subprocess"]], ids=["in-process", "subprocess"])
def test_json_retry_stdout_is_the_document_alone(project: Project, extra: list[str]) -> None:
    project.write("flows.py", PRINTING)
    project.orch("run", "flows.py:chatty", "-p", "fail=true", expect=1)
    proc = project.orch("retry", "last", "-p", "fail=false", "--json", *extra)
    detail = json.loads(proc.stdout)
    assert detail["state"] == "COMPLETED", describe(proc)
    assert detail["trigger"] == "retry"
    assert "about to divide" in proc.stderr, describe(proc)
