"""The daemon as a service: one per project, stopped and reloaded by signals.

One daemon per project: it holds `.orch/daemon.lock` (non-blocking) and writes its pid and
start time to `.orch/daemon.pid`; `status` reads both (`orch daemon status`). SIGTERM and
SIGINT ask the loop to stop, SIGHUP to read the schedules, triggers and alerts again: the
handlers only set flags (`loop.Requests`); the loop acts on them between ticks. `stop`
(`orch daemon stop`) sends the SIGTERM and waits for the lock to be released, which the
daemon does last, once its runs drained.
`systemd_unit` prints a unit that runs the daemon (`orch daemon --print-systemd-unit`).
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from ..blobs import private_opener, write_private
from ..envfile import env_file_path, read_env_file, run_environment
from ..errors import UsageError
from ..store import Store
from .loop import Requests, serve
from .retry_chain import DAEMON_TRIGGERS
from .scheduler import Daemon, log_line, stderr_log

LOCK_FILE = "daemon.lock"
PID_FILE = "daemon.pid"


def run_daemon(
    home: Path,
    root: Path,
    *,
    max_runs: int | None,
    grace: float,
    tick: float,
    log_file: Path | None = None,
) -> None:
    """Hold the project's daemon lock and serve; UsageError if another daemon holds it, or
    if the project's env file cannot be read (each run reads it again as it starts)."""
    from filelock import FileLock, Timeout

    run_environment(root)
    store = Store(home)
    log = file_logger(log_file) if log_file is not None else None
    daemon = Daemon(store, root, max_runs=max_runs, log=log)
    lock = FileLock(str(home / LOCK_FILE), timeout=0, mode=0o600)
    try:
        lock.acquire()
    except Timeout:
        info = read_pid_file(home)
        pid = info.get("pid", "unknown") if info else "unknown"
        raise UsageError(f"a daemon is already running for this project (pid {pid})") from None
    pid_file = home / PID_FILE
    requests = Requests()
    try:
        with signals_to(requests):
            info = {"pid": os.getpid(), "host": socket.gethostname(), "started": time.time()}
            write_private(pid_file, json.dumps(info))
            daemon.log(f"started (pid {os.getpid()}, project {root})")
            serve(daemon, requests, tick=tick, grace=grace)
        daemon.log("stopped")
    finally:
        pid_file.unlink(missing_ok=True)
        lock.release()


@contextmanager
def signals_to(requests: Requests) -> Iterator[None]:
    """While inside: SIGTERM and SIGINT set `requests.stop`, SIGHUP `requests.reload`."""

    def stop(signum: int, frame: Any) -> None:
        requests.stop = True

    def reload(signum: int, frame: Any) -> None:
        requests.reload = True

    previous = {sig: signal.signal(sig, stop) for sig in (signal.SIGTERM, signal.SIGINT)}
    previous[signal.SIGHUP] = signal.signal(signal.SIGHUP, reload)
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def file_logger(path: Path) -> Callable[[str], None]:
    """`--log-file`: each daemon line to stderr and appended to `path`."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    lock = threading.Lock()

    def log(message: str) -> None:
        stderr_log(message)
        with lock, open(path, "a", encoding="utf-8", opener=private_opener) as out:
            out.write(log_line(message) + "\n")

    return log


def read_pid_file(home: Path) -> dict[str, Any] | None:
    try:
        data = json.loads((home / PID_FILE).read_text())
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def is_running(home: Path) -> bool:
    """Whether a daemon holds the project's lock (a non-blocking try)."""
    from filelock import FileLock, Timeout

    if not home.is_dir():
        return False
    lock = FileLock(str(home / LOCK_FILE), timeout=0, mode=0o600)
    try:
        lock.acquire()
    except Timeout:
        return True
    lock.release()
    return False


