"""The disk holding `.orch/` fills up in the middle of a run, through the CLI as a child process.

Two ways to run out of space:

- a real small filesystem (tmpfs of a few MB) that the flow itself fills with a ballast file
  before its next task writes a result or log lines; needs root (or CAP_SYS_ADMIN) to mount,
  and runs wherever mounting works;
- `RLIMIT_FSIZE` on the `orch` process (with SIGXFSZ ignored, so a write past the limit fails
  with EFBIG instead of killing it): runs everywhere.

Either way `orch run` fails with one "no space left on device" line and exit code 4, with no
traceback; reading commands keep working on the full disk; the database passes
`PRAGMA integrity_check`, what was recorded before is unchanged, no row references a missing
or partial blob; and once space is freed the next run works.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import resource
import shutil
import signal
import sqlite3
import subprocess
import sys
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from orchlite.store import Store

# Each case fills a filesystem and runs `orch` several times around it: a long suite, run by
# `.ci/run` after the fast one.
pytestmark = pytest.mark.slow

FLOW = '''
import os
from orchlite import flow, get_run_logger, task
from orchlite.cache_policies import INPUTS


@task(cache_policy=INPUTS)
def stored(seed: int) -> bytes:
    return bytes([seed % 256]) * 200_000  # a blob, cached across runs


@task
def fill(ballast: str, leave: int) -> None:
    """Fill the filesystem holding `ballast`, then free `leave` bytes of it."""
    if not ballast:
        return
    fd = os.open(ballast, os.O_WRONLY | os.O_CREAT, 0o600)
    try:
        while True:
            os.write(fd, bytes(65536))
    except OSError:
        pass
    finally:
        os.close(fd)
    os.truncate(ballast, max(0, os.path.getsize(ballast) - leave))


@task
def chatty(lines: int) -> int:
    logger = get_run_logger()
    for i in range(lines):
        logger.info("line %d %s", i, "y" * 200)
    return lines


@task
def result(size: int, number: int) -> bytes:
    return os.urandom(size)


@flow
def main(
    seed: int = 1,
    ballast: str = "",
    leave: int = 0,
    lines: int = 5,
    size: int = 100,
    count: int = 1,
) -> int:
    total = len(stored(seed))
    fill(ballast, leave)
    chatty(lines)
    return total + sum(len(result(size, n)) for n in range(count))
'''

FS_SIZE = "4m"
FSIZE_LIMIT = 1_000_000


def _can_mount_tmpfs() -> bool:
    if os.geteuid() != 0 or shutil.which("mount") is None:
        return False
    probe = tempfile.mkdtemp()
    try:
        mounted = subprocess.run(
            ["mount", "-t", "tmpfs", "-o", "size=64k", "tmpfs", probe], capture_output=True
        )
        if mounted.returncode != 0:
            return False
        subprocess.run(["umount", probe], check=True)
        return True
    finally:
        os.rmdir(probe)


CAN_MOUNT = _can_mount_tmpfs()

# (how space runs out, what the run does once it has): each fails at a different write.
CASES = [pytest.param("fsize", {"size": 2_000_000}, id="rlimit-fsize-result-blob")]
if CAN_MOUNT:
    CASES += [
        pytest.param("tmpfs", {"leave": 64 * 1024, "size": 1_500_000}, id="tmpfs-result-blob"),
        pytest.param("tmpfs", {"leave": 0, "lines": 20_000}, id="tmpfs-log-lines"),
        pytest.param("tmpfs", {"leave": 0, "size": 4000, "count": 400}, id="tmpfs-task-rows"),
        pytest.param(
            "tmpfs", {"leave": 0, "lines": 20_000, "subprocess": 1}, id="tmpfs-subprocess"
        ),
    ]


@pytest.fixture
def small_fs(tmp_path: Path) -> Iterator[Path]:
    """A tmpfs of FS_SIZE mounted for this test (only used when mounting works here)."""
    mount_point = tmp_path / "fs"
    mount_point.mkdir()
    subprocess.run(
        ["mount", "-t", "tmpfs", "-o", f"size={FS_SIZE},mode=0700", "tmpfs", str(mount_point)],
        check=True,
    )
    try:
        yield mount_point
    finally:
        subprocess.run(["umount", "-l", str(mount_point)], check=True)


def _limit_file_size(limit: int) -> Callable[[], None]:
    def apply() -> None:
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # EFBIG instead of death
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))

    return apply


class Orch:
    """`orch` as a child process in one project, optionally with a file-size limit."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.home = root / ".orch"
        self.limit: int | None = None

    def __call__(self, *args: str) -> subprocess.CompletedProcess[str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith("ORCH_")}
        env.update(ORCH_HOME=str(self.home), NO_COLOR="1", PYTHONDONTWRITEBYTECODE="1")
        return subprocess.run(
            [sys.executable, "-m", "orchlite.cli", *args],
            cwd=self.root,
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
            preexec_fn=_limit_file_size(self.limit) if self.limit else None,
        )

    def ok(self, *args: str) -> subprocess.CompletedProcess[str]:
        proc = self(*args)
        assert proc.returncode == 0, proc.stderr
        return proc

    def json(self, *args: str) -> Any:
        return json.loads(self.ok(*args, "--json").stdout)


