"""Whether a process is still alive: the one check behind reaping runs and reclaiming slots.

A pid alone does not name a process for long: once it exits, the kernel may give its pid to
an unrelated one. So a process is recorded as its pid and its start (`process_start`): on
Linux the boot id and field 22 of `/proc/PID/stat` (clock ticks since boot), which together
name one process of one boot. `process_alive(pid, start)` is true only while that very
process runs. Elsewhere the start is unknown (None) and the pid alone decides.
"""

from __future__ import annotations

import functools
import os

SEES_PROCESSES = os.name != "nt"
"""Whether `pid_alive` can tell a dead process from a live one here (not on Windows, where
every positive pid counts as alive and heartbeats decide instead)."""


def pid_alive(pid: int) -> bool:
    """Whether process `pid` exists on this host and is not a zombie.

    A zombie exited but was never waited for (its parent died, and PID 1 in a container may
    never reap it): `kill(pid, 0)` still succeeds, so `/proc/<pid>/stat` is read too (Linux;
    elsewhere a zombie counts as alive). On Windows there is no cheap check: any positive pid
    counts as alive (see `SEES_PROCESSES`).
    """
    if pid == os.getpid():
        return True
    if pid <= 0 or os.name == "nt":
        return pid > 0
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    stat = _stat(pid)
    if stat is None:
        return True
    return _state(stat) not in (b"Z", b"X")


def process_alive(pid: int, start: str | None) -> bool:
    """Whether the process recorded as (`pid`, `start`) still runs on this host.

    A stopped process (Ctrl-Z, SIGSTOP, a suspended machine) is alive. With `start` None
    (not known where it was recorded) the pid alone decides.
    """
    if not pid_alive(pid):
        return False
    if start is None:
        return True
    now = process_start(pid)
    return now is None or now == start


def process_start(pid: int) -> str | None:
    """A token naming when process `pid` started (Linux: `BOOT_ID:TICKS`); None if unknown.

    Two processes with the same pid and the same token are the same process.
    """
    if pid == os.getpid():
        return _own_start(pid)
    return _start_of(pid)


@functools.lru_cache(maxsize=4)
def _own_start(pid: int) -> str | None:
    """This process's start, read once (keyed by pid, so a forked child reads its own)."""
    return _start_of(pid)


def _start_of(pid: int) -> str | None:
    stat = _stat(pid)
    boot = _boot_id()
    if stat is None or boot is None:
        return None
    fields = stat[stat.rfind(b")") + 2 :].split()
    # Field 22 of the whole line is field 20 after the command name: (3) state is the first.
    try:
        ticks = int(fields[19])
    except (IndexError, ValueError):
        return None
    return f"{boot}:{ticks}"


def _stat(pid: int) -> bytes | None:
    try:
        with open(f"/proc/{pid}/stat", "rb") as fh:
            return fh.read()
    except OSError:
        return None


def _state(stat: bytes) -> bytes:
    return stat[stat.rfind(b")") + 2 :][:1]


@functools.cache
def _boot_id() -> str | None:
    try:
        with open("/proc/sys/kernel/random/boot_id", encoding="ascii") as fh:
            return fh.read().strip() or None
    except OSError:
        return None
