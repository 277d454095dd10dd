"""Hostile files in a project: the daemon keeps serving, and listings keep listing.

An `orch.toml` or a flow file can hold what no parser survives as written: an integer of
thousands of digits (over Python's limit on converting them), inline tables nested hundreds
deep (RecursionError), an expression of a hundred thousand operators (RecursionError or
MemoryError in the parser). Each such file is one reported problem: `orch flows` skips it
with a line, `orch schedules` names it and lists the rest (exit 3), and the daemon logs it
and keeps firing the other schedules. A full disk while the daemon records a slot is one
logged line, retried at every tick until space is back; the daemon never exits on it.

Everything runs the real `orch` in child processes in a temporary project.
"""

from __future__ import annotations

import json
import resource
import signal
import time
from pathlib import Path

import pytest

from orchlite.states import StateName
from tests.helpers import orch, start_daemon, stop_daemon, wait_for, write
from tests.helpers.daemon import runs

FLOW = """
from orchlite import flow, interval


@flow(schedules=[interval(seconds=1)])
def fine():
    return 1
"""

HOSTILE = {
    "long-integer": ("orch.toml", "x = " + "9" * 5000 + "\n", "Exceeds the limit"),
    "nested-tables": ("orch.toml", "x = " + "{a = " * 500 + "1" + "}" * 500 + "\n", "nested"),
    "nested-arrays": ("orch.toml", "x = " + "[" * 3000 + "]" * 3000 + "\n", "nested"),
    "deep-unary": ("deep.py", "x = " + "-" * 100_000 + "1\n", "nested too deeply"),
    "deep-sum": ("deep.py", "x = " + "1+" * 200_000 + "1\n", "nested too deeply"),
}


@pytest.mark.parametrize("case", sorted(HOSTILE))
def test_a_hostile_file_is_one_problem_and_the_rest_is_listed(tmp_path: Path, case: str) -> None:
    name, text, problem = HOSTILE[case]
    write(tmp_path, "flows.py", FLOW)
    (tmp_path / name).write_text(text)

    flows = orch(tmp_path, "flows", "--json", timeout=120)
    assert flows.returncode == 0, flows.stderr
    assert [f["target"] for f in json.loads(flows.stdout)] == ["flows.py:fine"]
    if name.endswith(".py"):
        assert len(flows.stderr.splitlines()) == 1, flows.stderr
        assert flows.stderr.startswith(f"skipped {name}: ") and problem in flows.stderr

    listed = orch(tmp_path, "schedules", "--json", timeout=120)
    assert listed.returncode == 3, listed.stderr
    assert [s["target"] for s in json.loads(listed.stdout)["schedules"]] == ["flows.py:fine"]
    lines = listed.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"error: {name}: "), lines
    assert problem in lines[0] and "internal error" not in lines[0]


def test_the_daemon_serves_through_hostile_files_and_their_edits(tmp_path: Path) -> None:
    write(tmp_path, "flows.py", FLOW)
    toml, deep = HOSTILE["long-integer"], HOSTILE["deep-unary"]
    (tmp_path / toml[0]).write_text(toml[1])
    (tmp_path / deep[0]).write_text(deep[1])
    daemon = start_daemon(tmp_path)
    log = tmp_path / "daemon.log"
    try:
        wait_for(lambda: _completed(tmp_path) >= 1, timeout=60, what="a completed run")
        text = log.read_text()
        assert toml[2] in text and deep[2] in text, text
        # Edits to other hostile forms are read again, reported, and survived too.
        (tmp_path / "orch.toml").write_text(HOSTILE["nested-arrays"][1])
        (tmp_path / "deep.py").write_text(HOSTILE["deep-sum"][1])
        wait_for(
            lambda: log.read_text().count("loaded 1 schedule(s)") >= 2,
            timeout=30,
            what="the reload",
        )
        done = _completed(tmp_path)
        wait_for(lambda: _completed(tmp_path) > done, timeout=30, what="another completed run")
        assert daemon.poll() is None
    finally:
        stop_daemon(daemon)
    assert "internal error" not in log.read_text()


def test_a_full_disk_while_recording_a_slot_is_logged_and_retried(tmp_path: Path) -> None:
    """The disk fills (a file-size limit on the daemon, so a write past it fails) while the
    daemon runs; it logs the error, keeps ticking, and fires again once there is room."""
    write(tmp_path, "flows.py", FLOW)
    log = tmp_path / "daemon.log"
    daemon = start_daemon(
        tmp_path,
        # A write past the limit fails with EFBIG instead of killing the process.
        preexec_fn=lambda: signal.signal(signal.SIGXFSZ, signal.SIG_IGN),
    )
    wal = tmp_path / ".orch" / "orch.db-wal"
    try:
        wait_for(lambda: _completed(tmp_path) >= 1, timeout=60, what="a completed run")
        full = (wal.stat().st_size + 1000, resource.RLIM_INFINITY)
        resource.prlimit(daemon.pid, resource.RLIMIT_FSIZE, full)
        wait_for(lambda: _errors(log), timeout=60, what="the error line")
        time.sleep(2.0)  # a slot per second: each one fails while the disk is full
        assert daemon.poll() is None
        errors = _errors(log)
        assert len(errors) == 1, errors  # logged once, not at every tick
        assert f"cannot write {wal.parent / 'orch.db'}" in errors[0]
        assert errors[0].endswith("; trying again at each tick")
        resource.prlimit(daemon.pid, resource.RLIMIT_FSIZE, (resource.RLIM_INFINITY,) * 2)
        done = _completed(tmp_path)
        wait_for(lambda: _completed(tmp_path) > done, timeout=30, what="a run after recovery")
    finally:
        stop_daemon(daemon)
    assert "Traceback" not in log.read_text()


def _errors(log: Path) -> list[str]:
    return [line for line in log.read_text().splitlines() if " error: " in line]


def _completed(root: Path) -> int:
    return sum(r.state == StateName.COMPLETED.value for r in runs(root))
