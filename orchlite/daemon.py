"""`orch daemon`: fire a project's schedules, each run in its own supervised child process.

One daemon per project: it holds `.orch/daemon.lock` (non-blocking) and writes its pid and
start time to `.orch/daemon.pid`. The loop calls `Daemon.tick(now)` every `tick` seconds:

1. forget finished runs (one "finished" line each);
2. read the declarations again (`declarations.read_declarations`) when orch.toml or a flow
   file changed (the project watcher, `orchlite.watcher`, saw it) or on SIGHUP; a file with
   errors keeps its last good version;
3. claim every due slot (`schedules.due_slots`) by inserting its run, id
   `schedules.slot_id(key, slot)`, SCHEDULED with trigger "schedule", in one transaction
   with the schedule's mark. A slot whose run already exists was claimed already (another
   daemon, a restart) and is skipped. With `overlap = "skip"` a slot of a flow that still has
   an unfinished run is recorded SKIPPED with the reason instead;
4. start waiting runs, oldest slot first, up to `max_runs` at once (the rest stay SCHEDULED
   for a later tick). A run starting past its slot's grace period is marked LATE first.

Triggers (`orchlite.triggers`): after step 3 the tick claims the runs of file triggers whose
changes have settled and of flow triggers whose upstream flow ended; they wait as SCHEDULED
runs (triggers "file" and "flow") and step 4 starts them. The project watcher's thread
feeds file changes to both the reload (step 2) and the file triggers, and wakes the loop.

Each run goes through `executor.run_in_subprocess` in a thread: a child process in its own
session, supervised for crashes, deadlines and cancellation. The child's stdout and stderr
are captured: each line becomes a log record of its run (`orch logs RUN`), stdout at INFO
(logger "orchlite.stdout"), stderr at WARNING ("orchlite.stderr"). SIGTERM and SIGINT only
set a flag: the loop stops starting runs, waits up to `grace` seconds for the children, asks
the rest to cancel, and returns. SIGHUP only sets a flag too: the next tick reloads the
schedules, triggers and alerts. A child never outlives the daemon (see `orchlite.executor`).

Overlap policies per schedule: "skip" records a slot SKIPPED while the flow has an unfinished
run; "allow" starts it anyway; "queue" leaves it SCHEDULED until the flow's previous run
ended (a SCHEDULED row, so the queue survives a restart); "cancel_previous" asks the
flow's unfinished runs to cancel, then starts the new one.

Flow-level retries that survive a restart: a flow's `retries` normally run inside its child
process (`engine._run_flow_attempts`). When the child cannot retry (its process died: the run
ended CRASHED, killed, segfault, OOM) or the daemon stops while the child waits out a retry
delay (the run is cancelled), the daemon records the next attempt in the store: a new run,
trigger "retry", `retry_of` the old one, id derived from the old run's id (so it is created
once, even by two daemons or across restarts), SCHEDULED with a `schedule_slots` row (key
"retry:" + the old key) due at the end of the retry delay; step 4 starts it when due, resuming
the old run's completed tasks as `orch retry` does. The daemon knows the flow's retries
without importing user code: the child records the policy on its run as it starts
(`retry_policy`: retries and the resolved delays), and the new run carries the attempts made
so far (`prior_attempts`), so `retries` bounds the whole chain. At start the daemon also
schedules the retries of runs that crashed while it was down (reaped, or not yet handled).

Retention: once a day the daemon deletes finished runs older than `[daemon] retention_days`
of orch.toml (default 30; 0 turns it off) and prunes unreferenced blobs, as `orch gc` does.
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
from .blobs import private_opener, write_private
from .declarations import Declarations, read_declarations
from .errors import OrchError, UsageError
from .project import ScheduleEntry, ScheduleProblem, load_schedules, load_triggers
from .schedules import is_late, run_parameters, slot_id
from .states import TERMINAL, StateName
from .store import Store
from .triggers import TriggerRunner
from .watcher import Changes, ProjectWatcher, is_declaration_file

LOCK_FILE = "daemon.lock"
PID_FILE = "daemon.pid"
UTC = dt.timezone.utc
GC_EVERY_SECONDS = 86400.0
WAITING = (StateName.SCHEDULED.value, StateName.LATE.value)
RETRY_KEY = "retry:"
PENDING_POLL_SECONDS = 0.1
DAEMON_TRIGGERS = ("schedule", "file", "flow", "retry")
RETRY_LOOKBACK_SECONDS = 7 * 86400.0


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
        self.declared = Declarations()
        self.entries: list[ScheduleEntry] = []
        self.problems: list[ScheduleProblem] = []
        self.alerts = notify.AlertConfig()
        self.retention_days = self.declared.retention_days
        self.in_flight: dict[str, Handle] = {}
        self.triggers = TriggerRunner(store, self.root, self.log)
        self.changed = threading.Event()
        """Set when the declarations may have changed: the next tick reads them again."""
        self.changed.set()
        self._last_gc: float | None = None
        self._targets: dict[str, str] = {}
        self._retry_due: dict[str, float] = {}  # stopped in a retry delay: when it was due
        self._errors_logged: dict[str, float] = {}  # a step's error → when it was last logged
        # Per schedule entry (by identity): (entry, its key, its next slot's timestamp), so
        # a tick skips schedules with nothing due without computing their slots again.
        self._next_slots: dict[int, tuple[ScheduleEntry, str, float]] = {}

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
        """Read the declarations again if a file changed (or `force`); see the docstring."""
        if not force and not self.changed.is_set():
            return False
        self.changed.clear()  # before reading: a change made meanwhile reads them once more
        try:
            declared = self.declared = read_declarations(self.root, self.declared, self.log)
        except BaseException:
            self.changed.set()  # read them again at the next tick
            raise
        self.entries, self.problems = declared.schedules, declared.problems
        self.alerts, self.retention_days = declared.alerts, declared.retention_days
        self.triggers.update(declared.triggers)
        self.log(f"loaded {len(self.entries)} schedule(s)")
        if self.alerts.rules or self.alerts.problems:
            self.log(f"loaded {len(self.alerts.rules)} alert rule(s)")
        return True

    def on_changes(self, changes: Changes) -> None:
        """From the project watcher's thread: what changed on disk."""
        root = self.root.resolve()  # the watcher reports resolved paths
        if any(is_declaration_file(root, path) for _kind, path in changes):
            self.changed.set()
        changed = [path for kind, path in changes if kind != "deleted"]
        self.triggers.on_changes(changed, self.triggers.clock())

    def claim_due(self, now: dt.datetime, report: TickReport | None = None) -> TickReport:
        from .schedules import due_slots, next_fire_times

        report = report or TickReport()
        stamp = now.timestamp()
        cache = self._next_slots
        if len(cache) > 2 * len(self.entries) + 16:
            cache.clear()  # entries replaced since (reload): drop the stale ones
        for entry in self.entries:
            if not entry.schedule.enabled:
                continue
            cached = cache.get(id(entry))
            if cached is not None and cached[0] is entry:
                if stamp < cached[2]:
                    continue  # nothing due before its next slot
                key = cached[1]
            else:
                key = entry.key
            upcoming = next_fire_times(entry.schedule, now, 1)
            cache[id(entry)] = (entry, key, upcoming[0].timestamp() if upcoming else float("inf"))
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
                    if entry.overlap == "cancel_previous":
                        self._cancel_previous(entry.target, run_id)
                else:
                    report.skipped.append(run_id)
                    self.log(f"skip {entry.target} slot {when} run {run_id[:12]}: {reason}")
        return report

    def _cancel_previous(self, target: str, newer: str) -> None:
        """overlap=cancel_previous: end the flow's other unfinished runs before `newer`."""
        for run in self.store.unfinished_flow_runs():
            if run.target != target or run.parent_run_id is not None or run.id == newer:
                continue
            message = f"overlap=cancel_previous: superseded by run {newer[:12]}"
            if run.state in WAITING and run.id not in self.in_flight:
                self.store.set_flow_run_state(run.id, StateName.CANCELLED, message)
            else:
                self.store.request_cancel(run.id, message)
            self.log(f"cancel {target} run {run.id[:12]}: {message}")

    def _busy_targets(self) -> set[str]:
        """Targets with a run that started (or is being started): what overlap=queue waits on."""
        busy = {self._targets[r] for r in self.in_flight if r in self._targets}
        for run in self.store.unfinished_flow_runs():
            if run.parent_run_id is None and run.state not in WAITING and run.target:
                busy.add(run.target)
        return busy

    def _overlap(self, entry: ScheduleEntry) -> str | None:
        if entry.overlap != "skip":
            return None
        for run in self.store.unfinished_flow_runs():
            if run.target == entry.target and run.parent_run_id is None:
                return f"overlap=skip: run {run.id[:12]} of this flow is still {run.state}"
        return None

    def start_waiting(
        self,
        now: dt.datetime,
        report: TickReport | None = None,
        *,
        only: set[str] | None = None,
        mark_late: bool = True,
    ) -> TickReport:
        """Start waiting runs (all, or those in `only`), oldest slot first, up to max_runs."""
        report = report or TickReport()
        waiting_runs = self.store.waiting_slots()
        if not waiting_runs:
            return report
        graces = {self._key_of(e): e.schedule for e in self.entries}
        queued = {self._key_of(e) for e in self.entries if e.overlap == "queue"}
        busy: set[str] | None = None
        for waiting in waiting_runs:
            if waiting.run_id in self.in_flight:
                continue
            if only is not None and waiting.run_id not in only:
                continue
            retry = waiting.key.startswith(RETRY_KEY)
            if retry and waiting.slot > now.timestamp():
                continue  # a retry waits out its delay
            if self.max_runs is not None and len(self.in_flight) >= self.max_runs:
                break
            if waiting.key in queued:
                busy = self._busy_targets() if busy is None else busy
                if waiting.target in busy:
                    continue  # overlap=queue: waits SCHEDULED until the previous run ends
            schedule = graces.get(waiting.key)
            slot = dt.datetime.fromtimestamp(waiting.slot, UTC)
            if (
                mark_late
                and schedule is not None
                and waiting.state == StateName.SCHEDULED.value
                and is_late(schedule, slot, now)
            ):
                self.store.set_flow_run_state(
                    waiting.run_id,
                    StateName.LATE,
                    f"started {(now - slot).total_seconds():.0f} s after its slot",
                    now=now.timestamp(),
                )
                notify.alert_run(self.store, waiting.run_id, self.alerts, self.log)
            target = waiting.target or ""
            params = json.loads(waiting.parameters)
            if retry and self.launch is _launch_in_thread:
                resume = self.store.get_flow_run(waiting.run_id).retry_of
                handle = _launch_in_thread(waiting.run_id, target, params, resume_from=resume)
            else:
                handle = self.launch(waiting.run_id, target, params)
            self.in_flight[waiting.run_id] = handle
            self._targets[waiting.run_id] = target
            if busy is not None:
                busy.add(target)
            report.started.append(waiting.run_id)
        return report

    def _key_of(self, entry: ScheduleEntry) -> str:
        cached = self._next_slots.get(id(entry))
        return cached[1] if cached is not None and cached[0] is entry else entry.key

    def collect_finished(self) -> list[str]:
        done = [run_id for run_id, h in self.in_flight.items() if not h.is_alive()]
        for run_id in done:
            del self.in_flight[run_id]
            self._targets.pop(run_id, None)
            run = self.store.get_flow_run(run_id)
            if run.state in (StateName.SCHEDULED.value, StateName.LATE.value):
                # The child exited before adopting its run (an unloadable target or bad
                # parameters; it said why on stderr): end the run so it is not retried.
                message = "the run's process exited before the flow started (see its logs)"
                self.store.set_flow_run_state(run_id, StateName.PENDING, None)
                self.store.set_flow_run_state(run_id, StateName.CRASHED, message)
                run = self.store.get_flow_run(run_id)
            detail = f": {run.state_message}" if run.state_message else ""
            self.log(f"finish {run.target} run {run_id[:12]} {run.state}{detail}")
            notify.alert_finished(self.store, run_id, self.alerts, self.log)
            due = self._retry_due.pop(run_id, None)
            if run.state == StateName.CRASHED.value:
                self.schedule_retry(run_id, time.time())
            elif due is not None and run.state == StateName.CANCELLED.value:
                self.schedule_retry(run_id, time.time(), due=due)
        return done

    # -- flow-level retries in the store --------------------------------------------------

    def schedule_retry(
        self, run_id: str, now: float, *, due: float | None = None, quiet: bool = False
    ) -> str | None:
        """Record the next attempt of a run that could not retry in its own process (see the
        module docstring); returns the new run's id, or None (no policy, no retries left,
        not a daemon run, or scheduled already)."""
        run = self.store.get_flow_run(run_id)
        if run.parent_run_id is not None or run.trigger not in DAEMON_TRIGGERS:
            return None
        text = self.store.retry_policy(run_id)
        if not text:
            return None
        try:
            policy = json.loads(text)
            retries = int(policy.get("retries", 0))
            delays = [float(d) for d in policy.get("delays", [])] or [0.0]
        except (ValueError, TypeError, AttributeError):
            return None
        used = max(run.attempts, 1)
        if used > retries:
            if quiet:
                return None
            self.log(f"no retries left for {run.target} run {run_id[:12]} ({used} attempt(s))")
            return None
        from .retries import delay_before_retry

        delay = delay_before_retry(delays, used)
        when = now + delay if due is None else max(now, due)
        retry_id = retry_run_id(run_id)
        key = self.store.slot_key(run_id) or run.flow_name
        if not key.startswith(RETRY_KEY):
            key = RETRY_KEY + key
        message = f"attempt {used + 1} of {retries + 1}, after run {run_id[:12]} ended {run.state}"
        claimed = self.store.claim_retry_run(
            run_id=retry_id,
            retry_of=run_id,
            key=key,
            due=when,
            prior_attempts=used,
            message=message,
            now=now,
        )
        if not claimed:
            return None
        self.log(
            f"retry {run.target} run {run_id[:12]} as run {retry_id[:12]} ({message})"
            f" in {max(0.0, when - now):.3g} s"
        )
        return retry_id

    def schedule_missed_retries(self, now: float) -> list[str]:
        """At start: the retries of daemon runs that crashed while no daemon handled them."""
        since = now - RETRY_LOOKBACK_SECONDS
        candidates = self.store.unretried_runs([StateName.CRASHED.value], DAEMON_TRIGGERS, since)
        scheduled = []
        for run_id in candidates:
            ended = self.store.get_flow_run(run_id).ended or now
            policy = json.loads(self.store.retry_policy(run_id) or "{}")
            delays = policy.get("delays") or [0.0]
            attempts = max(self.store.get_flow_run(run_id).attempts, 1)
            from .retries import delay_before_retry

            due = ended + delay_before_retry([float(d) for d in delays], attempts)
            new = self.schedule_retry(run_id, now, due=due, quiet=True)
            if new is not None:
                scheduled.append(new)
        return scheduled

    # -- the loop -----------------------------------------------------------------------

    def serve(
        self, *, tick: float = 1.0, grace: float = 30.0, ready: Callable[[], None] | None = None
    ) -> None:
        """Tick until SIGTERM or SIGINT, then stop the runs in flight (see the docstring).
        `ready` is called once the signal handlers are in place."""
        from .stopping import reap_dead_runs

        stop = _StopFlag()
        hangup = _StopFlag()
        previous = {sig: signal.signal(sig, stop.set) for sig in (signal.SIGTERM, signal.SIGINT)}
        previous[signal.SIGHUP] = signal.signal(signal.SIGHUP, hangup.set)
        watcher = ProjectWatcher(self.root, self.on_changes, self.log)
        try:
            if ready is not None:
                ready()
            self._survive(lambda: self._recover(reap_dead_runs))
            watcher.start()  # in place before the first read: no change is missed
            self._survive(lambda: self.reload(force=True))
            while not stop.requested:
                if hangup.requested:
                    hangup.requested = False
                    self.log("SIGHUP: reloading schedules, triggers and alerts")
                    self._survive(lambda: self.reload(force=True))
                self._survive(self._tick_now)
                self._wait(tick, stop)
            self.log(f"stopping: waiting up to {grace:g} s for {len(self.in_flight)} run(s)")
            self.shutdown(grace)
            watcher.stop()
            notify.drain(min(grace, 10.0))  # alerts still being sent
        finally:
            for sig, handler in previous.items():
                signal.signal(sig, handler)

    def _recover(self, reap: Callable[[Store], list[str]]) -> None:
        """At start: end the runs whose process died, and schedule their retries."""
        for run_id in reap(self.store):
            self.log(f"reaped run {run_id[:12]}: CRASHED (its process is gone)")
        self.schedule_missed_retries(time.time())

    def _tick_now(self) -> None:
        self.tick(dt.datetime.now(UTC))
        self.maybe_collect_garbage(time.time())

    def _survive(self, step: Callable[[], object]) -> None:
        """Run one step of the loop; an error is logged, and the next tick tries again.

        Nothing in the project and no fault of the store (a full disk, a write that keeps
        failing) ends the daemon: it logs the error, at most once a minute while it
        recurs, and goes on serving what it can.
        """
        try:
            step()
        except Exception as exc:
            text = str(exc) if isinstance(exc, OrchError) else f"{type(exc).__name__}: {exc}"
            now = time.monotonic()
            if now - self._errors_logged.get(text, -ERROR_LOG_EVERY) >= ERROR_LOG_EVERY:
                if len(self._errors_logged) > 100:
                    self._errors_logged.clear()
                self._errors_logged[text] = now
                self.log(f"error: {text}; trying again at each tick")

    def next_slot(self) -> float:
        """The timestamp of the earliest upcoming slot of an enabled schedule (inf if none)."""
        live = [c[2] for c in self._next_slots.values() if c[0].schedule.enabled]
        return min(live, default=float("inf"))

    def _wait(self, tick: float, stop: _StopFlag) -> None:
        """Sleep until the next tick, or sooner: at the next schedule slot, or every
        `PENDING_POLL_SECONDS` while file changes wait out their debounce window, or at once
        when a flow file or orch.toml changed."""
        start = time.monotonic()
        deadline = start + min(tick, max(0.0, self.next_slot() - time.time() + 0.002))
        while not stop.requested:
            left = deadline - time.monotonic()
            if left <= 0 or self.changed.is_set():
                return
            if len(self.triggers.debouncer) and time.monotonic() - start >= PENDING_POLL_SECONDS:
                return
            time.sleep(min(left, 0.02))

    def maybe_collect_garbage(self, now: float) -> tuple[int, int] | None:
        """Once a day (and at start): `orch gc` with the project's retention; None if not due."""
        if self.retention_days <= 0:
            return None
        if self._last_gc is not None and now - self._last_gc < GC_EVERY_SECONDS:
            return None
        self._last_gc = now
        try:
            deleted, pruned = collect_garbage(self.store, now - self.retention_days * 86400)
        except Exception as exc:  # never let housekeeping stop the scheduler
            self.log(f"error: retention cleanup failed: {exc}")
            return None
        if deleted or pruned:
            self.log(
                f"retention: deleted {deleted} run(s) older than {self.retention_days:g} day(s)"
                f" and {pruned} unreferenced blob(s)"
            )
        return deleted, pruned

    def shutdown(self, grace: float) -> None:
        deadline = time.monotonic() + grace
        while self.in_flight and time.monotonic() < deadline:
            self.collect_finished()
            time.sleep(0.05)
        for run_id in list(self.in_flight):
            state = self.store.get_flow_run(run_id).state
            if StateName(state) in (StateName.SCHEDULED, StateName.LATE):
                self.store.set_flow_run_state(run_id, StateName.CANCELLED, "the daemon stopped")
            elif StateName(state) == StateName.RETRYING:
                # Its next attempt moves to the store, due when the child would have run it.
                self._retry_due[run_id] = self._retrying_until(run_id)
                self.store.request_cancel(run_id, "the daemon stopped during a retry delay")
            elif StateName(state) not in TERMINAL:
                self.store.request_cancel(run_id, "the daemon stopped")
        deadline = time.monotonic() + 15
        while self.in_flight and time.monotonic() < deadline:
            self.collect_finished()
            time.sleep(0.05)

    def _retrying_until(self, run_id: str) -> float:
        """When the in-process retry of a RETRYING run was due (its message says the delay)."""
        import re

        for entry in reversed(self.store.history(run_id)):
            if entry.position is None and entry.state == StateName.RETRYING.value:
                found = re.search(r"retrying in ([0-9.e+-]+) s", entry.message or "")
                return entry.ts + (float(found.group(1)) if found else 0.0)
        return time.time()


