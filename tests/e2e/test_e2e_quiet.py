"""`orch run --quiet` (and ORCH_QUIET=1 off a terminal): nothing on success, everything on
failure, as `chronic` does for a cron job; `--json` still prints the run."""

from __future__ import annotations

import json

import pytest

from tests.helpers import Project

FLOWS = """
from orchlite import flow, task


@task
def shout(word: str) -> str:
    print("shouting", word)
    return word.upper()


@flow
def ok() -> str:
    return shout("a")


@flow
def bad() -> None:
    shout("b")
    raise ValueError("broken on purpose")
"""


@pytest.mark.parametrize("where", ["in-process", "--subprocess"])
def test_quiet_prints_nothing_on_success_and_everything_on_failure(
    project: Project, where: str
) -> None:
    project.write("flows.py", FLOWS)
    extra = ["--subprocess"] if where == "--subprocess" else []
    quiet = project.orch("run", "flows.py:ok", "--quiet", *extra)
    assert (quiet.stdout, quiet.stderr) == ("", "")
    assert project.runs()[0]["state"] == "COMPLETED"

    failed = project.orch("run", "flows.py:bad", "-q", *extra, expect=1)
    assert failed.stdout == ""
    assert "shouting b" in failed.stderr
    assert "ValueError: broken on purpose" in failed.stderr
    assert failed.stderr.rstrip().splitlines()[-1].startswith("Run ")


def test_orch_quiet_set_in_the_environment_and_json_still_printed(project: Project) -> None:
    project.write("flows.py", FLOWS)
    proc = project.orch("run", "flows.py:ok", extra_env={"ORCH_QUIET": "1"}, expect=None)
    assert (proc.returncode, proc.stdout, proc.stderr) == (0, "", "")
    shown = json.loads(project.orch("run", "flows.py:ok", "-q", "--json").stdout)
    assert shown["state"] == "COMPLETED"
