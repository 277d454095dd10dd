"""Helpers for the end-to-end tests: a temporary project and the real `orch` command.

Every command runs as a child process (`python -m orchlite.cli ...`) with the project as its
working directory and `ORCH_HOME` pointing at the project's `.orch/`, against a real SQLite
database, real blob files, real child processes and real signals.
"""

from __future__ import annotations

import hashlib
import json
import os
import shlex
import subprocess
import sys
import textwrap
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from orchlite.store import Store

ORCH = [sys.executable, "-m", "orchlite.cli"]
TIMEOUT = 60.0

COUNTER_SOURCE = '''
from pathlib import Path as _CounterPath


def bump(name):
    """Count one execution in the file `name` (one byte per call, appended)."""
    with open(_CounterPath(name), "a") as fh:
        fh.write("x")
'''
"""Prepended to flow files by `Project.write_flow`: `bump("x.count")` records one execution."""


def child_env(home: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("ORCH_")}
    env["ORCH_HOME"] = str(home)
    env["NO_COLOR"] = "1"
    env["PYTHONDONTWRITEBYTECODE"] = "1"
    env.pop("PYTHONWARNINGS", None)
    return env


def describe(proc: subprocess.CompletedProcess[str]) -> str:
    args = proc.args if isinstance(proc.args, list) else [str(proc.args)]
    return (
        f"$ {shlex.join(str(a) for a in args[2:])}\nexit {proc.returncode}\n"
        f"--- stdout\n{proc.stdout}\n--- stderr\n{proc.stderr}"
    )


class Project:
    """A temporary project folder, its `.orch/`, and ways to drive `orch` in it."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.home = root / ".orch"

    # -- files ------------------------------------------------------------------------

    def write(self, name: str, text: str) -> Path:
        path = self.root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(textwrap.dedent(text).lstrip("\n"))
        return path

    def write_flow(self, name: str, source: str) -> Path:
        """A flow file: `source` (dedented) after the `bump(name)` execution counter."""
        return self.write(name, COUNTER_SOURCE + textwrap.dedent(source))

    def count(self, name: str) -> int:
        """How many times `bump(name)` ran."""
        path = self.root / name
        return len(path.read_text()) if path.exists() else 0

    # -- the command ------------------------------------------------------------------

    @property
    def env(self) -> dict[str, str]:
        return child_env(self.home)

    def orch(
        self, *args: str, expect: int | None = 0, timeout: float = TIMEOUT
    ) -> subprocess.CompletedProcess[str]:
        """Run `orch ARGS` to completion; assert its exit code unless `expect` is None."""
        proc = subprocess.run(
            [*ORCH, *args],
            cwd=self.root,
            env=self.env,
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )
        if expect is not None:
            assert proc.returncode == expect, describe(proc)
        return proc

    def popen(self, *args: str, **kwargs: Any) -> subprocess.Popen[str]:
        """Start `orch ARGS` without waiting; stdout and stderr are pipes."""
        options: dict[str, Any] = {
            "cwd": self.root,
            "env": self.env,
            "stdout": subprocess.PIPE,
            "stderr": subprocess.PIPE,
            "text": True,
        }
        options.update(kwargs)
        return subprocess.Popen([*ORCH, *args], **options)

    def json(self, *args: str) -> Any:
        proc = self.orch(*args)
        return json.loads(proc.stdout)

    def runs(self) -> list[dict[str, Any]]:
        """`orch runs --json` with a high limit."""
        return self.json("runs", "--json", "--limit", "1000")

    def show(self, ref: str = "last") -> dict[str, Any]:
        return self.json("show", ref, "--json")

    # -- the store, read directly -----------------------------------------------------

    def store(self) -> Store:
        return Store(self.home, create=False)

    def recorded(self) -> list[dict[str, Any]]:
        """What `orch runs --json --limit 1000` prints, read in this process (no child)."""
        if not (self.home / "orch.db").exists():
            return []
        from orchlite import views

        store = self.store()
        try:
            return json.loads(json.dumps(views.run_list(store, limit=1000)))
        finally:
            store.close()

    def read_pid(self, name: str = "task.pid") -> int:
        """Wait for a flow to write its process id to `name`, and return it."""
        path = self.root / name
        return int(wait_for(lambda: path.exists() and path.read_text(), what=f"a pid in {name}"))

    def blob_files(self) -> list[Path]:
        """Every blob file under its final name (temporary files excluded)."""
        root = self.home / "blobs"
        if not root.is_dir():
            return []
        return sorted(p for p in root.glob("*/*") if p.is_file() and not p.name.startswith(".tmp-"))


def assert_blobs_whole(project: Project) -> None:
    """Every blob's content hashes to its name."""
    for path in project.blob_files():
        digest = hashlib.sha256(path.read_bytes()).hexdigest()
        assert digest == path.name, f"partial or corrupt blob {path}"
        assert path.parent.name == path.name[:2]


def assert_usage_error(proc: subprocess.CompletedProcess[str], code: int, *needles: str) -> str:
    """A bad-input failure: exit `code`, exactly one non-empty stderr line, no traceback."""
    assert proc.returncode == code, describe(proc)
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, describe(proc)
    assert "Traceback" not in proc.stderr, describe(proc)
    for needle in needles:
        assert needle in lines[0], describe(proc)
    return lines[0]


def wait_for(
    predicate: Callable[[], Any], timeout: float = 20.0, interval: float = 0.02, what: str = ""
) -> Any:
    """Poll until `predicate()` is truthy and return it; fail after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {timeout} s waiting for {what or predicate}")
        time.sleep(interval)


def pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def finish(proc: subprocess.Popen[str], timeout: float = 30.0) -> tuple[str, str]:
    """Wait for a started command; kill it (and fail) if it does not end in time."""
    try:
        return proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        out, err = proc.communicate()
        pytest.fail(f"command did not finish in {timeout} s\n--- stdout\n{out}\n--- stderr\n{err}")