ERROR_LOG_EVERY = 60.0
"""Seconds between two log lines of the same error of the daemon's loop."""


def retry_run_id(run_id: str) -> str:
    """The id of the run that retries `run_id`: the same for the same run, 32 hex digits."""
    import hashlib

    return hashlib.sha256(f"retry|{run_id}".encode()).hexdigest()[:32]


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


def _launch_in_thread(
    run_id: str, target: str, params: dict[str, Any], *, resume_from: str | None = None
) -> Handle:
    from .executor import RunRequest, run_in_subprocess

    request = RunRequest(target, params, run_id=run_id, trigger="schedule", resume_from=resume_from)
    thread = threading.Thread(
        target=run_in_subprocess,
        args=(request,),
        kwargs={"capture_output": True},
        name=f"run-{run_id[:12]}",
        daemon=True,
    )
    thread.start()
    return thread


def _log(message: str) -> None:
    stamp = dt.datetime.now().astimezone().isoformat(timespec="seconds")
    print(f"{stamp} orch daemon: {message}", file=sys.stderr, flush=True)


def file_logger(path: Path) -> Callable[[str], None]:
    """`--log-file`: each daemon line to stderr and appended to `path`."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    lock = threading.Lock()

    def log(message: str) -> None:
        _log(message)
        stamp = dt.datetime.now().astimezone().isoformat(timespec="seconds")
        with lock, open(path, "a", encoding="utf-8", opener=private_opener) as out:
            out.write(f"{stamp} orch daemon: {message}\n")

    return log


# -- retention ------------------------------------------------------------------------------


def collect_garbage(store: Store, cutoff: float) -> tuple[int, int]:
    """What `orch gc` does: delete finished runs created before `cutoff` (with their tasks
    and logs), then unreferenced blobs; returns (runs deleted, blobs pruned)."""
    from .blobs import BlobStore

    deleted = store.delete_runs_before(cutoff)
    pruned = BlobStore(store.home / "blobs").prune(store.referenced_blobs())
    return deleted, pruned


# -- systemd ---------------------------------------------------------------------------------


def systemd_unit(
    root: Path,
    orch: list[str],
    *,
    max_runs: int | None,
    grace: float,
    tick: float,
    log_file: Path | None = None,
    home: Path | None = None,
) -> str:
    """A systemd service unit that runs this project's daemon (`--print-systemd-unit`)."""
    import shlex

    args = list(orch)
    if home is not None:
        args += ["--home", str(home)]
    args.append("daemon")
    if max_runs is not None:
        args += ["--max-runs", str(max_runs)]
    args += ["--grace", f"{grace:g}", "--tick", f"{tick:g}"]
    if log_file is not None:
        args += ["--log-file", str(log_file)]
    command = " ".join(shlex.quote(a) for a in args)
    root = Path(root).resolve()
    return "\n".join(
        [
            "[Unit]",
            f"Description=orch daemon for {root}",
            "After=network-online.target",
            "Wants=network-online.target",
            "",
            "[Service]",
            "Type=simple",
            f"WorkingDirectory={root}",
            f"ExecStart={command}",
            "ExecReload=/bin/kill -HUP $MAINPID",
            "Restart=on-failure",
            "RestartSec=5",
            "KillSignal=SIGTERM",
            "KillMode=mixed",
            f"TimeoutStopSec={int(grace + 15 + 0.999)}",
            "Environment=PYTHONUNBUFFERED=1",
            "",
            "[Install]",
            "WantedBy=default.target",
            "",
        ]
    )


