"""Trust boundaries of `.orch/` and `orch doctor`, through the CLI as a child process."""

from __future__ import annotations

import ctypes
import json
import os
import sqlite3
import stat
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.helpers import orch as run_orch
from tests.helpers import start_daemon, stop_daemon, wait_for

FLOW = """
from orchlite import flow, task
from orchlite.cache_policies import INPUTS

@task(cache_policy=INPUTS)
def big(x: int) -> bytes:
    return bytes([x % 256]) * 100_000

@flow
def main(x: int = 1):
    return len(big(x))
"""


def orch(project: Path, *args: str, unprivileged: bool = False) -> subprocess.CompletedProcess[str]:
    preexec = _without_file_privileges if unprivileged else _plain_umask
    return run_orch(project, *args, preexec_fn=preexec)


def _plain_umask() -> None:
    os.umask(0o022)


PR_CAPBSET_DROP = 24
CAP_DAC_OVERRIDE, CAP_DAC_READ_SEARCH = 1, 2


def _without_file_privileges() -> None:
    """In the child before exec: drop the capabilities that let root ignore file modes.

    Taking them out of the bounding set means the program exec'd next never regains them, so
    file permissions apply to it as to any user (a no-op when not running as root).
    """
    _plain_umask()
    if os.geteuid() != 0:
        return
    libc = ctypes.CDLL(None, use_errno=True)
    for capability in (CAP_DAC_OVERRIDE, CAP_DAC_READ_SEARCH):
        if libc.prctl(PR_CAPBSET_DROP, capability, 0, 0, 0) != 0:
            raise OSError(ctypes.get_errno(), "prctl(PR_CAPBSET_DROP) failed")


@pytest.fixture
def project(tmp_path: Path) -> Path:
    (tmp_path / "flow.py").write_text(FLOW)
    return tmp_path


def modes(home: Path) -> dict[str, int]:
    return {
        str(p.relative_to(home.parent)): stat.S_IMODE(p.stat().st_mode)
        for p in [home, *home.rglob("*")]
    }


def assert_owner_only(home: Path) -> dict[str, int]:
    found = modes(home)
    too_open = {name: oct(mode) for name, mode in found.items() if mode & 0o077}
    assert not too_open
    return found


def blob_paths(home: Path) -> list[Path]:
    return [p for p in (home / "blobs").glob("*/*") if not p.name.startswith(".tmp-")]


def one_line_error(result: subprocess.CompletedProcess[str], code: int = 4) -> str:
    assert result.returncode == code, result.stderr
    assert "Traceback" not in result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("error: ")
    return lines[0]


def test_every_file_is_owner_only_after_run_cache_daemon_and_quarantine(
    project: Path, orch_home: Path
) -> None:
    assert orch(project, "run", "flow.py:main").returncode == 0
    assert orch(project, "run", "flow.py:main").returncode == 0  # answered from the cache
    found = assert_owner_only(orch_home)
    assert found[".orch"] == 0o700
    assert found[".orch/orch.db"] == 0o600
    assert blob_paths(orch_home)
    assert all(found[str(p.relative_to(project))] == 0o600 for p in blob_paths(orch_home))

    # The -wal and -shm files exist while a connection is open: they follow the database.
    conn = sqlite3.connect(orch_home / "orch.db")
    conn.execute("SELECT COUNT(*) FROM flow_runs").fetchone()
    assert (orch_home / "orch.db-shm").exists()
    assert_owner_only(orch_home)
    conn.close()

    log = str(orch_home / "daemon.log")
    daemon = start_daemon(project, "--log-file", log, grace=None, preexec_fn=_plain_umask)
    try:
        wait_for(lambda: (orch_home / "daemon.log").exists(), what="the daemon's log file")
        found = assert_owner_only(orch_home)
        for name in ("daemon.lock", "daemon.pid", "daemon.log"):
            assert found[f".orch/{name}"] == 0o600
    finally:
        stop_daemon(daemon)

    blob = blob_paths(orch_home)[0]
    blob.write_bytes(b"tampered")
    assert orch(project, "doctor").returncode == 0
    found = assert_owner_only(orch_home)
    assert found[".orch/quarantine"] == 0o700
    assert found[f".orch/quarantine/{blob.name}"] == 0o600


def test_doctor_healthy_store(project: Path, orch_home: Path) -> None:
    assert orch(project, "run", "flow.py:main").returncode == 0
    result = orch(project, "doctor", "--json")
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    assert report["healthy"] and report["database_ok"] and report["findings"] == []
    assert report["blobs_checked"] >= 1
    text = orch(project, "doctor")
    assert text.returncode == 0 and "healthy" in text.stdout


