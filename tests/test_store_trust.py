"""Whose `.orch/` may be used: ownership, modes and the walk up, through `orch` as a child.

A store holds pickles, so a store someone else can write runs their code as whoever reads
it. These tests run as root when the suite does: another user's store is made by chowning it
to `nobody`, and root must refuse it like anyone else.
"""

from __future__ import annotations

import contextlib
import os
import pickle
import pwd
import shutil
import sqlite3
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from tests.helpers import assert_usage_error, child_env
from tests.helpers import orch as run_orch

FLOW = """
from orchlite import flow, task
from orchlite.cache_policies import INPUTS

@task(cache_policy=INPUTS)
def small(x: int) -> int:
    return x + 1

@task(cache_policy=INPUTS)
def big(x: int) -> bytes:
    return bytes([x % 256]) * 100_000

@flow
def main(x: int = 1) -> int:
    return small(x) + len(big(x + 100))
"""

needs_root = pytest.mark.skipif(os.geteuid() != 0, reason="making another user's store needs root")


class Payload:
    """Unpickling this runs `touch MARKER`: what a hostile cache entry would hold."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple[object, tuple[str]]:
        return os.system, (f"touch {self.marker}",)


def orch(
    cwd: Path, *args: str, home: Path | None = None, expect: int | None = 0
) -> subprocess.CompletedProcess[str]:
    """`orch ARGS` in `cwd`; with `home` None, the store is found from `cwd` (no ORCH_HOME)."""
    return run_orch(
        cwd, *args, env=child_env(home), expect=expect, preexec_fn=lambda: os.umask(0o022)
    )


def plant(home: Path, marker: Path) -> None:
    """Make every cache entry's result a pickle that creates `marker` when loaded."""
    with contextlib.closing(sqlite3.connect(home / "orch.db")) as conn, conn:
        changed = conn.execute(
            "UPDATE cache_entries SET result_ref = NULL, result_data = ?,"
            " result_serializer = 'cloudpickle'",
            (pickle.dumps(Payload(marker)),),
        ).rowcount
    assert changed == 2  # committed, and closed: no WAL left for a later walk to race


def give_away(path: Path, uid: int) -> None:
    for item in [path, *path.rglob("*")]:
        os.chown(item, uid, uid, follow_symlinks=False)


@pytest.fixture
def nobody() -> int:
    return pwd.getpwnam("nobody").pw_uid


def modes(home: Path) -> dict[str, int]:
    return {str(p): stat.S_IMODE(p.lstat().st_mode) for p in [home, *home.rglob("*")]}


@needs_root
def test_a_store_owned_by_another_user_is_refused_and_nothing_runs(
    tmp_path: Path, nobody: int
) -> None:
    project = tmp_path / "project"
    project.mkdir()
    (project / "flow.py").write_text(FLOW)
    home = project / ".orch"
    orch(project, "run", "flow.py:main", home=home)
    marker = tmp_path / "payload-ran"
    plant(home, marker)

    # The planted entry is live: a store the user trusts would run it on the next run.
    control = tmp_path / "control"
    shutil.copytree(home, control)
    orch(project, "run", "flow.py:main", home=control, expect=None)
    assert marker.exists()
    marker.unlink()

    give_away(home, nobody)
    for args in (["run", "flow.py:main"], ["runs"], ["show", "last"], ["cache", "ls"]):
        line = assert_usage_error(orch(project, *args, home=home, expect=None), 4)
        assert str(home) in line and "nobody" in line, line
        assert "--home" in line and "ORCH_HOME" in line and "[safe] directories" in line
        assert str(tmp_path / "config" / "orchlite" / "config.toml") in line
    assert not marker.exists()
    assert {os.stat(p).st_uid for p in [home, *home.rglob("*")]} == {nobody}

    # `orch doctor` reports it and touches nothing.
    doctor = orch(project, "doctor", home=home, expect=4)
    assert "nobody" in doctor.stdout and "not checked" in doctor.stdout
    assert {os.stat(p).st_uid for p in [home, *home.rglob("*")]} == {nobody}

    # Trusting it is an explicit line in the user's config.toml.
    config = tmp_path / "config" / "orchlite" / "config.toml"
    config.parent.mkdir(parents=True)
    config.write_text(f"[safe]\ndirectories = [{str(home)!r}]\n")
    listed = orch(project, "runs", "--json", home=home)
    assert "flow_runs" not in listed.stderr and listed.stdout.startswith("[")
    assert not marker.exists()


@needs_root
def test_a_file_inside_the_store_owned_by_another_user_is_refused(
    tmp_path: Path, nobody: int
) -> None:
    (tmp_path / "flow.py").write_text(FLOW)
    home = tmp_path / ".orch"
    orch(tmp_path, "run", "flow.py:main", home=home)
    for name in ("orch.db", "blobs"):
        os.chown(home / name, nobody, nobody)
        line = assert_usage_error(orch(tmp_path, "runs", home=home, expect=None), 4)
        assert str(home / name) in line and "nobody" in line
        os.chown(home / name, 0, 0)
    orch(tmp_path, "runs", home=home)