def orch_executable() -> list[str]:
    """The command of the `orch` being run, with a full path, for ExecStart."""
    import shutil

    argv0 = Path(sys.argv[0])
    if argv0.name == "orch" and argv0.exists():
        return [str(argv0.absolute())]
    found = shutil.which("orch")
    if found:
        return [str(Path(found).absolute())]
    return [str(Path(sys.executable).absolute()), "-m", "orchlite.cli"]


# -- one daemon per project -----------------------------------------------------------------


def run_daemon(
    home: Path,
    root: Path,
    *,
    max_runs: int | None,
    grace: float,
    tick: float,
    log_file: Path | None = None,
) -> None:
    """Hold the project's daemon lock and serve; UsageError if another daemon holds it."""
    from filelock import FileLock, Timeout

    store = Store(home)
    log = file_logger(log_file) if log_file is not None else None
    daemon = Daemon(store, root, max_runs=max_runs, log=log)
    lock = FileLock(str(home / LOCK_FILE), timeout=0, mode=0o600)
    try:
        lock.acquire()
    except Timeout:
        info = read_pid_file(home)
        pid = info.get("pid", "unknown") if info else "unknown"
        raise UsageError(f"a daemon is already running for this project (pid {pid})") from None
    pid_file = home / PID_FILE

    def started() -> None:  # SIGTERM is handled from here on
        info = {"pid": os.getpid(), "host": socket.gethostname(), "started": time.time()}
        write_private(pid_file, json.dumps(info))
        daemon.log(f"started (pid {os.getpid()}, project {root})")

    try:
        daemon.serve(tick=tick, grace=grace, ready=started)
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


