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


def test_the_value_of_a_subcommands_option_is_never_hoisted() -> None:
    from typer.main import get_command

    root = get_command(app)
    args = ["run", "f.py:x", "-p", "--home", "-p", "--debug", "--home", "h"]
    assert hoist_global_options(args, root) == [
        "--home",
        "h",
        "run",
        "f.py:x",
        "-p",
        "--home",
        "-p",
        "--debug",
    ]
    nested = ["variable", "set", "--home", "h", "name", "1"]
    assert hoist_global_options(nested, root)[:2] == ["--home", "h"]


def test_a_parameter_that_looks_like_a_global_option_is_read_as_a_parameter(
    tmp_path: Path,
) -> None:
    from tests.helpers import orch

    (tmp_path / "flow.py").write_text(
        "from orchlite import flow\n\n@flow\ndef echo(x: str) -> str:\n    return x\n"
    )
    bad = orch(tmp_path, "run", "flow.py:echo", "-p", "--home", expect=2)
    assert "parameter" in bad.stderr and "--home" in bad.stderr, bad.stderr
    good = orch(tmp_path, "run", "flow.py:echo", "-p", "x=--debug")
    assert good.returncode == 0, good.stderr
    assert "Traceback" not in good.stderr
