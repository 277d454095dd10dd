"""Helpers for tests that run `orch daemon` as a child process in a temporary project."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from orchlite.store import FlowRun, Store


class FakeRun:
    """A run started by `FakeLaunch`: alive until a test says it ended."""

    def __init__(self) -> None:
        self.alive = True

    def is_alive(self) -> bool:
        return self.alive


class FakeLaunch:
    """A `Daemon`'s launch that starts nothing: it records each call, with the arguments
    the production launch gets, and hands back a `FakeRun`."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, str, dict[str, Any]]] = []
        self.resumed: dict[str, str | None] = {}  # run id -> the run it resumes
        self.envs: dict[str, dict[str, str]] = {}  # run id -> the variables its entry adds
        self.runs: dict[str, FakeRun] = {}

    def __call__(
        self,
        run_id: str,
        target: str,
        params: dict[str, Any],
        *,
        resume_from: str | None,
        env: dict[str, str],
    ) -> FakeRun:
        self.calls.append((run_id, target, params))
        self.resumed[run_id] = resume_from
        self.envs[run_id] = env
        self.runs[run_id] = FakeRun()
        return self.runs[run_id]


def write(root: Path, name: str, text: str) -> None:
    (root / name).write_text(textwrap.dedent(text).lstrip())


def env(root: Path) -> dict[str, str]:
    """This environment without orchlite settings, with the project's own `.orch/`."""
    clean = {k: v for k, v in os.environ.items() if not k.startswith("ORCH_")}
    clean["ORCH_HOME"] = str(root / ".orch")
    clean["NO_COLOR"] = "1"
    return clean


def wait_for(what: str, check: Callable[[], Any], timeout: float) -> Any:
    """Poll `check` until it returns something truthy; fail naming `what` at the timeout."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = check()
        if value:
            return value
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


def runs(root: Path) -> list[FlowRun]:
    """The project's flow runs, newest first (none before the store exists)."""
    if not (root / ".orch" / "orch.db").exists():
        return []
    with Store(root / ".orch") as store:
        return store.list_flow_runs(limit=1000)


ORCH = [sys.executable, "-m", "orchlite.cli"]


def start_daemon(root: Path, *args: str) -> subprocess.Popen[str]:
    """`orch daemon` in `root` (0.2 s tick, 1 s grace), its log appended to daemon.log."""
    with open(root / "daemon.log", "a") as log:
        return subprocess.Popen(
            [*ORCH, "daemon", "--tick", "0.2", "--grace", "1", *args],
            cwd=root,
            env=env(root),
            stdout=subprocess.DEVNULL,
            stderr=log,
            text=True,
        )


def stop_daemon(proc: subprocess.Popen[str], timeout: float = 15) -> None:
    """SIGTERM the daemon and check it drains and exits 0 (killed if it does not)."""
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            assert proc.wait(timeout=timeout) == 0
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
