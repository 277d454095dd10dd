"""The store's home travels explicitly: `orch --home X run ...` and an absolute target
record into the right store without writing this process's environment."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from typer.testing import CliRunner

from orchlite.cli import app
from orchlite.store import Store

FLOW = """
import os
from pathlib import Path

from orchlite import flow


@flow
def etl() -> str:
    Path("cwd.txt").write_text(os.getcwd())
    return "done"
"""


@pytest.fixture
def project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A project with an `orch.toml` and a flow file; the test stands in another folder
    with no ORCH_HOME set."""
    root = tmp_path / "proj"
    root.mkdir()
    (root / "orch.toml").write_text("")
    (root / "flows.py").write_text(FLOW.lstrip())
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.delenv("ORCH_HOME")
    monkeypatch.chdir(elsewhere)
    return root


def _invoke(args: list[str]) -> None:
    before = dict(os.environ)
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, (result.output, result.exception)
    assert dict(os.environ) == before


def _recorded_flows(home: Path) -> list[str]:
    with Store(home) as store:
        return [run.flow_name for run in store.list_flow_runs()]


@pytest.mark.parametrize("subprocess", [False, True], ids=["in-process", "subprocess"])
def test_home_option_leaves_the_environment_alone(
    project: Path, subprocess: bool, tmp_path: Path
) -> None:
    home = project / ".orch"
    home.mkdir(mode=0o700)
    extra = ["--subprocess"] if subprocess else []
    _invoke(["--home", str(home), "run", str(project / "flows.py") + ":etl", *extra])
    assert _recorded_flows(home) == ["etl"]
    assert Path((project / "cwd.txt").read_text()) == project
    assert os.listdir(tmp_path / "elsewhere") == []


def test_an_absolute_target_leaves_the_environment_alone(project: Path, tmp_path: Path) -> None:
    _invoke(["run", f"{project / 'flows.py'}:etl"])
    assert _recorded_flows(project / ".orch") == ["etl"]
    assert Path((project / "cwd.txt").read_text()) == project
    assert os.listdir(tmp_path / "elsewhere") == [], "no ./.orch where orch was started"


def test_commands_that_read_and_write_variables_use_the_named_home(
    project: Path, tmp_path: Path
) -> None:
    home = project / ".orch"
    home.mkdir(mode=0o700)
    _invoke(["variable", "set", "batch_size", "250", "--home", str(home)])
    with Store(home) as store:
        assert store.get_variable("batch_size") is not None
    result = CliRunner().invoke(app, ["--home", str(home), "variable", "get", "batch_size"])
    assert result.stdout.strip() == "250", result.output
    _invoke(["--home", str(home), "variable", "rm", "batch_size"])
    _invoke(["--home", str(home), "artifacts"])
    assert os.listdir(tmp_path / "elsewhere") == []
