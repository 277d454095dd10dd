"""The parse cache in `.orch/declarations.json`: files that declare no flow are not parsed
again while their time and size hold; the cache is JSON, trusted only when it is ours."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

import pytest

from orchlite.parse_cache import CACHE_FILE, flow_files
from orchlite.project import load_schedules

FLOW = """
from orchlite import flow, interval


@flow(schedules=[interval(60)])
def beat():
    pass
"""
HELPER = "def helper(x):\n    return x + 1\n"
BROKEN = "def helper(x) \n    return x + 1\n"  # the same size, a syntax error


@pytest.fixture
def project(tmp_path: Path) -> Path:
    (tmp_path / ".orch").mkdir(mode=0o700)
    (tmp_path / "flows.py").write_text(FLOW)
    (tmp_path / "helpers.py").write_text(HELPER)
    _age(tmp_path / "flows.py", tmp_path / "helpers.py")
    return tmp_path


def _age(*paths: Path, seconds: float = 60) -> None:
    past = time.time() - seconds
    for path in paths:
        os.utime(path, (past, past))


def _swap_keeping_stamp(path: Path, text: str) -> None:
    """Replace a file's content by one of the same size, keeping its modification time."""
    before = os.stat(path)
    assert len(text.encode()) == before.st_size
    path.write_text(text)
    os.utime(path, ns=(before.st_atime_ns, before.st_mtime_ns))


def _listed(root: Path) -> list[str]:
    return [rel.as_posix() for rel, _tree in flow_files(root)]


def test_a_file_without_flows_is_not_parsed_again_while_unchanged(project: Path) -> None:
    assert _listed(project) == ["flows.py"]
    cache = json.loads((project / ".orch" / CACHE_FILE).read_text())
    assert list(cache["files"]) == ["helpers.py"]  # flow files are parsed each time
    assert (project / ".orch" / CACHE_FILE).stat().st_mode & 0o777 == 0o600
    # Proof that helpers.py is not read: broken behind the cache's back, it goes unseen...
    _swap_keeping_stamp(project / "helpers.py", BROKEN)
    assert _listed(project) == ["flows.py"]
    entries, problems = load_schedules(project)
    assert len(entries) == 1 and problems == []
    # ...until its time changes: then it is parsed, and its syntax error reported.
    _age(project / "helpers.py", seconds=30)
    _entries, problems = load_schedules(project)
    assert [(p.where, p.message) for p in problems] == [("helpers.py", "line 1: expected ':'")]


def test_a_file_that_gains_a_flow_is_read_again(project: Path) -> None:
    flow_files(project)
    (project / "helpers.py").write_text(HELPER + FLOW.replace("beat", "other"))
    entries, _problems = load_schedules(project)
    assert sorted(e.target for e in entries) == ["flows.py:beat", "helpers.py:other"]


def test_a_file_changed_within_the_settle_time_is_not_remembered(project: Path) -> None:
    (project / "fresh.py").write_text(HELPER)
    flow_files(project)
    files = json.loads((project / ".orch" / CACHE_FILE).read_text())["files"]
    assert "fresh.py" not in files and "helpers.py" in files


@pytest.mark.parametrize(
    "spoil",
    [
        lambda path: path.chmod(0o666),  # writable by others
        lambda path: path.write_text("\x80\x04\x95 not json"),  # a pickle, say
        lambda path: path.write_text('{"format": 99, "files": {}}'),
        lambda path: path.write_text('{"format": 1, "files": {"helpers.py": [1, 2, "yes"]}}'),
    ],
    ids=["mode", "not-json", "format", "shape"],
)
def test_a_cache_that_is_not_ours_or_not_its_shape_is_ignored(project: Path, spoil) -> None:
    flow_files(project)
    _swap_keeping_stamp(project / "helpers.py", BROKEN)
    spoil(project / ".orch" / CACHE_FILE)
    _entries, problems = load_schedules(project)  # helpers.py is parsed: the error shows
    assert [p.where for p in problems] == ["helpers.py"]


def test_no_cache_is_written_without_an_orch_folder(tmp_path: Path) -> None:
    (tmp_path / "flows.py").write_text(FLOW)
    (tmp_path / "helpers.py").write_text(HELPER)
    _age(tmp_path / "helpers.py")
    assert _listed(tmp_path) == ["flows.py"]
    assert not (tmp_path / ".orch").exists()
