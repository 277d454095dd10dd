"""A store that is missing where the user named it, or that is not a folder, is an error that
names its path: never `healthy`, never `no runs`."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from tests.helpers import Project, assert_usage_error, child_env, orch


def orch_in(folder: Path, *args: str, home: Path | None = None) -> subprocess.CompletedProcess[str]:
    """`orch ARGS` in `folder`, with ORCH_HOME set only when `home` is given."""
    return orch(folder, *args, env=child_env(home))


def test_doctor_where_there_is_no_store(tmp_path: Path) -> None:
    proc = orch_in(tmp_path, "doctor")
    assert_usage_error(proc, 2, str(tmp_path / ".orch"), "no store")
    assert not (tmp_path / ".orch").exists()


@pytest.mark.parametrize(
    "command", [["runs"], ["doctor"], ["cache", "ls"], ["gc"], ["show", "last"]]
)
def test_a_home_named_but_missing(tmp_path: Path, command: list[str]) -> None:
    missing = tmp_path / "nonexistent" / ".orch"
    for args in (["--home", str(missing), *command], [*command, "--home", str(missing)]):
        proc = orch_in(tmp_path, *args)
        assert_usage_error(proc, 2, str(missing))
    proc = orch_in(tmp_path, *command, home=missing)
    assert_usage_error(proc, 2, str(missing))
    assert not missing.parent.exists()


@pytest.mark.parametrize(
    "command", [["runs"], ["doctor"], ["show", "last"], ["run", "flows.py:hello"], ["flows"]]
)
def test_a_dot_orch_that_is_a_plain_file(project: Project, command: list[str]) -> None:
    project.write("flows.py", "from orchlite import flow\n\n@flow\ndef hello():\n    return 1\n")
    project.home.write_text("not a store\n")
    for proc in (orch_in(project.root, *command), project.orch(*command, expect=None)):
        assert_usage_error(proc, 4, str(project.home), "not a folder")
    assert project.home.read_text() == "not a store\n"