def test_doctor_quarantines_a_tampered_blob_and_drops_its_cache_entries(
    project: Path, orch_home: Path
) -> None:
    assert orch(project, "run", "flow.py:main").returncode == 0
    [blob] = blob_paths(orch_home)
    blob.write_bytes(b"not what was stored")

    result = orch(project, "doctor", "--json")
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    kinds = {f["kind"] for f in report["findings"]}
    assert {"blob", "reference", "cache"} <= kinds
    assert not blob.exists()
    assert (orch_home / "quarantine" / blob.name).read_bytes() == b"not what was stored"
    messages = " ".join(f["message"] for f in report["findings"])
    assert "task run" in messages and "quarantined" in messages
    with sqlite3.connect(orch_home / "orch.db") as conn:
        assert conn.execute("SELECT COUNT(*) FROM cache_entries").fetchone()[0] == 0

    # The next run recomputes instead of answering from the lost blob.
    rerun = orch(project, "run", "flow.py:main", "--json")
    assert rerun.returncode == 0, rerun.stderr
    show = json.loads(orch(project, "show", "last", "--json").stdout)
    assert [t["state"] for t in show["tasks"]] == ["COMPLETED"]
    assert blob.exists()  # written whole again

    # The same content has the same digest: the old run's result is whole again too.
    again = json.loads(orch(project, "doctor", "--json").stdout)
    assert again["healthy"], again


def test_doctor_reports_missing_blob_stale_temp_files_and_open_modes(
    project: Path, orch_home: Path
) -> None:
    assert orch(project, "run", "flow.py:main").returncode == 0
    [blob] = blob_paths(orch_home)
    stale = blob.parent / ".tmp-stale"
    stale.write_bytes(b"half")
    old = time.time() - 7200
    os.utime(stale, (old, old))
    fresh = blob.parent / ".tmp-fresh"
    fresh.write_bytes(b"being written")
    blob.unlink()
    (orch_home / "orch.db").chmod(0o644)
    orch_home.chmod(0o755)

    result = orch(project, "doctor")
    assert result.returncode == 0, result.stderr
    lines = result.stdout.strip().splitlines()
    assert any("stale temporary file" in line and "deleted" in line for line in lines)
    assert any("is missing" in line for line in lines)
    assert any("0644" in line and "0600" in line for line in lines)
    assert any("0755" in line and "0700" in line for line in lines)
    assert "problem(s) found" in lines[-1]
    assert not stale.exists() and fresh.exists()
    assert_owner_only(orch_home)


def test_garbage_database_fails_every_command_with_one_line(project: Path, orch_home: Path) -> None:
    assert orch(project, "run", "flow.py:main").returncode == 0
    (orch_home / "orch.db").write_bytes(os.urandom(8192))
    for name in ("orch.db-wal", "orch.db-shm"):
        (orch_home / name).unlink(missing_ok=True)
    for args in (
        ["runs"],
        ["show", "last"],
        ["run", "flow.py:main"],
        ["cache", "ls"],
        ["gc"],
        ["doctor"],
    ):
        result = orch(project, *args)
        line = one_line_error(result) if args != ["doctor"] else None
        if line is not None:
            assert str(orch_home / "orch.db") in line, args
        else:
            assert result.returncode == 4 and "Traceback" not in result.stderr
            assert str(orch_home / "orch.db") in result.stdout
            assert "corrupt" in result.stdout


def test_read_only_store_refuses_writes_and_still_reads(project: Path, orch_home: Path) -> None:
    assert orch(project, "run", "flow.py:main").returncode == 0
    (orch_home / "orch.db").chmod(0o400)
    orch_home.chmod(0o500)
    try:
        line = one_line_error(orch(project, "run", "flow.py:main", unprivileged=True))
        assert str(orch_home) in line
        runs = orch(project, "runs", "--json", unprivileged=True)
        assert runs.returncode == 0, runs.stderr
        assert len(json.loads(runs.stdout)) == 1
        show = orch(project, "show", "last", unprivileged=True)
        assert show.returncode == 0, show.stderr
        assert "COMPLETED" in show.stdout
        cleared = orch(project, "cache", "clear", unprivileged=True)
        one_line_error(cleared)
    finally:
        orch_home.chmod(0o700)
        (orch_home / "orch.db").chmod(0o600)
    runs = json.loads(orch(project, "runs", "--json").stdout)
    assert len(runs) == 1


def _doctor_json(project: Path) -> tuple[int, dict[str, object]]:
    result = orch(project, "doctor", "--json")
    assert "Traceback" not in result.stderr
    return result.returncode, json.loads(result.stdout)


