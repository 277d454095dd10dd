"""Run a request in a supervised child process, and supervise it.

The child (`python -m orchlite.executor --run RUN_ID`, see `orchlite.executor`) loads the
target and runs it under the run id the parent chose, reporting through the store. The
request itself (target, parameters, changed paths) never goes on the child's command line,
which every local user can read in `/proc/PID/cmdline` and which the kernel caps (128 kB per
argument): the parent writes it as JSON into a pipe the child inherits (`REQUEST_FD_ENV`).

The parent only waits and watches: when the child dies without recording an outcome (a
signal, a segfault, an OOM kill, `os._exit`) the parent records CRASHED with the signal or
exit code; when it outlives its flow's deadline the parent kills its process group and
records TIMED_OUT; Ctrl-C in the parent interrupts the child, which records CANCELLED. No
run is left RUNNING by a child that is gone.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from dataclasses import asdict
from typing import TYPE_CHECKING

from .child_output import CAPTURE_ENV, start_readers
from .config import HOME_ENV, find_home, project_root
from .errors import ExitCode, OrchError, Terminated, UsageError, interrupt_code
from .executor import (
    NOT_STARTED,
    PARENT_FD_ENV,
    REQUEST_FD_ENV,
    SECRETS_FD_ENV,
    RunRequest,
)
from .process_groups import end_group, kill_group
from .redaction import SecretFeed
from .states import TERMINAL, StateName

if TYPE_CHECKING:
    from pathlib import Path

    from .store import FlowRun, Store

POLL_SECONDS = 0.1


KILL_GRACE_SECONDS = 5.0


CANCEL_GRACE_SECONDS = 1.5


DEADLINE_GRACE_SECONDS = 1.0


def run_in_subprocess(
    request: RunRequest, *, home: Path | None = None, capture_output: bool = False
) -> tuple[str | None, int]:
    """Run the request in a supervised child; returns (run id or None, exit code).

    The child inherits this process's stdout and stderr, unless `capture_output` (the
    daemon): then each line it writes becomes a log record of the run (`orch logs RUN`),
    stdout at INFO (logger "orchlite.stdout"), stderr at WARNING ("orchlite.stderr"), and
    the child does not echo its run loggers to the console (they are stored already). Each
    line is stored redacted of the secret values the child knows, which it forwards
    through a `SecretFeed` (so raw writes to file descriptors 1 and 2 are redacted too).

    The child's environment has the project's env file and `request.env` added. A run
    claimed ahead (by the daemon) whose env file cannot be read ends FAILED saying why.

    `home` is the store's (default: found as the CLI finds it); the child gets it in its
    own environment, this process's is left as it is.
    """
    home = find_home() if home is None else home
    with _RunStore(home, request.run_id) as run_store:
        return _run_supervised(request, home, run_store, capture_output)


def _run_supervised(
    request: RunRequest, home: Path, run_store: _RunStore, capture_output: bool
) -> tuple[str | None, int]:
    from .envfile import run_environment

    run_id = request.run_id
    try:
        added = run_environment(project_root(home), request.env)
    except UsageError as exc:
        if run_store.run() is None:
            raise
        _fail_waiting(run_store, str(exc))  # claimed ahead
        return run_id, ExitCode.RUN_FAILED
    spec = json.dumps({**asdict(request), "env": None}, default=str).encode("utf-8")
    watched, alive = os.pipe()  # the child watches `watched`; EOF means this process died
    request_in, request_out = os.pipe()  # the child reads its request from `request_in`
    env = {
        **os.environ,
        **added,
        HOME_ENV: str(home),
        PARENT_FD_ENV: f"{watched}:{os.getpid()}",
        REQUEST_FD_ENV: str(request_in),
    }
    pipe: int | None = None
    feed: SecretFeed | None = None
    if capture_output:
        feed = SecretFeed()
        env.update({CAPTURE_ENV: "1", "PYTHONUNBUFFERED": "1", SECRETS_FD_ENV: str(feed.write_fd)})
        pipe = subprocess.PIPE
    try:
        child = subprocess.Popen(
            [sys.executable, "-m", "orchlite.executor", "--run", run_id],
            env=env,
            start_new_session=True,
            stdout=pipe,
            stderr=pipe,
            pass_fds=(watched, request_in)
            if feed is None
            else (watched, request_in, feed.write_fd),
        )
    except BaseException:
        os.close(alive)
        os.close(request_out)
        if feed is not None:
            feed.close()
        raise
    finally:
        os.close(watched)
        os.close(request_in)
    _send_request(request_out, spec, run_id)
    readers = []
    if feed is not None:
        feed.start()
        readers = start_readers(child, home, run_id, feed)
    try:
        code = _supervise(child, run_store)
        for reader in readers:
            reader.join(timeout=READER_JOIN_SECONDS)  # a grandchild may hold the pipe open
    except KeyboardInterrupt as exc:
        _interrupt(child, exc)
        run = _end_if_unfinished(run_store, StateName.CANCELLED, str(exc) or "interrupted (Ctrl-C)")
        return (None if run is None else run_id), interrupt_code(exc)
    finally:
        os.close(alive)
    run = run_store.run()
    if run is None:
        # The child failed before creating the run (bad target or parameters) and has
        # already said why on stderr.
        return None, code or ExitCode.RUN_FAILED
    if code == ExitCode.STORE:
        # The child could not write the store (a full disk) and said so; a write here would
        # fail the same way. The next command reaps the run once the store is writable.
        return None, ExitCode.STORE
    if run.state == StateName.PAUSED.value and run.pid is None:
        return run_id, ExitCode.OK  # the stopping daemon suspended its paused run
    return run_id, _settle(run_store, run, code)


class _RunStore:
    """The store of the run a supervisor watches: opened once, when the child (or whoever
    claimed the run) has created it, and closed when supervision ends (at once: a daemon
    supervises thousands of runs)."""

    def __init__(self, home: Path, run_id: str) -> None:
        self.home = home
        self.run_id = run_id
        self._store: Store | None = None

    def store(self) -> Store | None:
        """The store, or None while there is none (or it is unusable, e.g. a newer schema:
        then the child says why and exits)."""
        if self._store is None and (self.home / "orch.db").exists():
            from .store import Store

            try:
                self._store = Store(self.home)
            except OrchError:
                return None
        return self._store

    def run(self) -> FlowRun | None:
        """The run as recorded now, or None (no store, no such run)."""
        store = self.store()
        if store is None:
            return None
        try:
            return store.get_flow_run(self.run_id)
        except OrchError:
            return None

    def end(self, state: StateName, message: str) -> FlowRun | None:
        """End the run in `state` unless it has ended; the run as recorded after."""
        store = self.store()
        if store is None:
            return None
        store.end_abandoned_run(self.run_id, state, message)
        return self.run()

    def __enter__(self) -> _RunStore:
        return self

    def __exit__(self, *exc: object) -> None:
        if self._store is not None:
            self._store.close()


def _settle(run_store: _RunStore, run: FlowRun, code: int) -> int:
    """The exit code of a run whose child exited with `code`, once a run the child left
    unfinished is ended: CANCELLED if it was being cancelled, else CRASHED saying how the
    child died."""
    state = run.state
    if StateName(state) not in TERMINAL:
        if state == StateName.CANCELLING.value:
            ending = StateName.CANCELLED, "cancelled; the child process was killed"
        else:
            ending = StateName.CRASHED, _describe_exit(code)
        ended = run_store.end(*ending)
        state = ended.state if ended is not None else state
    if state == StateName.COMPLETED.value:
        return ExitCode.OK
    if code == ExitCode.INTERRUPTED:
        return ExitCode.INTERRUPTED
    return ExitCode.RUN_FAILED


READER_JOIN_SECONDS = 2.0


def _send_request(fd: int, spec: bytes, run_id: str) -> None:
    """Write the request into the child's pipe from a thread, then close it.

    A thread, because a request larger than the pipe's buffer (64 kB) is written only as
    fast as the child reads it, and the parent must be supervising meanwhile. A child that
    dies before reading it all closes the pipe: the write fails, and the supervisor records
    what became of the child.
    """

    def send() -> None:
        try:
            view = memoryview(spec)
            while view:
                view = view[os.write(fd, view) :]
        except OSError:
            pass
        finally:
            os.close(fd)

    threading.Thread(target=send, name=f"request-{run_id[:12]}", daemon=True).start()


def _supervise(child: subprocess.Popen[bytes], run_store: _RunStore) -> int:
    """Wait for the child; kill it if it outlives its flow's deadline."""
    while True:
        try:
            return child.wait(timeout=POLL_SECONDS)
        except subprocess.TimeoutExpired:
            pass
        code = _check(child, run_store)
        if code is not None:
            return code


