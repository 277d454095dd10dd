"""Run a flow by target: here (`run_target`), or as the child process that
`orchlite.supervisor` starts and watches.

The child (`python -m orchlite.executor --run RUN_ID`) reads its request from a pipe before
anything else (`REQUEST_FD_ENV`; never from its command line), loads the target and runs it
under the run id the parent chose, reporting through the store.

A child never outlives its parent: the parent holds the write end of a pipe whose read end
the child watches (`PARENT_FD_ENV`). When the parent dies, even by SIGKILL, the kernel closes
the write end and the child sees end-of-file: nothing supervises the run any more (no
deadline, nobody reading its output), so the child ends its run CRASHED ("the process
supervising it (pid N) is gone") and kills its own process group, user code's subprocesses
included. A run the child had not started yet (still SCHEDULED or LATE) is left waiting, for
the restarted daemon to start. A pipe rather than Linux's `PR_SET_PDEATHSIG`: it works on
every POSIX system, and it signals the death of the process, not of the thread that started
the child.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import sys
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .child_output import CAPTURE_ENV
from .errors import (
    CancelledRun,
    ExitCode,
    OrchError,
    SuspendedRun,
    UsageError,
    interrupt_code,
)
from .process_groups import kill_tracked
from .run_support import new_run_id
from .shell_jobs import command_flow_name, command_of
from .states import StateName

if TYPE_CHECKING:
    from .run_setup import RunSetup
    from .store import FlowRun


@dataclass
class RunRequest:
    """What to run: the same fields whether it runs here or in a child process."""

    target: str
    params: dict[str, Any] = field(default_factory=dict)
    run_id: str = field(default_factory=new_run_id)
    refresh_cache: bool = False
    resume_from: str | None = None
    trigger: str = "manual"
    env: dict[str, str] | None = field(default_factory=dict)
    """Variables added to the run's environment over the project's env file (an entry's
    `env`). A child gets them, with the env file's, in its environment, never through its
    request pipe: its request has None (the environment is set up already)."""
    options: str | None = None
    """The options (`shell_jobs.RunOptions`, as stored) of the entry that starts this run
    (`orch run --schedule`): its working directory, timeout and retries. None: those
    recorded on the run or on the run it retries (see `orchlite.run_setup`)."""


def run_target(
    request: RunRequest, *, home: Path | None = None, console: bool | None = True
) -> tuple[str, int]:
    """Load the target, bind its parameters and run it here, recording into the store at
    `home` (default: found from the environment and the working directory, as a flow file
    run with `python` finds it); returns (run id, exit code).

    The flow's module is imported and the flow runs with the project root (or the run's
    recorded `working_dir`) as the working directory, wherever `orch` was started, and
    with the project's env file in its environment (see `orchlite.run_setup`); the previous
    ones are restored after. A command target (`shell_jobs`) runs its command as a flow.
    Bad input (an unloadable target, a bad parameter) raises before any run is recorded.
    With `console=None` logging is left as the caller set it up (the live view).
    """
    from .config import find_home, project_root
    from .discovery import anchored_target
    from .run_setup import run_setup

    home = find_home() if home is None else home
    root = project_root(home)
    if command_of(request.target) is None:
        target = anchored_target(request.target, root)
    else:
        target = request.target
    setup = run_setup(
        home, root, (request.run_id, request.resume_from), request.env, request.options
    )
    with _working_directory(setup.folder), setup.environment():
        return _run_here(request, target, home, root, console, setup)


@contextlib.contextmanager
def _working_directory(folder: Path) -> Iterator[None]:
    """`folder` as the working directory while open (Python 3.10 has no contextlib.chdir)."""
    try:
        before: str | None = os.getcwd()
    except OSError:  # the working directory was deleted: nothing to go back to
        before = None
    try:
        os.chdir(folder)
    except OSError as exc:
        raise UsageError(f"cannot run in {folder}: {exc.strerror or exc}") from None
    try:
        yield
    finally:
        if before is not None:
            with contextlib.suppress(OSError):
                os.chdir(before)


def _run_here(
    request: RunRequest,
    target: str,
    home: Path,
    root: Path,
    console: bool | None,
    setup: RunSetup,
) -> tuple[str, int]:
    from .discovery import is_flow_name, load_target
    from .engine import run_flow
    from .logging import setup_logging
    from .params import bind_parameters
    from .settings import persist_by_default

    command = command_of(target)
    flow: Any
    if command is None and is_flow_name(target):
        from .project_model import Project  # only a name is looked up in the project

        flow = load_target(target, root, Project(root))
    elif command is None:
        flow = load_target(target, root)
    else:
        from .shell_runs import command_flow

        name = setup.flow_name or command_flow_name(command)
        flow = command_flow(command, name, setup.options, echo=console is not False)
    if not getattr(flow, "__orch_flow__", False):
        raise UsageError(f"{request.target} is not a flow (decorate it with @flow)")
    parameters = bind_parameters(flow.fn, request.params, flow_name=flow.name)
    persist_by_default(root)  # a bad setting is bad input, refused up front
    if console is not None:
        setup_logging(console=console)
    try:
        state = run_flow(
            flow,
            (),
            {"return_state": True},
            parameters=parameters,
            run_id=request.run_id,
            target=target,
            trigger=request.trigger,
            refresh_cache=request.refresh_cache,
            resume_from=request.resume_from,
            run_options=setup.options.stored(),
            home=home,
        )
    except KeyboardInterrupt as exc:
        return request.run_id, interrupt_code(exc)
    except (Exception, CancelledRun, SystemExit) as exc:
        # SystemExit too: a flow calling sys.exit() ended its run (CRASHED), and `orch`
        # exits with the run's outcome, not with the code the flow passed.
        if not is_recorded(home, request.run_id):
            raise  # failed before the run was created: bad input, not a failed run
        return request.run_id, _failed_run_code(exc)
    if state.is_completed():
        return request.run_id, ExitCode.OK
    return request.run_id, _failed_run_code(state.exception())


def _failed_run_code(exc: BaseException) -> ExitCode:
    """RUN_FAILED, unless bad input (e.g. a runner that cannot start) or a store that cannot
    be written (a full disk) failed the run: then that error is the answer."""
    if isinstance(exc, OrchError) and exc.exit_code in (ExitCode.USAGE, ExitCode.STORE):
        raise exc
    return ExitCode.RUN_FAILED


SECRETS_FD_ENV = "ORCH_SECRETS_FD"
"""The pipe end a capturing child forwards its secret values to (see `SecretFeed`)."""
PARENT_FD_ENV = "ORCH_PARENT_FD"
"""`"FD:PID"`: the pipe end a child watches for its parent's death, and the parent's pid."""
REQUEST_FD_ENV = "ORCH_REQUEST_FD"
"""The pipe end a child reads its request (JSON of a `RunRequest`) from, to end-of-file."""


def _read_request() -> dict[str, Any]:
    """In the child: the request its parent wrote into the inherited pipe."""
    fd_text = os.environ.pop(REQUEST_FD_ENV, "")
    if not fd_text.isdigit():
        raise UsageError(
            "orchlite.executor runs a request its parent passes through a pipe; "
            "use `orch run --subprocess` instead"
        )
    with os.fdopen(int(fd_text), "rb") as pipe:
        data = pipe.read()
    try:
        spec = json.loads(data)
    except ValueError:
        spec = None
    if not isinstance(spec, dict):
        raise UsageError(
            f"the run request from the parent process is incomplete ({len(data)} bytes)"
        )
    return spec


def is_recorded(home: Any, run_id: str) -> bool:
    """Whether the store holds run `run_id` (its process created or adopted it)."""
    return recorded_state(home, run_id) is not None


def recorded_state(home: Any, run_id: str) -> str | None:
    """The recorded state of run `run_id`, or None (no store, no such run)."""
    run = recorded_run(home, run_id)
    return None if run is None else run.state


def recorded_run(home: Any, run_id: str) -> FlowRun | None:
    """Run `run_id` as recorded, or None (no store, no such run)."""
    from .store import Store

    if not (home / "orch.db").exists():
        return None
    try:
        with Store(home) as store:
            return store.get_flow_run(run_id)
    except OrchError:
        return None


def _watch_parent(run_id: str) -> None:
    """In the child: a thread that ends the run and the process group if the parent dies."""
    import threading

    fd_text, _, pid_text = os.environ.pop(PARENT_FD_ENV, "").partition(":")
    if not fd_text.isdigit():
        return  # not started by `run_in_subprocess`: nobody to outlive
    fd = int(fd_text)

    def watch() -> None:
        try:
            while os.read(fd, 1):
                pass  # nothing is ever written: only EOF (or an error) ends the wait
        except OSError:
            pass
        _orphaned(run_id, pid_text or "?")

    threading.Thread(target=watch, name="orch-parent-watch", daemon=True).start()


def _orphaned(run_id: str, parent_pid: str) -> None:
    """The parent died: end the run CRASHED (if it started here) and kill the process group.

    The check and the update happen in one write transaction, and a run not started yet is
    killed with that transaction still open, so the flow cannot start its run in between:
    the kernel releases SQLite's lock with the process and nothing was written.
    """
    from .config import find_home
    from .store import Store

    message = f"the process supervising it (pid {parent_pid}) is gone"
    try:
        store = Store(find_home())
        with store.transaction():
            state = _state_in(store, run_id)
            if state is None or state in NOT_STARTED:
                _kill_own_group()
            store.end_abandoned_run(run_id, StateName.CRASHED, message)
    except Exception:  # the store is unusable: the reaper records the crash later
        pass
    _kill_own_group()


NOT_STARTED = frozenset({StateName.SCHEDULED.value, StateName.LATE.value})
"""States of a run claimed ahead that no process has started yet."""


def _state_in(store: Any, run_id: str) -> str | None:
    try:
        state: str = store.get_flow_run(run_id).state
    except OrchError:
        return None
    return state


def _kill_own_group() -> None:
    """SIGKILL the groups this process started (a shell job's), then its own group (itself
    and what user code started), or just itself."""
    kill_tracked()
    with contextlib.suppress(OSError):
        if os.getpgid(0) == os.getpid():
            os.killpg(os.getpid(), signal.SIGKILL)
    os.kill(os.getpid(), signal.SIGKILL)


def _child_main() -> int:
    from .redaction import forward_to, redact_std_streams

    redact_std_streams()  # what the flow writes may be stored (the daemon captures it)
    feed_fd = os.environ.pop(SECRETS_FD_ENV, "")
    if feed_fd.isdigit():
        forward_to(int(feed_fd))  # so the parent redacts what bypasses sys.stdout
    try:
        spec = _read_request()
    except OrchError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return int(exc.exit_code)
    _watch_parent(spec["run_id"])

    def cancel(signum: int, frame: Any) -> None:
        raise CancelledRun("cancelled (SIGTERM)")

    signal.signal(signal.SIGTERM, cancel)
    try:
        console = not os.environ.get(CAPTURE_ENV)  # captured output is stored already
        _, code = run_target(RunRequest(**spec), console=console)
    except OrchError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return int(exc.exit_code)
    except KeyboardInterrupt:
        return int(ExitCode.INTERRUPTED)
    except CancelledRun:
        return int(ExitCode.RUN_FAILED)
    except SuspendedRun:
        return int(ExitCode.OK)
    return int(code)


if __name__ == "__main__":
    exit_code = _child_main()  # argv holds only `--run RUN_ID`, for `ps`
    from .notify import EXIT_WAIT, drain

    drain(EXIT_WAIT)  # the run's alerts: `os._exit` below skips the wait at exit
    from .logging import flush_console

    flush_console()
    sys.stdout.flush()
    sys.stderr.flush()
    # Skip interpreter shutdown: a thread abandoned by a timeout must not keep us alive.
    os._exit(exit_code)
