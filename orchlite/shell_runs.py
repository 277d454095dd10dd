"""A shell command run as a flow: `command_flow` makes the `Flow` whose body runs it.

So a command gets everything a flow run gets from the engine and the executor: its run
(adopting the one the daemon claimed), retries, a timeout, cancellation, history, alerts,
`orch retry`, and supervision in a child process under the daemon.

The body runs `/bin/sh -c COMMAND` in a process group of its own, with stdin from
/dev/null, in the run's working directory and environment (the process's own: the executor
sets both up). Each line the command writes is stored as a log record of the run
(`orchlite.child_output`) and, unless a supervising parent stores this process's output
already, echoed as written. The exit code is the run's result: 0 completes the run; any
other code fails it with `CommandFailed` ("the command exited with code N", or "was killed
by SIGNAME"), which a retry then repeats.

Whatever interrupts the body stops the whole group, grandchildren included: a timeout
SIGKILLs it at once (the supervisor kills this process a second later); a cancel, Ctrl-C
or SIGTERM sends SIGTERM, then SIGKILL after `STOP_GRACE_SECONDS` (shorter than the
supervisor's grace for this process). If this process is killed outright, its supervisor
gone, `orchlite.executor` kills the tracked group with its own.
"""

from __future__ import annotations

import signal
import subprocess
from typing import Any

from .child_output import start_readers
from .context import flow_run_var
from .errors import CancelledRun
from .flows import Flow
from .process_groups import end_group, kill_group, track, untrack
from .shell_jobs import RunOptions
from .timeouts import Interrupted

SHELL = "/bin/sh"
POLL_SECONDS = 0.1
STOP_GRACE_SECONDS = 1.0
READER_JOIN_SECONDS = 2.0


class CommandFailed(Exception):
    """A shell command ended with a non-zero exit code, or was killed by a signal."""

    def __init__(self, code: int) -> None:
        self.code = code
        if code < 0:
            try:
                how = f"was killed by {signal.Signals(-code).name}"
            except ValueError:
                how = f"was killed by signal {-code}"
        else:
            how = f"exited with code {code}"
        super().__init__(f"the command {how}")


def command_flow(command: str, name: str, options: RunOptions, *, echo: bool) -> Flow[[], int]:
    """The flow whose run runs `command`, named `name`, with `options`' timeout and retries;
    `echo`: also copy its output to this process's stdout and stderr."""

    def run_command() -> int:
        return _run(command, echo=echo)

    return Flow(
        run_command,
        name=name,
        retries=options.retries,
        retry_delay_seconds=options.retry_delay_seconds,
        timeout_seconds=options.timeout_seconds,
    )


def _run(command: str, *, echo: bool) -> int:
    ctx = flow_run_var.get()
    if ctx is None:  # pragma: no cover - the engine always sets it
        raise RuntimeError("a command runs inside its flow run")
    child = subprocess.Popen(
        [SHELL, "-c", command],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        start_new_session=True,
    )
    readers = []
    try:  # from here on, a signal (SIGTERM, Ctrl-C) stops the command's whole group
        track(child)
        readers = start_readers(child, ctx.store.home, ctx.run_id, echo=echo)
        code = _wait(child, ctx)
    except Interrupted:
        kill_group(child, signal.SIGKILL)
        child.wait()
        raise
    except BaseException:
        end_group(child, (signal.SIGTERM,), STOP_GRACE_SECONDS)
        raise
    finally:
        untrack(child)
        for reader in readers:
            reader.join(timeout=READER_JOIN_SECONDS)  # a background job may hold the pipe
    if code != 0:
        raise CommandFailed(code)
    return code


def _wait(child: subprocess.Popen[bytes], ctx: Any) -> int:
    """The command's exit code; CancelledRun as soon as its run is asked to stop."""
    while True:
        try:
            return child.wait(timeout=POLL_SECONDS)
        except subprocess.TimeoutExpired:
            pass
        if ctx.stopped():
            raise CancelledRun("the flow run was cancelled")
