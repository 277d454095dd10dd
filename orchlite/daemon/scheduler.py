"""The scheduler of one project: `Daemon.tick(now)` does one round and never sleeps.

Each tick:

1. forget finished runs (one "finished" line each), and hand them to the retry chain
   (`orchlite.daemon.retry_chain`), which schedules the next attempt of a crashed one;
2. read the declarations again (`declarations.read_declarations`) when orch.toml or a flow
   file changed (the project watcher, `orchlite.watcher`, saw it) or when asked to (SIGHUP);
   a file with errors keeps its last good version;
3. claim every due slot (`schedule_slots.due_slots`) by inserting its run, id
   `schedule_runs.slot_id(key, slot)`, SCHEDULED with trigger "schedule", in one transaction
   with the schedule's mark. A slot whose run already exists was claimed already (another
   daemon, a restart) and is skipped. With `overlap = "skip"` a slot of a flow that still has
   an unfinished run is recorded SKIPPED with the reason instead. A paused schedule
   (`orchlite.schedule_control`) claims nothing;
4. start waiting runs, oldest slot first, up to `max_runs` at once (the rest stay SCHEDULED
   for a later tick). A scheduled run waits out its schedule's jitter
   (`schedule_slots.jitter_delay`) first. A run starting past its slot's grace period (counted
   from the end of its jitter) is marked LATE first;
5. start again the suspended runs that were resumed (`orchlite.daemon.suspended`).

Triggers (`orchlite.triggers`): after step 3 the tick claims the runs of file triggers whose
changes have settled and of flow triggers whose upstream flow ended; they wait as SCHEDULED
runs (triggers "file" and "flow") and step 4 starts them. The project watcher's thread
feeds file changes to both the reload (step 2) and the file triggers.

Overlap policies per schedule: "skip" records a slot SKIPPED while the flow has an unfinished
run; "allow" starts it anyway; "queue" leaves it SCHEDULED until the flow's previous run
ended (a SCHEDULED row, so the queue survives a restart); "cancel_previous" asks the
flow's unfinished runs to cancel, then starts the new one.

Every run starts through the daemon's `launch`, with the same arguments whoever calls it:
in production `launch_in_thread`, which runs `supervisor.run_in_subprocess` in a thread (a
child process in its own session, supervised for crashes, deadlines and cancellation; its
stdout and stderr become log records of its run, stdout at INFO as logger
"orchlite.stdout", stderr at WARNING as "orchlite.stderr"); in tests a fake that records
the calls. The wall clock is the `clock` given to `Daemon`; `orchlite.daemon.loop` ticks
it in real time.
"""

from __future__ import annotations

import datetime as dt
import functools
import json
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from .. import notify
from ..alert_rules import AlertConfig
from ..declarations import Declarations, Entry, entry_env, read_declarations
from ..errors import UsageError
from ..project import ScheduleEntry, ScheduleProblem
from ..schedule_control import schedule_names
from ..schedule_runs import run_parameters, slot_id
from ..schedule_slots import is_late, jitter_delay
from ..states import StateName
from ..store import Store
from ..triggers import TriggerRunner
from ..watcher import Changes, is_declaration_file
from .retention import Retention
from .retry_chain import RetryChain, entry_key, is_retry_key
from .suspended import due_relaunches

UTC = dt.timezone.utc
WAITING = (StateName.SCHEDULED.value, StateName.LATE.value)


class Handle(Protocol):
    def is_alive(self) -> bool: ...


class Launch(Protocol):
    """Start run `run_id` of `target` with `params` in the background.

    `resume_from` is the run whose completed tasks it reuses (a retry), else None; `env`
    the variables its entry adds to the run's environment (never recorded). Returns
    something that says whether the run still runs.
    """

    def __call__(
        self,
        run_id: str,
        target: str,
        params: dict[str, Any],
        *,
        resume_from: str | None,
        env: dict[str, str],
    ) -> Handle: ...


@dataclass
class TickReport:
    """What one tick did (for tests and logs)."""

    fired: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)
    started: list[str] = field(default_factory=list)
    finished: list[str] = field(default_factory=list)


