"""What the tests share: the `orch` command as a child process, waiting on a condition,
`orch daemon` in a temporary project, and project files.

- `commands`: `orch()` runs the command to completion, `start()` without waiting;
  `child_env()` is the environment both give it by default.
- `waiting`: `wait_for(condition, timeout=..., interval=...)`, never a guessed sleep.
- `daemon`: `start_daemon()`/`stop_daemon()`, `running_daemon()` for a block, and
  `FakeLaunch` for a `Daemon` object that starts nothing.
- `project`: `Project` (a temporary project and `orch` in it), `write()`, `write_toml()`.
- `recorded`: what in-process tests recorded in their `.orch/`; `store_rows`: rows for the
  store's unit tests; `smtp` and `webhook`: local servers for the alert tests.
"""

from tests.helpers.commands import (
    ORCH,
    TIMEOUT,
    assert_usage_error,
    child_env,
    describe,
    finish,
    orch,
    pid_alive,
    start,
)
from tests.helpers.daemon import running_daemon, start_daemon, stop_daemon
from tests.helpers.project import Project, assert_blobs_whole, write, write_toml
from tests.helpers.waiting import wait_for

__all__ = [
    "ORCH",
    "TIMEOUT",
    "Project",
    "assert_blobs_whole",
    "assert_usage_error",
    "child_env",
    "describe",
    "finish",
    "orch",
    "pid_alive",
    "running_daemon",
    "start",
    "start_daemon",
    "stop_daemon",
    "wait_for",
    "write",
    "write_toml",
]
