"""`orch daemon`: fire a project's schedules, each run in its own supervised child process.

One daemon per project: it holds `.orch/daemon.lock` (non-blocking) and writes its pid and
start time to `.orch/daemon.pid`. The loop calls `Daemon.tick(now)` every `tick` seconds:

1. forget finished runs (one "finished" line each);
2. reload the schedules when orch.toml or a flow file changed (mtimes);
3. claim every due slot (`schedules.due_slots`) by inserting its run, id
   `schedules.slot_id(key, slot)`, SCHEDULED with trigger "schedule", in one transaction
   with the schedule's mark. A slot whose run already exists was claimed already (another
   daemon, a restart) and is skipped. With `overlap = "skip"` a slot of a flow that still has
   an unfinished run is recorded SKIPPED with the reason instead;
4. start waiting runs, oldest slot first, up to `max_runs` at once (the rest stay SCHEDULED
   for a later tick). A run starting past its slot's grace period is marked LATE first.

Triggers (`orchlite.triggers`): after step 3 the tick claims the runs of file triggers whose
changes have settled and of flow triggers whose upstream flow ended; they wait as SCHEDULED
runs (triggers "file" and "flow") and step 4 starts them. A watcher thread feeds file changes.

Each run goes through `executor.run_in_subprocess` in a thread: a child process in its own
session, supervised for crashes, deadlines and cancellation. The child inherits the daemon's
stdout and stderr. SIGTERM and SIGINT only set a flag: the loop stops starting runs, waits
up to `grace` seconds for the children, asks the rest to cancel, and returns.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import signal
import socket
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from . import notify
from .errors import UsageError
from .project import ScheduleEntry, ScheduleProblem, fingerprint, load_schedules, load_triggers
from .schedules import is_late, run_parameters, slot_id
from .states import TERMINAL, StateType
from .store import Store
from .triggers import TriggerRunner

LOCK_FILE = "daemon.lock"
PID_FILE = "daemon.pid"
UTC = dt.timezone.utc


class Handle(Protocol):
    def is_alive(self) -> bool: ...


Launch = Callable[[str, str, dict[str, Any]], Handle]
"""Start a run: (run id, target, parameters) -> something that says whether it still runs."""


@dataclass
class TickReport:
    """What one tick did (for tests and logs)."""

    fired: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)
    started: list[str] = field(default_factory=list)
    finished: list[str] = field(default_factory=list)


class Daemon:
    """The scheduler of one project; `tick(now)` does one round and never sleeps."""

    def __init__(
        self,
        store: Store,
        root: Path,
        *,
        max_runs: int | None = None,
        launch: Launch | None = None,
        log: Callable[[str], None] | None = None,
    ) -> None:
        if max_runs is not None and max_runs < 1:
            raise UsageError(f"--max-runs must be >= 1, not {max_runs}")
        self.store = store
        self.root = Path(root)
        self.max_runs = max_runs
        self.launch: Launch = launch or _launch_in_thread
        self.log = log or _log
        self.entries: list[ScheduleEntry] = []
        self.problems: list[ScheduleProblem] = []
        self.in_flight: dict[str, Handle] = {}
        self._fingerprint: object = None
        self.triggers = TriggerRunner(store, self.root, self.log)
        self.trigger_problems: list[ScheduleProblem] = []
        self.alerts = notify.AlertConfig()

    # -- one round --------------------------------------------------------------------

    def tick(self, now: dt.datetime, *, start: bool = True) -> TickReport:
        report = TickReport()
        report.finished = self.collect_finished()
        self.reload()
        self.claim_due(now, report)
        report.fired += self.triggers.tick(now.timestamp())
        if start:
            self.start_waiting(now, report)
        return report

    def reload(self, force: bool = False) -> bool:
        """Read the schedules again if orch.toml or a flow file changed."""
        stamp = fingerprint(self.root)
        if not force and stamp == self._fingerprint:
            return False
        self._fingerprint = stamp
        self.entries, self.problems = load_schedules(self.root)
        trigger_entries, self.trigger_problems = load_triggers(self.root)
        self.triggers.update(trigger_entries)
        self.problems = self.problems + self.trigger_problems
        self.alerts = notify.load_alerts(self.root, self.log)
        self.log(f"loaded {len(self.entries)} schedule(s)")
        for problem in self.problems:
            self.log(f"error: {problem}")
        return True

    def claim_due(self, now: dt.datetime, report: TickReport | None = None) -> TickReport:
        from .schedules import due_slots

        report = report or TickReport()
        stamp = now.timestamp()
        for entry in self.entries:
            if not entry.schedule.enabled:
                continue
            key = entry.key
            last = self.store.schedule_mark(key, stamp)
            last_fired = dt.datetime.fromtimestamp(last, UTC)
            for slot in due_slots(entry.schedule, last_fired, now):
                run_id = slot_id(key, slot)
                reason = self._overlap(entry)
                try:
                    params = json.dumps(run_parameters(entry.schedule, slot), default=str)
                except Exception as exc:  # a template that fails only for this slot
                    reason = f"its parameters cannot be rendered: {exc}"
                    params = "{}"
                claimed = self.store.claim_slot(
                    run_id=run_id,
                    key=key,
                    slot=slot.timestamp(),
                    flow_name=entry.flow_name,
                    name=f"{entry.flow_name}-{slot:%Y%m%dT%H%M%S}",
                    target=entry.target,
                    parameters=params,
                    skip_reason=reason,
                    now=stamp,
                )
                if not claimed:
                    continue
                when = slot.isoformat(timespec="seconds")
                if reason is None:
                    report.fired.append(run_id)
                    self.log(f"fire {entry.target} slot {when} run {run_id[:12]}")
                else:
                    report.skipped.append(run_id)
                    self.log(f"skip {entry.target} slot {when} run {run_id[:12]}: {reason}")
        return report

    def _overlap(self, entry: ScheduleEntry) -> str | None:
        if entry.overlap != "skip":
            return None
        for run in self.store.unfinished_flow_runs():
            if run.target == entry.target and run.parent_run_id is None:
                return f"overlap=skip: run {run.id[:12]} of this flow is still {run.state}"
        return None

    def start_waiting(self, now: dt.datetime, report: TickReport | None = None) -> TickReport:
        report = report or TickReport()
        graces = {e.key: e.schedule for e in self.entries}
        for waiting in self.store.waiting_slots():
            if waiting.run_id in self.in_flight:
                continue
            if self.max_runs is not None and len(self.in_flight) >= self.max_runs:
                break
            schedule = graces.get(waiting.key)
            slot = dt.datetime.fromtimestamp(waiting.slot, UTC)
            if (
                schedule is not None
                and waiting.state == StateType.SCHEDULED.value
                and is_late(schedule, slot, now)
            ):
                self.store.set_flow_run_state(
                    waiting.run_id,
                    StateType.LATE,
                    f"started {(now - slot).total_seconds():.0f} s after its slot",
                    now=now.timestamp(),
                )
                notify.alert_run(self.store, waiting.run_id, self.alerts, self.log)
            target = waiting.target or ""
            self.in_flight[waiting.run_id] = self.launch(
                waiting.run_id, target, json.loads(waiting.parameters)
            )
            report.started.append(waiting.run_id)
        return report

    def collect_finished(self) -> list[str]:
        done = [run_id for run_id, h in self.in_flight.items() if not h.is_alive()]
        for run_id in done:
            del self.in_flight[run_id]
            run = self.store.get_flow_run(run_id)
            if run.state in (StateType.SCHEDULED.value, StateType.LATE.value):
                # The child exited before adopting its run (an unloadable target or bad
                # parameters; it said why on stderr): end the run so it is not retried.
                message = "the run's process exited before the flow started (see the daemon log)"
                self.store.set_flow_run_state(run_id, StateType.PENDING, None)
                self.store.set_flow_run_state(run_id, StateType.CRASHED, message)
                run = self.store.get_flow_run(run_id)
            detail = f": {run.state_message}" if run.state_message else ""
            self.log(f"finish {run.target} run {run_id[:12]} {run.state}{detail}")
            notify.alert_finished(self.store, run_id, self.alerts, self.log)
        return done

    # -- the loop -----------------------------------------------------------------------

    def serve(self, *, tick: float = 1.0, grace: float = 30.0) -> None:
        """Tick until SIGTERM or SIGINT, then stop the runs in flight (see the docstring)."""
        from .reaper import reap_dead_runs

        stop = _StopFlag()
        previous = {sig: signal.signal(sig, stop.set) for sig in (signal.SIGTERM, signal.SIGINT)}
        try:
            for run_id in reap_dead_runs(self.store):
                self.log(f"reaped run {run_id[:12]}: CRASHED (its process is gone)")
            self.reload(force=True)
            while not stop.requested:
                self.tick(dt.datetime.now(UTC))
                _sleep_until(time.monotonic() + tick, stop)
            self.log(f"stopping: waiting up to {grace:g} s for {len(self.in_flight)} run(s)")
            self.shutdown(grace)
            self.triggers.stop()
            notify.drain(min(grace, 10.0))  # alerts still being sent
        finally:
            for sig, handler in previous.items():
                signal.signal(sig, handler)

    def shutdown(self, grace: float) -> None:
        deadline = time.monotonic() + grace
        while self.in_flight and time.monotonic() < deadline:
            self.collect_finished()
            time.sleep(0.05)
        for run_id in list(self.in_flight):
            state = self.store.get_flow_run(run_id).state
            if StateType(state) in (StateType.SCHEDULED, StateType.LATE):
                self.store.set_flow_run_state(run_id, StateType.CANCELLED, "the daemon stopped")
            elif StateType(state) not in TERMINAL:
                self.store.request_cancel(run_id, "the daemon stopped")
        deadline = time.monotonic() + 15
        while self.in_flight and time.monotonic() < deadline:
            self.collect_finished()
            time.sleep(0.05)


class _StopFlag:
    """Set by the signal handlers; nothing else happens inside a handler."""

    def __init__(self) -> None:
        self.requested = False

    def set(self, signum: int, frame: Any) -> None:
        self.requested = True


def _sleep_until(deadline: float, stop: _StopFlag) -> None:
    while not stop.requested:
        left = deadline - time.monotonic()
        if left <= 0:
            return
        time.sleep(min(left, 0.05))


def _launch_in_thread(run_id: str, target: str, params: dict[str, Any]) -> Handle:
    from .executor import RunRequest, run_in_subprocess

    request = RunRequest(target, params, run_id=run_id, trigger="schedule")
    thread = threading.Thread(
        target=run_in_subprocess, args=(request,), name=f"run-{run_id[:12]}", daemon=True
    )
    thread.start()
    return thread


def _log(message: str) -> None:
    stamp = dt.datetime.now().astimezone().isoformat(timespec="seconds")
    print(f"{stamp} orch daemon: {message}", file=sys.stderr, flush=True)


# -- one daemon per project -----------------------------------------------------------------


def run_daemon(home: Path, root: Path, *, max_runs: int | None, grace: float, tick: float) -> None:
    """Hold the project's daemon lock and serve; UsageError if another daemon holds it."""
    from filelock import FileLock, Timeout

    store = Store(home)
    daemon = Daemon(store, root, max_runs=max_runs)
    lock = FileLock(str(home / LOCK_FILE), timeout=0)
    try:
        lock.acquire()
    except Timeout:
        info = read_pid_file(home)
        pid = info.get("pid", "unknown") if info else "unknown"
        raise UsageError(f"a daemon is already running for this project (pid {pid})") from None
    pid_file = home / PID_FILE
    try:
        info = {"pid": os.getpid(), "host": socket.gethostname(), "started": time.time()}
        pid_file.write_text(json.dumps(info))
        daemon.log(f"started (pid {os.getpid()}, project {root})")
        daemon.serve(tick=tick, grace=grace)
        daemon.log("stopped")
    finally:
        pid_file.unlink(missing_ok=True)
        lock.release()


