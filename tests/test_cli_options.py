"""`orch`'s argument parsing, in process: global options before or after the subcommand."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from orchlite.cli import app, hoist_global_options


@pytest.mark.parametrize(
    "args",
    [
        ["tui", "--home", "{home}", "--help"],
        ["runs", "--home", "{home}", "--help"],
        ["runs", "--home={home}", "--help"],
        ["daemon", "status", "--home", "{home}", "--help"],
        ["run", "--debug", "--help"],
        ["--home", "{home}", "--debug", "runs", "--help"],
    ],
)
def test_global_options_are_accepted_after_the_subcommand(
    args: list[str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("ORCH_HOME", str(tmp_path / "before"))  # restored after the test
    home = str(tmp_path / "elsewhere" / ".orch")
    result = CliRunner().invoke(app, [a.format(home=home) for a in args])
    assert result.exit_code == 0, result.output
    assert "Usage: orch" in result.output


def test_hoisting_moves_only_global_options_and_stops_at_a_double_dash() -> None:
    assert hoist_global_options(["runs", "--state", "failed", "--home", "h", "--debug"]) == [
        "--home",
        "h",
        "--debug",
        "runs",
        "--state",
        "failed",
    ]
    assert hoist_global_options(["run", "f.py:x", "--", "--debug"]) == [
        "run",
        "f.py:x",
        "--",
        "--debug",
    ]
