"""Every `orch` command has help text and is documented in the README or the docs."""

from __future__ import annotations

from pathlib import Path

import pytest
import typer
from typer.testing import CliRunner

from orchlite.cli import app

ROOT = Path(__file__).resolve().parents[1]
DOCS = "\n".join(
    path.read_text() for path in [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
)


def _commands(group: object, prefix: tuple[str, ...] = ()) -> list[tuple[str, ...]]:
    found = []
    for name, command in sorted(getattr(group, "commands", {}).items()):
        path = (*prefix, name)
        found.append(path)
        found.extend(_commands(command, path))
    return found


COMMANDS = _commands(typer.main.get_command(app))


def test_the_command_list_is_complete() -> None:
    assert ("run",) in COMMANDS and ("cache", "ls") in COMMANDS and len(COMMANDS) > 15


@pytest.mark.parametrize("path", COMMANDS, ids=" ".join)
def test_every_command_has_help_and_is_documented(path: tuple[str, ...]) -> None:
    result = CliRunner().invoke(app, [*path, "--help"])
    assert result.exit_code == 0, result.output
    assert "Usage:" in result.output
    assert f"orch {' '.join(path)}" in DOCS, f"`orch {' '.join(path)}` is not documented"