def status(home: Path, *, read_only: bool = False) -> dict[str, Any]:
    """Whether a daemon holds the project's lock, its pid, uptime and runs in flight.

    `read_only` opens the store for reading only (a view that must never hold up writers).
    """
    from filelock import FileLock, Timeout

    running = False
    if home.is_dir():
        lock = FileLock(str(home / LOCK_FILE), timeout=0, mode=0o600)
        try:
            lock.acquire()
            lock.release()
        except Timeout:
            running = True
    info = read_pid_file(home) if running else None
    in_flight: list[dict[str, Any]] = []
    if (home / "orch.db").exists():
        with Store(home, read_only=read_only) as store:
            in_flight = [
                {"id": r.id, "target": r.target, "state": r.state}
                for r in store.unfinished_flow_runs()
                if r.trigger in DAEMON_TRIGGERS
            ]
    started = info.get("started") if info else None
    return {
        "running": running,
        "pid": info.get("pid") if info else None,
        "uptime_seconds": round(time.time() - started, 1) if started else None,
        "runs_in_flight": in_flight,
    }


def listing(home: Path, root: Path, now: dt.datetime, *, read_only: bool = False) -> dict[str, Any]:
    """`orch schedules`: every schedule with its next fire times and last run, and errors.

    `read_only` as for `status()`.
    """
    from zoneinfo import ZoneInfo

    from .schedules import describe, next_fire_times

    entries, problems = load_schedules(root)
    last: dict[str, Any] = {}
    if (home / "orch.db").exists():
        with Store(home, read_only=read_only) as store:
            last = store.last_slot_runs()
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


