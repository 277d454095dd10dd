"""`orch schedules` and `orch upcoming`: every schedule and trigger of a project, its next
fire times, its state (active, paused or disabled) and its last run.

Read from orch.toml and the flow files without running code (the project model,
`orchlite.project_model`), and from the store for the pauses and last runs; the TUI's
schedules screen shows the same listing.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Any

from ..project_model import Project
from ..schedule_control import schedule_names
from ..store import Store

UTC = dt.timezone.utc


def listing(
    home: Path,
    root: Path,
    now: dt.datetime,
    *,
    read_only: bool = False,
    project: Project | None = None,
) -> dict[str, Any]:
    """`orch schedules`: every schedule with its next fire times and last run, and errors.

    `read_only` opens the store for reading only (a view that must never hold up writers);
    `project` is the model of the project at `root`, read now unless given.
    """
    from zoneinfo import ZoneInfo

    from ..schedule_slots import next_fire_times
    from ..schedules import describe

    project = project or Project(root)
    entries = project.schedules
    last: dict[str, Any] = {}
    paused: dict[str, float] = {}
    if (home / "orch.db").exists():
        with Store(home, read_only=read_only) as store:
            last = store.last_slot_runs()
            paused = store.paused_schedules()
    rows = []
    for entry, name in zip(entries, schedule_names(entries), strict=True):
        zone = ZoneInfo(entry.schedule.timezone)
        ran = last.get(entry.key)
        state = "paused" if name in paused else "active" if entry.schedule.enabled else "disabled"
        rows.append(
            {
                "source": entry.source,
                "where": entry.where,
                "target": entry.target,
                "name": entry.schedule.name,
                "schedule_name": name,
                "state": state,
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
    problems = [*project.schedule_problems, *project.trigger_problems]
    triggers = []
    for t in project.triggers:
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


def upcoming(listed: dict[str, Any], now: dt.datetime) -> list[dict[str, Any]]:
    """`orch upcoming`: the schedules of a `listing`, the next to fire first; times in UTC.

    A paused or disabled schedule fires nothing: its `next` is None and it comes last.
    `left_seconds` counts to the next fire, `passed_seconds` since its newest slot fired.
    """
    rows = []
    for row in listed["schedules"]:
        times = row["next"] if row["state"] == "active" else []
        upcoming_ = dt.datetime.fromisoformat(times[0]).astimezone(UTC) if times else None
        ran = row["last_run"]
        fired = dt.datetime.fromisoformat(ran["slot"]) if ran else None
        rows.append(
            {
                "name": row["schedule_name"],
                "target": row["target"],
                "schedule": row["schedule"],
                "state": row["state"],
                "next": upcoming_.isoformat() if upcoming_ else None,
                "left_seconds": _seconds(now, upcoming_),
                "last": {"run": ran["id"], "state": ran["state"], "slot": ran["slot"]}
                if ran
                else None,
                "passed_seconds": _seconds(fired, now),
            }
        )
    rows.sort(key=lambda r: (r["left_seconds"] is None, r["left_seconds"] or 0, r["name"]))
    return rows


def _seconds(start: dt.datetime | None, end: dt.datetime | None) -> float | None:
    return None if start is None or end is None else round((end - start).total_seconds(), 3)