def _snapshot(home: Path, run_id: str) -> tuple[Any, ...]:
    """Everything recorded about a run: its row, task runs with results, history, logs."""
    store = Store(home, create=False)
    try:
        return (
            store.get_flow_run(run_id),
            store.task_runs(run_id, with_results=True),
            store.history(run_id),
            store.logs(run_id),
        )
    finally:
        store.close()


def _check_store(home: Path) -> None:
    """Integrity, and every referenced blob present and whole (no partial blob anywhere)."""
    with sqlite3.connect(home / "orch.db") as conn:
        assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    store = Store(home, create=False)
    try:
        references = store.blob_references()
    finally:
        store.close()
    assert references, "the blob results recorded before are referenced"
    for *_, digest in references:
        path = home / "blobs" / digest[:2] / digest
        assert hashlib.sha256(path.read_bytes()).hexdigest() == digest, path
    assert not list((home / "blobs").glob("*/.tmp-*")), "a temporary blob file was left"


@pytest.mark.parametrize(("kind", "params"), CASES)
def test_disk_full_mid_run_fails_cleanly_and_the_next_run_works(
    kind: str, params: dict[str, int], tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    root = request.getfixturevalue("small_fs") if kind == "tmpfs" else tmp_path
    (root / "flow.py").write_text(FLOW)
    orch = Orch(root)
    orch.ok("run", "flow.py:main")
    [before] = orch.json("runs")
    recorded = _snapshot(orch.home, before["id"])

    ballast = root / "ballast"
    flags = ["--subprocess"] if params.pop("subprocess", 0) else []
    args = [f"{key}={value}" for key, value in params.items()]
    if kind == "tmpfs":
        args.append(f"ballast={ballast}")
    else:
        orch.limit = FSIZE_LIMIT
    failed = orch("run", "flow.py:main", *flags, *[a for arg in args for a in ("-p", arg)])

    assert failed.returncode == 4, failed.stderr[-3000:]
    assert "Traceback" not in failed.stderr
    errors = [line for line in failed.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1, failed.stderr[-3000:]
    assert "no space left on device" in errors[0]
    assert str(orch.home) in errors[0]

    # The disk is still full: reading works, and nothing recorded before changed.
    runs = orch.json("runs")
    assert [r["id"] for r in runs][1:] == [before["id"]]
    assert _snapshot(orch.home, before["id"]) == recorded
    _check_store(orch.home)

    # Space is freed: the failed run is over, task by task, and the next run works.
    ballast.unlink(missing_ok=True)
    orch.limit = None
    failed_run = orch.json("show", runs[0]["id"])
    assert failed_run["state"] in ("FAILED", "CRASHED"), failed_run
    unfinished = [t for t in failed_run["tasks"] if t["state"] in ("PENDING", "RUNNING")]
    assert not unfinished, failed_run
    again = orch.json("run", "flow.py:main")
    assert again["state"] == "COMPLETED", again
    assert again["tasks"][0]["state"] == "CACHED"  # its blob was kept whole
    assert _snapshot(orch.home, before["id"]) == recorded
    _check_store(orch.home)
    doctor = orch.json("doctor")
    assert doctor["healthy"], doctor


def _fill(root: Path) -> Path:
    """Fill the filesystem holding `root` to the last byte; returns the ballast file."""
    ballast = root / "ballast"
    fd = os.open(ballast, os.O_WRONLY | os.O_CREAT, 0o600)
    try:
        for chunk in (65536, 1):
            with contextlib.suppress(OSError):
                while True:
                    os.write(fd, bytes(chunk))
    finally:
        os.close(fd)
    assert shutil.disk_usage(root).free == 0
    return ballast


@pytest.mark.skipif(not CAN_MOUNT, reason="needs a tmpfs mount (root)")
def test_an_already_full_disk_is_named_and_reads_still_work(small_fs: Path) -> None:
    (small_fs / "flow.py").write_text(FLOW)
    orch = Orch(small_fs)
    first = orch.json("run", "flow.py:main")
    ballast = _fill(small_fs)

    # Reads need no space: the WAL index cannot be made, so the database is read alone.
    runs = orch.json("runs")
    assert [r["id"] for r in runs] == [first["id"]]
    assert orch.json("show", "last")["state"] == "COMPLETED"
    assert orch.ok("logs", "last").stdout

    failed = orch("run", "flow.py:main")
    assert failed.returncode == 4, failed.stderr
    errors = [line for line in failed.stderr.splitlines() if line.strip()]
    assert errors == [
        f"error: no space left on device: cannot write {orch.home / 'orch.db'} (free some space)"
    ], failed.stderr

    doctor = orch("doctor")
    assert doctor.returncode == 4, doctor.stdout
    assert "no space left" in doctor.stdout
    assert "corrupt" not in doctor.stdout and "restore" not in doctor.stdout
    assert json.loads(orch("doctor", "--json").stdout)["database"] == "ok"

    ballast.unlink()
    doctor = orch("doctor")
    assert doctor.returncode == 0 and "healthy" in doctor.stdout, doctor.stdout
    assert orch.json("run", "flow.py:main")["state"] == "COMPLETED"
    assert len(orch.json("runs")) == 2