def _check(child: subprocess.Popen[bytes], run_store: _RunStore) -> int | None:
    """Stop the child if its run is being cancelled or is past its deadline; its exit code."""
    run = run_store.run()
    if run is None:
        return None
    if run.state == StateName.CANCELLING.value:
        _stop(child)
        return child.returncode
    if run.deadline is not None and time.time() > run.deadline + DEADLINE_GRACE_SECONDS:
        kill_group(child, signal.SIGKILL)
        child.wait()
        timeout = round(run.deadline - (run.started or run.deadline), 1)
        run_store.end(
            StateName.TIMED_OUT,
            f"flow run exceeded its timeout of {timeout:g} s; the child process was killed",
        )
        return int(ExitCode.RUN_FAILED)
    return None


def _stop(child: subprocess.Popen[bytes]) -> None:
    """SIGTERM to the child's process group (the child records CANCELLED), then SIGKILL."""
    end_group(child, (signal.SIGTERM,), CANCEL_GRACE_SECONDS)


def _interrupt(child: subprocess.Popen[bytes], exc: KeyboardInterrupt) -> None:
    """Pass the parent's signal on to the child's group (SIGINT for Ctrl-C, SIGTERM for
    SIGTERM: the child records CANCELLED), then SIGTERM, then SIGKILL after grace periods."""
    first = signal.SIGTERM if isinstance(exc, Terminated) else signal.SIGINT
    end_group(child, tuple(dict.fromkeys((first, signal.SIGTERM))), KILL_GRACE_SECONDS)


def _describe_exit(code: int) -> str:
    if code < 0:
        try:
            name = signal.Signals(-code).name
        except ValueError:
            name = f"signal {-code}"
        return f"the flow's process was killed by {name}"
    return f"the flow's process exited with code {code} without recording an outcome"


def _end_if_unfinished(run_store: _RunStore, state: StateName, message: str) -> FlowRun | None:
    """End the run in `state` unless it has ended; the run as recorded after (None: none)."""
    run = run_store.run()
    if run is not None and StateName(run.state) not in TERMINAL:
        return run_store.end(state, message)
    return run


def _fail_waiting(run_store: _RunStore, message: str) -> None:
    """End a run claimed ahead FAILED with `message`, before any process started it."""
    store, run = run_store.store(), run_store.run()
    if store is not None and run is not None and run.state in NOT_STARTED:
        store.set_flow_run_state(run.id, StateName.PENDING, None)
        store.set_flow_run_state(run.id, StateName.FAILED, message)