class Daemon:
    """The scheduler of one project; `tick(now)` does one round and never sleeps.

    `launch` starts each run (`launch_in_thread` unless given); `clock` is the wall clock
    that the loop and the retry chain read (`time.time` unless given); `log` takes each
    line the daemon writes (stderr unless given); `declare(previous)` gives the schedules,
    triggers and alerts to act on (the project's files, read again when one changes, unless
    given).
    """

    def __init__(
        self,
        store: Store,
        root: Path,
        *,
        max_runs: int | None = None,
        launch: Launch | None = None,
        log: Callable[[str], None] | None = None,
        clock: Callable[[], float] = time.time,
        declare: Callable[[Declarations], Declarations] | None = None,
    ) -> None:
        if max_runs is not None and max_runs < 1:
            raise UsageError(f"--max-runs must be >= 1, not {max_runs}")
        self.store = store
        self.root = Path(root)
        self.max_runs = max_runs
        self.launch: Launch = launch or functools.partial(launch_in_thread, home=store.home)
        self.log = log or stderr_log
        self.clock = clock
        self.declare = declare or (lambda previous: read_declarations(root, previous, self.log))
        """What the daemon acts on: the project's files, unless `orchlite.serve` gives it."""
        self.declared = Declarations()
        self.entries: list[ScheduleEntry] = []
        self.names: dict[str, str] = {}
        """Each schedule's name (`schedule_control.schedule_names`), by key: what a pause
        names."""
        self.problems: list[ScheduleProblem] = []
        self.alerts = AlertConfig()
        self.retries = RetryChain(store, self.log)
        self.retention = Retention(store, self.log, self.declared.retention_days)
        self.in_flight: dict[str, Handle] = {}
        self.triggers = TriggerRunner(store, self.root, self.log)
        self.changed = threading.Event()
        """Set when the declarations may have changed: the next tick reads them again."""
        self.changed.set()
        self._targets: dict[str, str] = {}
        # Per schedule entry (by identity): (entry, its key, its next slot's timestamp), so
        # a tick skips schedules with nothing due without computing their slots again.
        self._next_slots: dict[int, tuple[ScheduleEntry, str, float]] = {}

    def tick(self, now: dt.datetime, *, start: bool = True) -> TickReport:
        report = TickReport()
        report.finished = self.collect_finished()
        self.reload()
        self.claim_due(now, report)
        report.fired += self.triggers.tick(now.timestamp())
        if start:
            self.start_waiting(now, report)
            self.relaunch_resumed(now, report)
        return report

    def reload(self, force: bool = False) -> bool:
        """Read the declarations again if a file changed (or `force`); see the docstring."""
        if not force and not self.changed.is_set():
            return False
        self.changed.clear()  # before reading: a change made meanwhile reads them once more
        try:
            declared = self.declared = self.declare(self.declared)
        except BaseException:
            self.changed.set()  # read them again at the next tick
            raise
        self.entries, self.problems = declared.schedules, declared.problems
        names = schedule_names(self.entries)
        self.names = {e.key: name for e, name in zip(self.entries, names, strict=True)}
        self.alerts, self.retention.days = declared.alerts, declared.retention_days
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
        from ..schedule_slots import due_slots, next_fire_times
        from ..schedules import describe

        report = report or TickReport()
        stamp = now.timestamp()
        cache = self._next_slots
        if len(cache) > 2 * len(self.entries) + 16:
            cache.clear()  # entries replaced since (reload): drop the stale ones
        paused: dict[str, float] | None = None  # read once, when a slot is first due
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
            paused = self.store.paused_schedules() if paused is None else paused
            if self.names.get(key) in paused:
                continue  # its mark stays: resuming moves it (no catch-up)
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
                    started_by=entry.schedule.name or describe(entry.schedule),
                    run_options=entry.options.stored(),
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
            retry = is_retry_key(waiting.key)
            if retry and waiting.slot > now.timestamp():
                continue  # a retry waits out its delay
            if self.max_runs is not None and len(self.in_flight) >= self.max_runs:
                break
            if waiting.key in queued:
                busy = self._busy_targets() if busy is None else busy
                if waiting.target in busy:
                    continue  # overlap=queue: waits SCHEDULED until the previous run ends
            schedule = graces.get(waiting.key)
            due = dt.datetime.fromtimestamp(waiting.slot, UTC)
            if schedule is not None and waiting.trigger == "schedule":
                due += dt.timedelta(seconds=jitter_delay(schedule, waiting.run_id))
                if due > now:
                    continue  # waits out its jitter
            if (
                mark_late
                and schedule is not None
                and waiting.state == StateName.SCHEDULED.value
                and is_late(schedule, due, now)
            ):
                self.store.set_flow_run_state(
                    waiting.run_id,
                    StateName.LATE,
                    f"started {(now - due).total_seconds():.0f} s after its slot",
                    now=now.timestamp(),
                )
                notify.alert_run(self.store, waiting.run_id, self.alerts, self.log)
            target = waiting.target or ""
            resume = self.store.get_flow_run(waiting.run_id).retry_of if retry else None
            handle = self.launch(
                waiting.run_id,
                target,
                json.loads(waiting.parameters),
                resume_from=resume,
                env=self._env_of(waiting.key),
            )
            self.in_flight[waiting.run_id] = handle
            self._targets[waiting.run_id] = target
            if busy is not None:
                busy.add(target)
            report.started.append(waiting.run_id)
        return report

    def relaunch_resumed(self, now: dt.datetime, report: TickReport | None = None) -> TickReport:
        """Start again the suspended runs someone resumed, as slots free up; fail those
        past their pause timeout (see `orchlite.daemon.suspended`)."""
        report = report or TickReport()
        room = None if self.max_runs is None else max(0, self.max_runs - len(self.in_flight))
        relaunches, failed = due_relaunches(self.store, now.timestamp(), room, self.log)
        for run_id in failed:
            notify.alert_run(self.store, run_id, self.alerts, self.log)
        for relaunch in relaunches:
            handle = self.launch(
                relaunch.run_id,
                relaunch.target,
                relaunch.params,
                resume_from=None,
                env=self._env_of(relaunch.key),
            )
            self.in_flight[relaunch.run_id] = handle
            self._targets[relaunch.run_id] = relaunch.target
            report.started.append(relaunch.run_id)
        return report

    def _env_of(self, key: str) -> dict[str, str]:
        """The `env` of the schedule or trigger whose key a waiting run (or the run it
        retries) was claimed under."""
        return entry_env([*self.entries, *self.triggers.entries], entry_key(key), self._key_of)

    def _key_of(self, entry: Entry) -> str:
        cached = self._next_slots.get(id(entry))
        return cached[1] if cached is not None and cached[0] is entry else entry.key

    def collect_finished(self) -> list[str]:
        done = [run_id for run_id, h in self.in_flight.items() if not h.is_alive()]
        for run_id in done:
            del self.in_flight[run_id]
            self._targets.pop(run_id, None)
            run = self.store.get_flow_run(run_id)
            if run.state in WAITING:
                # The child exited before adopting its run (an unloadable target or bad
                # parameters; it said why on stderr): end the run so it is not retried.
                message = "the run's process exited before the flow started (see its logs)"
                self.store.set_flow_run_state(run_id, StateName.PENDING, None)
                self.store.set_flow_run_state(run_id, StateName.CRASHED, message)
                run = self.store.get_flow_run(run_id)
            detail = f": {run.state_message}" if run.state_message else ""
            self.log(f"finish {run.target} run {run_id[:12]} {run.state}{detail}")
            # Usually claimed already by the run's own process; sent here if it died first.
            notify.alert_run(self.store, run_id, self.alerts, self.log)
            self.retries.after_finish(run, self.clock())
        return done

    def next_slot(self) -> float:
        """The timestamp of the earliest upcoming slot of an enabled schedule (inf if none)."""
        live = [c[2] for c in self._next_slots.values() if c[0].schedule.enabled]
        return min(live, default=float("inf"))


def launch_in_thread(
    run_id: str,
    target: str,
    params: dict[str, Any],
    *,
    resume_from: str | None,
    env: dict[str, str],
    home: Path | None = None,
) -> Handle:
    """The production `Launch`: `supervisor.run_in_subprocess` in a thread, for the store
    at `home` (default: found from the environment and the working directory)."""
    from ..executor import RunRequest
    from ..supervisor import run_in_subprocess

    request = RunRequest(
        target, params, run_id=run_id, trigger="schedule", resume_from=resume_from, env=env
    )
    thread = threading.Thread(
        target=run_in_subprocess,
        args=(request,),
        kwargs={"home": home, "capture_output": True},
        name=f"run-{run_id[:12]}",
        daemon=True,
    )
    thread.start()
    return thread


def stderr_log(message: str) -> None:
    """The daemon's log line on stderr: local time, "orch daemon:", the message."""
    print(log_line(message), file=sys.stderr, flush=True)


def log_line(message: str) -> str:
    stamp = dt.datetime.now().astimezone().isoformat(timespec="seconds")
    return f"{stamp} orch daemon: {message}"