def stop(home: Path, timeout: float, *, poll: float = 0.05) -> int | None:
    """SIGTERM the project's daemon and wait up to `timeout` seconds for it to drain and
    release its lock: its pid once stopped, None if it still runs at the timeout.

    UsageError when no daemon runs, or when it runs on another host.
    """
    if not is_running(home):
        raise UsageError(f"no daemon is running for this project ({home})")
    deadline = time.monotonic() + timeout
    info = read_pid_file(home)
    while not (info and isinstance(info.get("pid"), int)):  # written just after the lock
        if not is_running(home):
            raise UsageError(f"no daemon is running for this project ({home})")
        if time.monotonic() >= deadline:
            raise UsageError(f"the daemon of this project wrote no pid in {home / PID_FILE}")
        time.sleep(poll)
        info = read_pid_file(home)
    pid: int = info["pid"]
    if info.get("host") not in (None, socket.gethostname()):
        raise UsageError(f"the daemon of this project runs on host {info['host']} (pid {pid})")
    with contextlib.suppress(ProcessLookupError):  # it ended meanwhile: so did its lock
        os.kill(pid, signal.SIGTERM)
    while is_running(home):
        if time.monotonic() >= deadline:
            return None
        time.sleep(poll)
    return pid


def status(home: Path, *, read_only: bool = False) -> dict[str, Any]:
    """Whether a daemon holds the project's lock, its pid, uptime and runs in flight.

    `read_only` opens the store for reading only (a view that must never hold up writers).
    """
    running = is_running(home)
    info = read_pid_file(home) if running else None
    in_flight: list[dict[str, Any]] = []
    if (home / "orch.db").exists():
        with Store(home, read_only=read_only) as store:
            in_flight = [
                {"id": r.id, "target": r.target, "state": r.state}
                for r in store.unfinished_flow_runs()
                if r.trigger in DAEMON_TRIGGERS
            ]
    started = info.get("started") if info else None
    return {
        "running": running,
        "pid": info.get("pid") if info else None,
        "uptime_seconds": round(time.time() - started, 1) if started else None,
        "runs_in_flight": in_flight,
    }


def systemd_unit(
    root: Path,
    orch: list[str],
    *,
    max_runs: int | None,
    grace: float,
    tick: float,
    log_file: Path | None = None,
    home: Path | None = None,
) -> str:
    """A systemd service unit that runs this project's daemon (`--print-systemd-unit`).

    With `[project] env_file` set, the unit names it (`EnvironmentFile=`, absolute), so the
    daemon itself has the variables too; UsageError if it cannot be read.
    """
    import shlex

    env_file = env_file_path(root)
    if env_file is not None:
        read_env_file(env_file)  # a unit naming a broken file would not start

    args = list(orch)
    if home is not None:
        args += ["--home", str(home)]
    args.append("daemon")
    if max_runs is not None:
        args += ["--max-runs", str(max_runs)]
    args += ["--grace", f"{grace:g}", "--tick", f"{tick:g}"]
    if log_file is not None:
        args += ["--log-file", str(log_file)]
    command = " ".join(shlex.quote(a) for a in args)
    root = Path(root).resolve()
    return "\n".join(
        [
            "[Unit]",
            f"Description=orch daemon for {root}",
            "After=network-online.target",
            "Wants=network-online.target",
            "",
            "[Service]",
            "Type=simple",
            f"WorkingDirectory={root}",
            f"ExecStart={command}",
            "ExecReload=/bin/kill -HUP $MAINPID",
            "Restart=on-failure",
            "RestartSec=5",
            "KillSignal=SIGTERM",
            "KillMode=mixed",
            f"TimeoutStopSec={int(grace + 15 + 0.999)}",
            "Environment=PYTHONUNBUFFERED=1",
            *([f"EnvironmentFile={env_file}"] if env_file is not None else []),
            "",
            "[Install]",
            "WantedBy=default.target",
            "",
        ]
    )


def orch_executable() -> list[str]:
    """The command of the `orch` being run, with a full path, for ExecStart."""
    import shutil

    argv0 = Path(sys.argv[0])
    if argv0.name == "orch" and argv0.exists():
        return [str(argv0.absolute())]
    found = shutil.which("orch")
    if found:
        return [str(Path(found).absolute())]
    return [str(Path(sys.executable).absolute()), "-m", "orchlite.cli"]
