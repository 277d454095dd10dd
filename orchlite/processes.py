"""Whether a process is still alive: the one check behind reaping runs and reclaiming slots."""

from __future__ import annotations

import os


def pid_alive(pid: int) -> bool:
    """Whether process `pid` exists on this host and is not a zombie.

    A zombie exited but was never waited for (its parent died, and PID 1 in a container may
    never reap it): `kill(pid, 0)` still succeeds, so `/proc/<pid>/stat` is read too (Linux;
    elsewhere a zombie counts as alive). On Windows there is no cheap check: any positive pid
    counts as alive, and leases and heartbeats decide.
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
    try:
        with open(f"/proc/{pid}/stat", "rb") as fh:
            stat = fh.read()
    except OSError:
        return True
    state = stat[stat.rfind(b")") + 2 :][:1]
    return state not in (b"Z", b"X")
