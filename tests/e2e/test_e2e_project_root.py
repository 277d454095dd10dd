"""Flows run in the project root (the folder holding `.orch/` or `orch.toml`), wherever `orch`
is started from: a subfolder, another folder with `--home`, or with an absolute target."""

from __future__ import annotations

import os
import signal
import subprocess
from pathlib import Path

import pytest

from tests.helpers import ORCH, Project, child_env, describe, finish, orch, wait_for

SALES = """
import os
from pathlib import Path

from orchlite import flow


@flow
def etl() -> int:
    Path("cwd.txt").write_text(os.getcwd())
    return len(Path("data/sales.csv").read_text().splitlines())
"""

MODES = pytest.mark.parametrize("extra", [[], ["--subprocess"]], ids=["in-process", "subprocess"])


def make_project(root: Path, marker: str) -> None:
    """A project whose root is marked by an `orch.toml` or an existing `.orch/`."""
    (root / "data").mkdir(parents=True)
    (root / "data" / "sales.csv").write_text("day,amount\n2026-01-01,3\n")
    (root / "flows.py").write_text(SALES.lstrip())
    if marker == "orch.toml":
        (root / "orch.toml").write_text("")
    else:
        (root / ".orch").mkdir(mode=0o700)


def orch_at(cwd: Path, *args: str, home: Path | None = None) -> subprocess.CompletedProcess[str]:
    """`orch ARGS` started in `cwd`; ORCH_HOME only when `home` is given."""
    return orch(cwd, *args, env=child_env(home))


def ran_in(root: Path) -> Path:
    return Path((root / "cwd.txt").read_text())


@MODES
@pytest.mark.parametrize("marker", ["orch.toml", ".orch"])
def test_run_from_a_subfolder(tmp_path: Path, extra: list[str], marker: str) -> None:
    root = tmp_path / "proj"
    make_project(root, marker)
    proc = orch_at(root / "data", "run", "flows.py:etl", "--json", *extra)
    assert proc.returncode == 0, describe(proc)
    assert ran_in(root) == root
    assert not (root / "data" / ".orch").exists()
    assert (root / ".orch" / "orch.db").is_file()
    proc = orch_at(root / "data", "runs", "--json")
    assert len(proc.stdout.split('"id"')) == 2, describe(proc)


@MODES
def test_run_with_home_from_another_folder(tmp_path: Path, extra: list[str]) -> None:
    root = tmp_path / "proj"
    make_project(root, ".orch")
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    proc = orch_at(elsewhere, "--home", str(root / ".orch"), "run", "flows.py:etl", *extra)
    assert proc.returncode == 0, describe(proc)
    assert ran_in(root) == root
    assert os.listdir(elsewhere) == []


@MODES
def test_run_an_absolute_target_from_another_folder(tmp_path: Path, extra: list[str]) -> None:
    root = tmp_path / "proj"
    make_project(root, "orch.toml")
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    proc = orch_at(elsewhere, "run", f"{root / 'flows.py'}:etl", *extra)
    assert proc.returncode == 0, describe(proc)
    assert ran_in(root) == root
    assert os.listdir(elsewhere) == [], "an absolute target must not create ./.orch"
    assert (root / ".orch" / "orch.db").is_file()


def test_retry_runs_in_the_project_root(tmp_path: Path) -> None:
    root = tmp_path / "proj"
    make_project(root, ".orch")
    (root / "data" / "sales.csv").rename(root / "data" / "later.csv")
    assert orch_at(root, "run", "flows.py:etl").returncode == 1
    (root / "data" / "later.csv").rename(root / "data" / "sales.csv")
    proc = orch_at(root / "data", "retry", "last")
    assert proc.returncode == 0, describe(proc)
    assert ran_in(root) == root


@pytest.mark.slow
@pytest.mark.parametrize("where", ["subfolder", "elsewhere with --home"])
def test_the_daemon_started_in_a_subfolder_runs_flows_in_the_root(
    tmp_path: Path, where: str
) -> None:
    root = tmp_path / "proj"
    make_project(root, ".orch")
    (root / "orch.toml").write_text('[[schedule]]\ntarget = "flows.py:etl"\ninterval = 1\n')
    project = Project(root)
    env = child_env(project.home)
    del env["ORCH_HOME"]
    cwd, extra = root / "data", []
    if where != "subfolder":
        cwd, extra = tmp_path / "elsewhere", ["--home", str(project.home)]
        cwd.mkdir()
    daemon = subprocess.Popen(
        [*ORCH, "daemon", "--tick", "0.2", "--grace", "1", *extra],
        cwd=cwd,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        wait_for(lambda: project.recorded() and project.recorded()[-1]["state"] != "RUNNING")
    finally:
        daemon.send_signal(signal.SIGTERM)
        finish(daemon)
    first = project.recorded()[-1]
    assert first["state"] == "COMPLETED", first
    assert ran_in(root) == root
    assert not (cwd / ".orch").exists()
