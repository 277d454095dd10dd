"""`orch`'s edges: what `--json` prints, repeatable options, loading errors, option order."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest

from tests.helpers import ORCH, TIMEOUT, Project, assert_usage_error, describe
from tests.helpers import orch as run_orch

PRINTING = """
import subprocess
from pathlib import Path
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


def _on_a_terminal(project: Project, env: dict[str, str], *args: str) -> str:
    """What `orch ARGS` writes to stdout when stdout is a real terminal (a pty)."""
    leader, follower = os.openpty()
    try:
        proc = subprocess.run(
            [*ORCH, *args],
            cwd=project.root,
            env=env,
            stdout=follower,
            stderr=subprocess.PIPE,
            text=True,
            timeout=TIMEOUT,
            check=True,
        )
        os.close(follower)
        follower = -1
        chunks = []
        while True:
            try:
                chunk = os.read(leader, 65536)
            except OSError:  # EIO: the terminal's other end is closed and drained
                break
            if not chunk:
                break
            chunks.append(chunk)
        assert proc.returncode == 0
        return b"".join(chunks).decode()
    finally:
        if follower != -1:
            os.close(follower)
        os.close(leader)


@pytest.mark.parametrize(
    ("variable", "value"), [("NO_COLOR", "1"), ("TERM", "dumb")], ids=["NO_COLOR", "TERM=dumb"]
)
def test_tables_honour_no_color_and_dumb_terminals(
    project: Project, variable: str, value: str
) -> None:
    project.write("flows.py", PRINTING)
    project.orch("run", "flows.py:chatty", "-p", "fail=true", expect=1)
    coloured = {k: v for k, v in project.env.items() if k != "NO_COLOR"}
    coloured["TERM"] = "xterm-256color"
    assert "\x1b[31mFAILED\x1b[0m" in _on_a_terminal(project, coloured, "runs")
    plain = _on_a_terminal(project, {**coloured, variable: value}, "runs")
    assert "FAILED" in plain
    assert "\x1b[" not in plain


TWO_FLOWS = """
from orchlite import flow


@flow
def good() -> int:
    return 1


@flow
def bad() -> int:
    raise ValueError("boom")
"""


def test_runs_filters_are_repeatable(project: Project) -> None:
    project.write("flows.py", TWO_FLOWS)
    project.orch("run", "flows.py:good")
    project.orch("run", "flows.py:bad", expect=1)

    def states(*args: str) -> list[str]:
        return sorted(r["state"] for r in project.json("runs", "--json", *args))

    assert states("--state", "failed", "--state", "completed") == ["COMPLETED", "FAILED"]
    assert states("--state", "failed", "--state", "crashed") == ["FAILED"]
    assert states("--flow", "good", "--flow", "bad") == ["COMPLETED", "FAILED"]
    assert states("--flow", "good", "--flow", "bad", "--state", "completed") == ["COMPLETED"]
    proc = project.orch("runs", "--state", "failed", "--state", "nope", expect=2)
    assert "unknown state 'nope'" in proc.stderr


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (["--max-runs", "0"], "--max-runs"),
        (["--max-runs", "-3"], "--max-runs"),
        (["--tick", "0"], "--tick"),
    ],
)
def test_systemd_unit_is_printed_only_for_valid_options(
    project: Project, args: list[str], needle: str
) -> None:
    proc = project.orch("daemon", *args, "--print-systemd-unit", expect=None)
    assert_usage_error(proc, 2, needle)
    assert proc.stdout == ""


def test_run_by_name_reports_the_syntax_error_of_the_file_holding_it(project: Project) -> None:
    project.write("good.py", TWO_FLOWS.replace("def bad", "def other"))
    project.write(
        "broken.py",
        """
        from orchlite import flow


        @flow
        def bad() -> int:
            return (1 +
        """,
    )
    proc = project.orch("run", "bad", expect=None)
    line = assert_usage_error(proc, 3, "broken.py:6", "syntax error")
    assert "no flow named" not in line
    # A name no file mentions is still "no flow named", exit 2.
    assert_usage_error(project.orch("run", "absent", expect=None), 2, "no flow named 'absent'")


def test_global_options_work_after_the_subcommand(project: Project, tmp_path: Path) -> None:
    project.write("flows.py", TWO_FLOWS)
    project.orch("run", "flows.py:good")
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    env = {k: v for k, v in project.env.items() if k != "ORCH_HOME"}

    def orch(*args: str) -> subprocess.CompletedProcess[str]:
        return run_orch(elsewhere, *args, env=env)

    listed = orch("runs", "--home", str(project.home), "--json")
    assert [r["flow"] for r in json.loads(listed.stdout)] == ["good"], describe(listed)
    missing = orch("run", "nope.py", "--debug")
    assert missing.returncode == 3, describe(missing)
    assert "Traceback" in missing.stderr, "--debug after the subcommand shows the traceback"
    assert_usage_error(orch("runs", "--home"), 2, "--home needs a value")
    # `orch tui --home X` (documented so): the option reaches the TUI, which names the
    # missing store instead of starting.
    absent = tmp_path / "absent" / ".orch"
    assert_usage_error(orch("tui", "--home", str(absent)), 2, str(absent))
