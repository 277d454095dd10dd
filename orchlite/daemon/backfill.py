"""`orch backfill`: run a scheduled flow once per slot of its schedule in a date range.

The slots are claimed with the ids the daemon uses (`schedule_runs.slot_id`), so a slot already
run, by the daemon or an earlier backfill, is skipped. Their runs have the trigger
"backfill" and record the slot they were for (`orch runs` shows it); they start at once,
without the schedule's jitter. With a daemon running the claimed
runs are left to it; otherwise a `Daemon` of this process starts them, `max_runs` at once,
through the same launch and loop as the daemon's.
"""

from __future__ import annotations

import datetime as dt
import json
import time
from collections.abc import Callable
from pathlib import Path

from ..errors import UsageError
from ..isotime import parse_iso_datetime
from ..project import ScheduleEntry
from ..project_model import Project
from ..schedule_runs import run_parameters, slot_id
from ..schedules import describe
from ..states import StateName
from ..store import Store
from .loop import run_until_idle
from .scheduler import Daemon, Launch
from .service import status

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
        moment = parse_iso_datetime(text)
    except ValueError:
        raise UsageError(
            f"invalid date {text!r}: expected an ISO date (2026-03-01) or date-time"
            " (2026-03-01T03:00)"
        ) from None
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=zone)


def _pick_schedule(root: Path, target: str, name: str | None) -> ScheduleEntry:
    entries = Project(root).schedules
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
    from zoneinfo import ZoneInfo

    from ..schedule_slots import slots_between

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
            started_by=schedule.name or describe(schedule),
            run_options=entry.options.stored(),
            trigger="backfill",
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
    run_until_idle(daemon, only=set(claimed))
    ok = True
    for run_id in claimed:
        run = store.get_flow_run(run_id)
        ok = ok and run.state == StateName.COMPLETED.value
        out(f"{run_id[:12]}  {run.state}" + (f": {run.state_message}" if run.state_message else ""))
    return ok