# -- backfill --------------------------------------------------------------------------------

BACKFILL_LIMIT = 1000


def parse_when(text: str, timezone: str, *, end: bool = False) -> dt.datetime:
    """An ISO date or date-time; naive ones are in `timezone`. A date as `end` means the
    end of that day (its slots are included)."""
    from zoneinfo import ZoneInfo

    zone = ZoneInfo(timezone)
    try:
        if len(text) == 10:
            day = dt.date.fromisoformat(text)
            moment = dt.datetime.combine(day, dt.time(0), tzinfo=zone)
            if end:
                moment = dt.datetime.combine(
                    day + dt.timedelta(days=1), dt.time(0), tzinfo=zone
                ) - dt.timedelta(microseconds=1)
            return moment
        moment = dt.datetime.fromisoformat(text)
    except ValueError:
        raise UsageError(
            f"invalid date {text!r}: expected an ISO date (2026-03-01) or date-time"
            " (2026-03-01T03:00)"
        ) from None
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=zone)


def _pick_schedule(root: Path, target: str, name: str | None) -> ScheduleEntry:
    entries, _problems = load_schedules(root)
    wanted = target.strip()
    mine = [e for e in entries if e.target == wanted or e.flow_name == wanted]
    if not mine:
        raise UsageError(f"{target!r} has no schedule (see `orch schedules`)")
    if name is not None:
        mine = [e for e in mine if e.schedule.name == name]
        if not mine:
            raise UsageError(f"{target!r} has no schedule named {name!r}")
    if len(mine) > 1:
        names = ", ".join(repr(e.schedule.name) for e in mine)
        raise UsageError(
            f"{target!r} has {len(mine)} schedules ({names}): pick one with --schedule"
        )
    return mine[0]