def test_doctor_tells_a_newer_schema_from_a_corrupt_database(
    project: Path, orch_home: Path
) -> None:
    assert orch(project, "run", "flow.py:main").returncode == 0
    with sqlite3.connect(orch_home / "orch.db") as conn:
        conn.execute("PRAGMA user_version = 999")
    code, report = _doctor_json(project)
    assert code == 4 and report["database"] == "newer", report
    text = orch(project, "doctor").stdout
    assert "newer orchlite" in text and "upgrade" in text
    assert "corrupt" not in text and "restore" not in text


def test_an_empty_database_is_reported_never_used_as_a_new_store(
    project: Path, orch_home: Path
) -> None:
    assert orch(project, "run", "flow.py:main").returncode == 0
    for name in ("orch.db-wal", "orch.db-shm"):
        (orch_home / name).unlink(missing_ok=True)
    (orch_home / "orch.db").write_bytes(b"")
    for args in (["runs"], ["run", "flow.py:main"], ["show", "last"]):
        line = one_line_error(orch(project, *args))
        assert f"{orch_home / 'orch.db'} is empty (0 bytes)" in line, args
    assert (orch_home / "orch.db").stat().st_size == 0  # left as it was found
    code, report = _doctor_json(project)
    assert code == 4 and report["database"] == "empty", report
    text = orch(project, "doctor").stdout
    assert "empty (0 bytes)" in text and "corrupt" not in text


@pytest.mark.slow  # waits out doctor's lock timeout
def test_doctor_reports_a_store_locked_by_another_process(project: Path, orch_home: Path) -> None:
    assert orch(project, "run", "flow.py:main").returncode == 0
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import sqlite3, sys\n"
            f"conn = sqlite3.connect({str(orch_home / 'orch.db')!r}, isolation_level=None)\n"
            "conn.execute('PRAGMA locking_mode = EXCLUSIVE')\n"
            "conn.execute('BEGIN EXCLUSIVE')\n"
            "print('held', flush=True)\n"
            "sys.stdin.read()\n",
        ],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout is not None and holder.stdout.readline() == "held\n"
        code, report = _doctor_json(project)
        assert code == 4 and report["database"] == "locked", report
        assert "restore" not in json.dumps(report)
    finally:
        holder.communicate("")
    code, report = _doctor_json(project)
    assert code == 0 and report["healthy"], report


def _old(path: Path) -> None:
    old = time.time() - 7200
    os.utime(path, (old, old), follow_symlinks=False)


def test_gc_and_doctor_never_follow_a_link_out_of_the_store(
    project: Path, orch_home: Path, tmp_path: Path
) -> None:
    assert orch(project, "run", "flow.py:main").returncode == 0
    outside = tmp_path / "outside"
    outside.mkdir()
    victim = outside / ("ee" + "0" * 62)
    victim.write_bytes(b"someone else's file")
    temp = outside / ".tmp-victim"
    temp.write_bytes(b"another")
    for path in (victim, temp):
        _old(path)
        path.chmod(0o644)
    [blob] = blob_paths(orch_home)
    (orch_home / "blobs" / "ee").symlink_to(outside, target_is_directory=True)
    linked = blob.parent / ("ab" + "1" * 62)
    linked.symlink_to(victim)

    gc = orch(project, "gc", "--older-than", "1d")
    assert gc.returncode == 0, gc.stderr
    code, report = _doctor_json(project)
    assert code == 4, report  # the links are reported, and left for the user to remove
    messages = [f["message"] for f in report["findings"]]  # type: ignore[union-attr]
    assert any(str(orch_home / "blobs" / "ee") in m and "symbolic link" in m for m in messages)
    assert any(str(linked) in m and "symbolic link" in m for m in messages)
    assert victim.read_bytes() == b"someone else's file"
    assert temp.exists()
    assert {stat.S_IMODE(p.stat().st_mode) for p in (victim, temp)} == {0o644}
    assert not (orch_home / "quarantine").exists()


def test_quarantining_the_same_digest_twice_keeps_both_copies(
    project: Path, orch_home: Path
) -> None:
    assert orch(project, "run", "flow.py:main").returncode == 0
    [blob] = blob_paths(orch_home)
    blob.write_bytes(b"first bad copy")
    assert orch(project, "doctor").returncode == 0
    assert orch(project, "run", "flow.py:main").returncode == 0  # written whole again
    blob.write_bytes(b"second bad copy")
    assert orch(project, "doctor").returncode == 0
    quarantine = orch_home / "quarantine"
    assert (quarantine / blob.name).read_bytes() == b"first bad copy"
    assert (quarantine / f"{blob.name}.1").read_bytes() == b"second bad copy"
    assert orch(project, "run", "flow.py:main").returncode == 0
    code, report = _doctor_json(project)
    assert code == 0 and report["healthy"], report
