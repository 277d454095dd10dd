"""The error tree and the exit codes the CLI maps it to.

    OrchError                  base; carries an ExitCode
    ├── UsageError             bad input on the command line (exit 2)
    │   ├── ParameterError     a -p value that does not fit the flow's signature
    │   └── RunNotFoundError   no run, or more than one, matches an id prefix
    ├── LoadError              a project or flow file could not be loaded (exit 3)
    ├── StoreError             .orch/ cannot be used (exit 4)
    │   ├── SchemaTooNewError  .orch/ was written by a newer orchlite
    │   ├── EmptyStoreError    orch.db is there but empty (0 bytes): its data was lost
    │   └── DiskFullError      no space left on the device holding .orch/
    ├── UnhashableInputError   a cache key cannot be computed for an argument
    ├── FlowPauseTimeout       a paused flow run was not resumed in time (exit 1)
    └── RunStateError          a run's state has no result to give (exit 1)
        ├── FailedRun          a failed state that holds no exception of its own
        ├── CrashedRun         the same for a crashed state
        ├── UnfinishedRun      `result()` of a state that is not final
        ├── PausedRun          `result()` of a paused state
        └── MissingResult      `result()` of a completed state created without data

    UpstreamTaskError          a task's upstream future failed (the task run FAILED)
    CancelledRun (a BaseException) a cancelled run, or a task call after cancellation
    SuspendedRun (a BaseException) the daemon stopping suspended this process's paused run
    Terminated (a KeyboardInterrupt) SIGTERM to `orch run`, handled as Ctrl-C is

Errors raised by user code inside a run are not wrapped: they become the run's FAILED state.
"""

from __future__ import annotations

import errno
from enum import IntEnum


class ExitCode(IntEnum):
    """Process exit codes of `orch`."""

    OK = 0
    """The command succeeded; for `orch run`, the flow run COMPLETED."""
    RUN_FAILED = 1
    """The flow run ended FAILED, CRASHED, TIMED_OUT or CANCELLED."""
    USAGE = 2
    """Bad input: an unknown option, parameter, run id or value."""
    LOAD = 3
    """A project or flow file could not be loaded (missing, syntax error, import error)."""
    STORE = 4
    """The .orch/ store cannot be used (unwritable, corrupt, newer schema)."""
    INTERRUPTED = 130
    """Interrupted with Ctrl-C; the run was recorded CANCELLED."""
    TERMINATED = 143
    """Stopped by SIGTERM (systemd, `timeout`, `kill`); the run was recorded CANCELLED."""


def one_line(message: str) -> str:
    """`message` with control characters escaped (`\\n`, `\\x00`): typed input cannot break
    the one line an error is shown on."""
    return "".join(ch if ch.isprintable() else repr(ch)[1:-1] for ch in message)


class OrchError(Exception):
    """Base of every error orchlite raises on purpose; rendered as one line by the CLI."""

    exit_code: ExitCode = ExitCode.USAGE


class UsageError(OrchError):
    exit_code = ExitCode.USAGE


class ParameterError(UsageError):
    """`names`: the parameters it is about (a form shows the message beside their fields)."""

    def __init__(self, message: str, *, names: tuple[str, ...] = ()) -> None:
        super().__init__(message)
        self.names = names


class RunNotFoundError(UsageError):
    pass


class LoadError(OrchError):
    exit_code = ExitCode.LOAD


class StoreError(OrchError):
    exit_code = ExitCode.STORE


class SchemaTooNewError(StoreError):
    pass


class EmptyStoreError(StoreError):
    """`orch.db` exists but has no bytes: a new store is never empty, so data was lost."""


class DiskFullError(StoreError):
    """No space left where `.orch/` lives (or a file-size limit was hit).

    The write that failed was rolled back (or its temporary file deleted), so what was
    recorded before stays whole; the next run after space is freed works.
    """

    def __init__(self, path: object) -> None:
        super().__init__(f"no space left on device: cannot write {path} (free some space)")


NO_SPACE_ERRNOS = frozenset({errno.ENOSPC, errno.EDQUOT, errno.EFBIG})
"""OSError numbers meaning a write found no room: disk full, quota, RLIMIT_FSIZE."""


class UnhashableInputError(OrchError):
    """A task argument has no stable hash, so no cache key can be computed."""

    exit_code = ExitCode.USAGE


class SerializationError(OrchError):
    """A task result could not be serialized or deserialized with its result serializer."""

    exit_code = ExitCode.RUN_FAILED


class TaskTimeoutError(TimeoutError):
    """A task or flow ran past its `timeout_seconds`."""


class FlowTimeoutError(TaskTimeoutError):
    """A flow ran past its own `timeout_seconds` (as opposed to one of its tasks)."""


class RunStateError(OrchError):
    """A state's `result()` cannot give a value; Prefect's names are its subclasses."""

    exit_code = ExitCode.RUN_FAILED


class FailedRun(RunStateError):
    """A FAILED state without an exception of its own (e.g. `Failed(message=...)`)."""


class CrashedRun(RunStateError):
    """A CRASHED state without an exception of its own."""


class UnfinishedRun(RunStateError):
    """`result()` of a state that is not final (pending, running, scheduled)."""


class PausedRun(RunStateError):
    """`result()` of a paused state."""


class FlowPauseTimeout(OrchError):
    """A paused flow run was not resumed before its pause timed out: the run fails."""

    exit_code = ExitCode.RUN_FAILED


class MissingResult(RunStateError):
    """`result()` of a completed state that holds no data (e.g. a bare `Completed()`)."""


class UpstreamTaskError(Exception):
    """A future this task run depends on failed, so the task run did not start."""


class CancelledRun(BaseException):
    """Raised at a task boundary once the current run has been cancelled, and by `result()`
    of a cancelled state.

    A BaseException so that a user's `except Exception` does not swallow it.
    """


class SuspendedRun(BaseException):
    """The daemon stopping suspended the paused run of this process: the process exits and
    the run stays PAUSED, to start again once resumed (`orchlite.daemon.suspended`).

    A BaseException so that a user's `except Exception` does not swallow it.
    """


class Terminated(KeyboardInterrupt):
    """SIGTERM reached `orch run`: a KeyboardInterrupt, so every path that ends a run on
    Ctrl-C ends it the same way, with this message and exit code 143."""

    def __init__(self) -> None:
        super().__init__("terminated (SIGTERM)")


def interrupt_code(exc: KeyboardInterrupt) -> ExitCode:
    """143 for SIGTERM, 130 for Ctrl-C."""
    return ExitCode.TERMINATED if isinstance(exc, Terminated) else ExitCode.INTERRUPTED
