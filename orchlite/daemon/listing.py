"""`orch schedules`: every schedule and trigger of a project, its next fire times and last run.

Read from orch.toml and the flow files without running code (`orchlite.project`), and from
the store for the last runs; the TUI's schedules screen shows the same listing.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Any

from ..project import load_schedules, load_triggers
from ..store import Store

UTC = dt.timezone.utc


def listing(home: Path, root: Path, now: dt.datetime, *, read_only: bool = False) -> dict[str, Any]:
    """`orch schedules`: every schedule with its next fire times and last run, and errors.

    `read_only` opens the store for reading only (a view that must never hold up writers).
    """
    from zoneinfo import ZoneInfo

    from ..schedules import describe, next_fire_times

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
