"""`orch daemon` in tests: as a child process in a temporary project, or as a `Daemon`
object whose launches start nothing (`FakeLaunch`)."""

from __future__ import annotations

import contextlib
import json
import signal
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from orchlite.store import FlowRun, Store
from tests.helpers.commands import child_env, start
from tests.helpers.waiting import wait_for


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


def runs(root: Path) -> list[FlowRun]:
    """The project's flow runs, newest first (none before the store exists)."""
    if not (root / ".orch" / "orch.db").exists():
        return []
    with Store(root / ".orch") as store:
        return store.list_flow_runs(limit=1000)


def daemon_log(root: Path) -> str:
    """What the daemons started by `start_daemon` in `root` wrote to stderr so far."""
    path = root / "daemon.log"
    return "--- daemon.log\n" + (path.read_text() if path.exists() else "")


def start_daemon(
    root: Path,
    *args: str,
    tick: float = 0.2,
    grace: float | None = 1.0,
    env: dict[str, str] | None = None,
    ready: bool = True,
    timeout: float = 30.0,
    **options: Any,
) -> subprocess.Popen[str]:
    """`orch daemon` in `root`, its stderr appended to `root/daemon.log`; `options` go to
    `subprocess.Popen`.

    With `ready`, wait until it holds the project's daemon lock (its pid is in
    `.orch/daemon.pid`); fail with its log if it exits first.
    """
    flags = ["--tick", str(tick)] + ([] if grace is None else ["--grace", str(grace)])
    with open(root / "daemon.log", "a") as log:  # the child keeps its own copy of the fd
        proc: subprocess.Popen[str] = start(
            root,
            "daemon",
            *flags,
            *args,
            env=child_env(root / ".orch") if env is None else env,
            stdout=subprocess.DEVNULL,
            stderr=log,
            **options,
        )
    if ready:
        home = _home(root, env)
        wait_for(
            lambda: _serving(proc, home, root),
            timeout=timeout,
            what="the daemon to take its lock",
            detail=lambda: daemon_log(root),
        )
    return proc


def _home(root: Path, env: dict[str, str] | None) -> Path:
    home = (env or {}).get("ORCH_HOME")
    return Path(home) if home else root / ".orch"


def _serving(proc: subprocess.Popen[str], home: Path, root: Path) -> bool:
    if proc.poll() is not None:
        raise AssertionError(f"the daemon exited {proc.returncode}\n{daemon_log(root)}")
    with contextlib.suppress(OSError, ValueError):
        return bool(json.loads((home / "daemon.pid").read_text()).get("pid") == proc.pid)
    return False


def stop_daemon(proc: subprocess.Popen[str], timeout: float = 15, expect: int | None = 0) -> int:
    """SIGTERM the daemon and wait for it to drain and exit (killed if it does not in
    `timeout`); assert it exits `expect` unless that is None. A daemon that already exited
    is left as it is. Returns its exit code."""
    if proc.poll() is not None:
        return proc.returncode
    proc.send_signal(signal.SIGTERM)
    try:
        code = proc.wait(timeout=timeout)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    if expect is not None:
        assert code == expect, f"the daemon exited {code}"
    return code


@contextlib.contextmanager
def running_daemon(root: Path, *args: str, **options: Any) -> Iterator[subprocess.Popen[str]]:
    """`start_daemon(root, *args, **options)` for the block; stopped after it (and checked
    to exit 0), unless the block stopped it."""
    proc = start_daemon(root, *args, **options)
    try:
        yield proc
    finally:
        stop_daemon(proc)
