"""Stopping a child process together with everything it started: its process group.

A child started in a session of its own (`start_new_session=True`) leads a process group
that holds what it starts in turn (a shell's pipeline, a flow's subprocesses), unless one of
those starts a session of its own. Signals go to the whole group, and a group counts as
ended only once every member is gone, so a grandchild that ignores SIGTERM is still killed.

A process that starts such groups registers them (`track`), so the code that kills the
process's own group when its supervisor is gone (`orchlite.executor`) kills them too
(`kill_tracked`).
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import time
from typing import Any

POLL_SECONDS = 0.05

_tracked: set[int] = set()


def end_group(
    child: subprocess.Popen[Any], signals: tuple[signal.Signals, ...], grace: float
) -> None:
    """Send each of `signals` to the child's process group, `grace` seconds apart, until
    every process in it is gone; then SIGKILL the group if any is left.

    The whole group, always: the child exiting on time does not mean that what it started
    (in the child's group) did, e.g. a grandchild that ignores SIGTERM.
    """
    for sig in signals:
        kill_group(child, sig)
        if group_ended(child, grace):
            return
    kill_group(child, signal.SIGKILL)
    child.wait()


def group_ended(child: subprocess.Popen[Any], timeout: float) -> bool:
    """Wait up to `timeout` s for the child's whole process group to exit (reaping the child)."""
    deadline = time.monotonic() + timeout
    while True:
        child.poll()
        try:
            os.killpg(child.pid, 0)
        except ProcessLookupError:
            return True
        except PermissionError:
            pass  # a member changed its user: alive
        if time.monotonic() >= deadline:
            return False
        time.sleep(POLL_SECONDS)


def kill_group(child: subprocess.Popen[Any], sig: signal.Signals) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.killpg(child.pid, sig)


def track(child: subprocess.Popen[Any]) -> None:
    """Remember the group `child` leads, for `kill_tracked`, until `untrack`."""
    _tracked.add(child.pid)


def untrack(child: subprocess.Popen[Any]) -> None:
    _tracked.discard(child.pid)


def kill_tracked() -> None:
    """SIGKILL every group this process started and still tracks."""
    for pgid in list(_tracked):
        with contextlib.suppress(OSError):
            os.killpg(pgid, signal.SIGKILL)