def backfill(
    home: Path,
    root: Path,
    target: str,
    start: str,
    end: str,
    *,
    schedule_name: str | None = None,
    max_runs: int | None = 1,
    yes: bool = False,
    out: Callable[[str], None] = print,
    log: Callable[[str], None] | None = None,
    launch: Launch | None = None,
    wait: bool = True,
) -> bool:
    """`orch backfill`: claim a run per slot of the target's schedule in `[start, end]` (the
    slot ids the daemon uses, so a slot already run is skipped) and run them in child
    processes, `max_runs` at once; with a daemon running, leave them to it. True if every
    claimed run completed."""
    from .schedules import slots_between

    entry = _pick_schedule(root, target, schedule_name)
    schedule = entry.schedule
    first = parse_when(start, schedule.timezone)
    last = parse_when(end, schedule.timezone, end=True)
    if last < first:
        raise UsageError("--end is before --start")
    try:
        slots = slots_between(schedule, first, last, limit=None if yes else BACKFILL_LIMIT)
    except UsageError as exc:
        raise UsageError(f"{exc} (or pass --yes to run them all)") from None
    store = Store(home)
    now = time.time()
    claimed: list[str] = []
    from zoneinfo import ZoneInfo

    zone = ZoneInfo(schedule.timezone)
    for slot in slots:
        run_id = slot_id(entry.key, slot)
        when = slot.astimezone(zone).isoformat(timespec="seconds")
        try:
            params = json.dumps(run_parameters(schedule, slot), default=str)
        except Exception as exc:
            out(f"{when}  {run_id[:12]}  error: its parameters cannot be rendered: {exc}")
            continue
        fresh = store.claim_slot(
            run_id=run_id,
            key=entry.key,
            slot=slot.timestamp(),
            flow_name=entry.flow_name,
            name=f"{entry.flow_name}-{slot:%Y%m%dT%H%M%S}",
            target=entry.target,
            parameters=params,
            now=now,
        )
        if fresh:
            claimed.append(run_id)
            out(f"{when}  {run_id[:12]}  claimed")
        else:
            state = store.get_flow_run(run_id).state
            out(f"{when}  {run_id[:12]}  skipped (already claimed: {state})")
    out(f"{len(claimed)} of {len(slots)} slot(s) to run")
    if not claimed or not wait:
        return True
    running = status(home)
    if running["running"]:
        out(f"a daemon is running (pid {running['pid']}): it starts these runs")
        return True
    daemon = Daemon(store, root, max_runs=max_runs, launch=launch, log=log or (lambda _: None))
    daemon.entries = [entry]
    todo = set(claimed)
    while True:
        daemon.collect_finished()
        daemon.start_waiting(dt.datetime.now(UTC), only=todo, mark_late=False)
        if not daemon.in_flight:
            break
        time.sleep(0.05)
    ok = True
    for run_id in claimed:
        run = store.get_flow_run(run_id)
        ok = ok and run.state == StateName.COMPLETED.value
        out(f"{run_id[:12]}  {run.state}" + (f": {run.state_message}" if run.state_message else ""))
    return ok