@needs_root
def test_the_walk_up_never_uses_a_store_in_another_users_folder(
    tmp_path: Path, nobody: int
) -> None:
    shared = tmp_path / "shared"
    shared.mkdir()
    (shared / "flow.py").write_text(FLOW)
    orch(shared, "run", "flow.py:main")
    marker = tmp_path / "payload-ran"
    plant(shared / ".orch", marker)
    give_away(shared, nobody)
    shared.chmod(0o1777)  # a world-writable shared folder, like /tmp

    project = shared / "project"
    project.mkdir()  # the user's own folder, with no store of its own yet
    (project / "flow.py").write_text(FLOW)
    ran = orch(project, "run", "flow.py:main")
    assert not marker.exists(), ran.stderr
    assert (project / ".orch" / "orch.db").is_file()
    with sqlite3.connect(shared / ".orch" / "orch.db") as conn:
        assert conn.execute("SELECT COUNT(*) FROM flow_runs").fetchone()[0] == 1
    assert os.stat(project / ".orch").st_uid == os.geteuid()


@needs_root
def test_a_store_listed_as_safe_is_found_by_the_walk_up(tmp_path: Path, nobody: int) -> None:
    team = tmp_path / "team"
    team.mkdir()
    (team / "flow.py").write_text(FLOW)
    orch(team, "run", "flow.py:main")
    give_away(team, nobody)
    below = team / "reports"
    below.mkdir()
    config = tmp_path / "config" / "orchlite" / "config.toml"
    config.parent.mkdir(parents=True)
    config.write_text(f"[safe]\ndirectories = [{str(team)!r}]\n")  # the folder holding it
    listed = orch(below, "runs", "--json")
    assert listed.stdout.count('"id"') == 1
    assert not (below / ".orch").exists()
    assert stat.S_IMODE((team / ".orch").stat().st_mode) == 0o700  # used as it is


def test_the_walk_up_finds_the_users_own_store_in_a_parent(tmp_path: Path) -> None:
    (tmp_path / "flow.py").write_text(FLOW)
    orch(tmp_path, "run", "flow.py:main")
    below = tmp_path / "sub" / "dir"
    below.mkdir(parents=True)
    listed = orch(below, "runs", "--json")
    assert listed.stdout.count('"id"') == 1
    assert not (below / ".orch").exists()


@pytest.mark.parametrize(
    ("name", "mode"),
    [(".", 0o770), (".", 0o757), ("orch.db", 0o620), ("blobs", 0o777)],
    ids=["home-group", "home-other", "db-group", "blobs-all"],
)
def test_a_store_others_can_write_is_refused_with_the_chmod_that_fixes_it(
    tmp_path: Path, name: str, mode: int
) -> None:
    (tmp_path / "flow.py").write_text(FLOW)
    home = tmp_path / ".orch"
    orch(tmp_path, "run", "flow.py:main", home=home)
    target = (home / name).resolve()
    target.chmod(mode)
    for args in (["runs"], ["run", "flow.py:main"]):
        line = assert_usage_error(orch(tmp_path, *args, home=home, expect=None), 4)
        assert str(target) in line and f"{mode:04o}" in line, line
        assert f"chmod -R go-rwx {home}" in line
    assert stat.S_IMODE(target.stat().st_mode) == mode  # refused, not silently changed
    subprocess.run(["chmod", "-R", "go-rwx", str(home)], check=True)
    orch(tmp_path, "runs", home=home)


def test_a_store_others_can_read_is_narrowed_with_a_warning(tmp_path: Path) -> None:
    (tmp_path / "flow.py").write_text(FLOW)
    home = tmp_path / ".orch"
    orch(tmp_path, "run", "flow.py:main", home=home)
    home.chmod(0o755)
    (home / "orch.db").chmod(0o644)
    [blob] = [p for p in (home / "blobs").glob("*/*")]
    blob.chmod(0o644)
    blob.parent.chmod(0o755)

    listed = orch(tmp_path, "runs", "--json", home=home)
    warnings = [line for line in listed.stderr.splitlines() if line.strip()]
    assert len(warnings) == 1 and warnings[0].startswith("warning: "), listed.stderr
    assert str(home) in warnings[0] and "narrowed" in warnings[0]
    assert listed.stdout.count('"id"') == 1
    too_open = {path: oct(mode) for path, mode in modes(home).items() if mode & 0o077}
    assert not too_open
    assert stat.S_IMODE(home.stat().st_mode) == 0o700
    assert stat.S_IMODE(blob.stat().st_mode) == 0o600

    again = orch(tmp_path, "runs", home=home)
    assert "warning" not in again.stderr


def test_a_config_file_others_can_write_is_not_trusted(tmp_path: Path) -> None:
    config = tmp_path / "config" / "orchlite" / "config.toml"
    config.parent.mkdir(parents=True)
    config.write_text('[safe]\ndirectories = ["/srv/shared/.orch"]\n')
    config.chmod(0o666)
    project = tmp_path / "project"
    project.mkdir()
    (project / "flow.py").write_text(FLOW)
    # The walk up reads it only when it meets a folder owned by someone else: ask directly.
    check = subprocess.run(
        [sys.executable, "-c", "from orchlite.config import safe_directories; safe_directories()"],
        env={**os.environ, "XDG_CONFIG_HOME": str(tmp_path / "config")},
        capture_output=True,
        text=True,
    )
    assert check.returncode == 1
    assert f"chmod go-w {config}" in check.stderr
