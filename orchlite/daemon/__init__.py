"""`orch daemon`: fire a project's schedules and triggers, each run in its own child process.

One module per concept, from the top of the import graph down:

- `backfill`: `orch backfill`, the slots of a date range run now;
- `service`: one daemon per project (its lock and pid file), the signals that stop and
  reload it, `orch daemon status` and `orch daemon stop`, and the printed systemd unit;
- `listing`: `orch schedules` and `orch upcoming`, what is scheduled and when it ran;
- `loop`: `serve`, which ticks a `Daemon` in real time until asked to stop, then drains;
- `scheduler`: the `Daemon`, whose `tick(now)` does one round (claim due slots and
  triggered runs, start waiting runs) and never sleeps;
- `retry_chain`: flow-level retries recorded in the store, so they survive the run's
  process and the daemon's restarts;
- `retention`: the daily deletion of old runs and unreferenced blobs (`orch gc`).
"""

from __future__ import annotations

from .backfill import backfill
from .listing import listing, upcoming
from .loop import Requests, serve
from .retention import collect_garbage
from .retry_chain import retry_run_id
from .scheduler import Daemon, Launch, TickReport
from .service import (
    LOCK_FILE,
    PID_FILE,
    orch_executable,
    run_daemon,
    status,
    stop,
    systemd_unit,
)

__all__ = [
    "LOCK_FILE",
    "PID_FILE",
    "Daemon",
    "Launch",
    "Requests",
    "TickReport",
    "backfill",
    "collect_garbage",
    "listing",
    "orch_executable",
    "retry_run_id",
    "run_daemon",
    "serve",
    "status",
    "stop",
    "systemd_unit",
    "upcoming",
]
