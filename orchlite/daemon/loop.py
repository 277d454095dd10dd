"""The daemon's loop: tick a `Daemon` in real time until asked to stop, then drain.

`serve` recovers first (ends the runs whose process died while no daemon ran, and schedules
their retries), starts the project watcher, reads the declarations, then ticks: each tick
reads the time from the daemon's `clock` (`time.time` unless a test passes another), as a
test passes `now` to `Daemon.tick`, and between ticks it sleeps until the next slot, the
next tick, a change on disk or a request. An error in a step is logged (at most once a
minute while it recurs) and the step is tried again at the next tick: nothing in the
project and no fault of the store ends the daemon.

`serve` stops when its `Requests` say so (`orchlite.daemon.service` sets them from SIGTERM
and SIGINT; SIGHUP asks for a reload): it stops starting runs, suspends the runs that wait
at a pause (`orchlite.daemon.suspended`), waits up to `grace` seconds for the children, asks
the rest to cancel, and returns. A child never outlives the daemon
(see `orchlite.executor`).
"""

from __future__ import annotations

import datetime as dt
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from .. import notify
from ..errors import OrchError
from ..states import TERMINAL, StateName
from ..watcher import ProjectWatcher
from .scheduler import UTC, Daemon
from .suspended import suspend_paused

PENDING_POLL_SECONDS = 0.1
"""While file changes wait out their debounce window, the loop looks this often."""
ERROR_LOG_EVERY = 60.0
"""Seconds between two log lines of the same error of the daemon's loop."""
STOP_WAIT_SECONDS = 15.0
"""After the grace period, how long the loop waits for cancelled runs to end."""


@dataclass
class Requests:
    """What the loop was asked to do: set by signal handlers (which do nothing else), read
    and cleared by the loop between two ticks."""

    stop: bool = False
    reload: bool = False


def serve(daemon: Daemon, requests: Requests, *, tick: float = 1.0, grace: float = 30.0) -> None:
    """Tick `daemon` until `requests.stop`, then stop its runs in flight (see the module
    docstring). The caller routes signals to `requests` (`service.run_daemon`)."""
    from ..stopping import reap_dead_runs

    survive = _Survivor(daemon.log)
    watcher = ProjectWatcher(daemon.root, daemon.on_changes, daemon.log)
    survive(lambda: _recover(daemon, reap_dead_runs(daemon.store)))
    watcher.start()  # in place before the first read: no change is missed
    survive(lambda: daemon.reload(force=True))
    while not requests.stop:
        if requests.reload:
            requests.reload = False
            daemon.log("SIGHUP: reloading schedules, triggers and alerts")
            survive(lambda: daemon.reload(force=True))
        survive(lambda: _tick_now(daemon))
        _wait(daemon, tick, requests)
    daemon.log(f"stopping: waiting up to {grace:g} s for {len(daemon.in_flight)} run(s)")
    shutdown(daemon, grace)
    watcher.stop()
    notify.drain(min(grace, 10.0))  # alerts still being sent


def _recover(daemon: Daemon, reaped: list[str]) -> None:
    """At start: log the runs whose process died, and schedule the retries of the crashed."""
    for run_id in reaped:
        daemon.log(f"reaped run {run_id[:12]}: CRASHED (its process is gone)")
    daemon.retries.schedule_missed(daemon.clock())


def _tick_now(daemon: Daemon) -> None:
    now = daemon.clock()
    daemon.tick(dt.datetime.fromtimestamp(now, UTC))
    daemon.retention.maybe_collect(now)


@dataclass
class _Survivor:
    """Runs one step of the loop; an error is logged, and the next tick tries again.

    Nothing in the project and no fault of the store (a full disk, a write that keeps
    failing) ends the daemon: it logs the error, at most once a minute while it recurs,
    and goes on serving what it can.
    """

    log: Callable[[str], None]
    logged: dict[str, float] = field(default_factory=dict)  # an error → when last logged

    def __call__(self, step: Callable[[], object]) -> None:
        try:
            step()
        except Exception as exc:
            text = str(exc) if isinstance(exc, OrchError) else f"{type(exc).__name__}: {exc}"
            now = time.monotonic()
            if now - self.logged.get(text, -ERROR_LOG_EVERY) >= ERROR_LOG_EVERY:
                if len(self.logged) > 100:
                    self.logged.clear()
                self.logged[text] = now
                self.log(f"error: {text}; trying again at each tick")


def _wait(daemon: Daemon, tick: float, requests: Requests) -> None:
    """Sleep until the next tick, or sooner: at the next schedule slot, or every
    `PENDING_POLL_SECONDS` while file changes wait out their debounce window, or at once
    when a flow file or orch.toml changed, or when a request came."""
    start = time.monotonic()
    deadline = start + min(tick, max(0.0, daemon.next_slot() - daemon.clock() + 0.002))
    while not (requests.stop or requests.reload):
        left = deadline - time.monotonic()
        if left <= 0 or daemon.changed.is_set():
            return
        if len(daemon.triggers.debouncer) and time.monotonic() - start >= PENDING_POLL_SECONDS:
            return
        time.sleep(min(left, 0.02))


def run_until_idle(
    daemon: Daemon, deadline: float = float("inf"), *, only: set[str] | None = None
) -> None:
    """Collect the daemon's finished runs until none is in flight or `deadline` (monotonic)
    passed; with `only`, start those of them that wait, as slots free up."""
    while True:
        daemon.collect_finished()
        if only is not None:
            now = dt.datetime.fromtimestamp(daemon.clock(), UTC)
            daemon.start_waiting(now, only=only, mark_late=False)
        if not daemon.in_flight or time.monotonic() >= deadline:
            return
        time.sleep(0.05)


def shutdown(daemon: Daemon, grace: float) -> None:
    """Suspend the runs in flight that wait at a pause, wait up to `grace` seconds for the
    runs in flight, then ask the rest to cancel."""
    store = daemon.store
    suspend_paused(store, list(daemon.in_flight), daemon.log)
    run_until_idle(daemon, time.monotonic() + grace)
    for run_id in list(daemon.in_flight):
        state = StateName(store.get_flow_run(run_id).state)
        if state in (StateName.SCHEDULED, StateName.LATE):
            store.set_flow_run_state(run_id, StateName.CANCELLED, "the daemon stopped")
        elif state == StateName.RETRYING:
            daemon.retries.interrupt(run_id, daemon.clock())
        elif state not in TERMINAL:
            store.request_cancel(run_id, "the daemon stopped")
    run_until_idle(daemon, time.monotonic() + STOP_WAIT_SECONDS)