def read_pid_file(home: Path) -> dict[str, Any] | None:
    try:
        data = json.loads((home / PID_FILE).read_text())
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def status(home: Path) -> dict[str, Any]:
    """Whether a daemon holds the project's lock, its pid, uptime and runs in flight."""
    from filelock import FileLock, Timeout

    running = False
    if home.is_dir():
        lock = FileLock(str(home / LOCK_FILE), timeout=0)
        try:
            lock.acquire()
            lock.release()
        except Timeout:
            running = True
    info = read_pid_file(home) if running else None
    in_flight: list[dict[str, Any]] = []
    if (home / "orch.db").exists():
        store = Store(home)
        in_flight = [
            {"id": r.id, "target": r.target, "state": r.state}
            for r in store.unfinished_flow_runs()
            if r.trigger in ("schedule", "file", "flow")
        ]
    started = info.get("started") if info else None
    return {
        "running": running,
        "pid": info.get("pid") if info else None,
        "uptime_seconds": round(time.time() - started, 1) if started else None,
        "runs_in_flight": in_flight,
    }


def listing(home: Path, root: Path, now: dt.datetime) -> dict[str, Any]:
    """`orch schedules`: every schedule with its next fire times and last run, and errors."""
    from zoneinfo import ZoneInfo

    from .schedules import describe, next_fire_times

    entries, problems = load_schedules(root)
    last = Store(home).last_slot_runs() if (home / "orch.db").exists() else {}
    rows = []
    for entry in entries:
        zone = ZoneInfo(entry.schedule.timezone)
        ran = last.get(entry.key)
        rows.append(
            {
                "source": entry.source,
                "where": entry.where,
                "target": entry.target,
                "name": entry.schedule.name,
                "schedule": describe(entry.schedule),
                "enabled": entry.schedule.enabled,
                "overlap": entry.overlap,
                "catchup": entry.schedule.catchup,
                "next": [
                    t.astimezone(zone).isoformat() for t in next_fire_times(entry.schedule, now, 3)
                ],
                "last_run": None
                if ran is None
                else {
                    "id": ran.run_id,
                    "state": ran.state,
                    "slot": dt.datetime.fromtimestamp(ran.slot, UTC).isoformat(),
                },
                "key": entry.key,
            }
        )
    trigger_entries, trigger_problems = load_triggers(root)
    problems = [*problems, *trigger_problems]
    triggers = []
    for t in trigger_entries:
        ran = last.get(t.key)
        triggers.append(
            {
                "source": t.source,
                "where": t.where,
                "target": t.target,
                "kind": t.trigger.kind,
                "trigger": t.trigger.describe(),
                "last_run": None if ran is None else {"id": ran.run_id, "state": ran.state},
                "key": t.key,
            }
        )
    errors = [{"source": p.source, "where": p.where, "message": p.message} for p in problems]
    return {"schedules": rows, "triggers": triggers, "errors": errors}
