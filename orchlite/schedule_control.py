"""Acting on a schedule by its name: pause it, resume it, run its target now.

The CLI (`orch schedule pause|resume NAME`, `orch run --schedule NAME`) and the TUI's
schedules screen call these functions through `orchlite.operations`, which adds the
messages; neither holds logic of its own.

Names. Every schedule has one name, unique in its project: its `name=` when it has one,
else its flow's name; a name already taken gets `-2`, `-3`... in declaration order (names
written by the user first, so a derived name never takes one of theirs). Where a user types
a name, an underscore and a hyphen are the same letter, as for flows.

Pausing. A paused schedule fires no slot; the pause is kept in the store by name, so it
survives a restart of the daemon and an edit of the schedule's timing. Resuming marks the
schedule handled up to the moment of the resume: the slots that passed while it was paused
are not caught up, whatever its `catchup` policy, and the first slot after the resume fires.
"""

from __future__ import annotations

import datetime as dt
import difflib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .errors import UsageError
from .names import same_flow_name
from .project import ScheduleEntry
from .project_model import Project
from .schedule_runs import run_parameters
from .store import Store

if TYPE_CHECKING:
    from .executor import RunRequest

__all__ = [
    "ScheduleRun",
    "find_schedule",
    "pause",
    "resume",
    "run_request",
    "schedule_names",
    "scheduled_run",
]


def schedule_names(entries: Sequence[ScheduleEntry]) -> list[str]:
    """The name of each entry, in order: see the module docstring."""
    names = [""] * len(entries)
    taken: set[str] = set()
    given_first = sorted(range(len(entries)), key=lambda i: entries[i].schedule.name is None)
    for i in given_first:
        base = entries[i].schedule.name or entries[i].flow_name
        name, number = base, 1
        while name in taken:
            number += 1
            name = f"{base}-{number}"
        taken.add(name)
        names[i] = name
    return names


def find_schedule(root: Path, name: str) -> tuple[str, ScheduleEntry]:
    """The schedule named `name` in the project at `root`, with its name as listed.

    UsageError naming the close names (or all of them) when there is none.
    """
    entries = Project(root).schedules
    named = dict(zip(schedule_names(entries), entries, strict=True))
    if name in named:
        return name, named[name]
    alike = [known for known in named if same_flow_name(known, name)]
    if len(alike) == 1:
        return alike[0], named[alike[0]]
    if not named:
        raise UsageError(f"no schedule named {name!r}: this project has no schedules")
    close = difflib.get_close_matches(name, list(named), n=3, cutoff=0.6)
    if close:
        hint = "did you mean " + " or ".join(repr(c) for c in close) + "?"
    else:
        shown = sorted(named)
        more = f" and {len(shown) - 10} more" if len(shown) > 10 else ""
        hint = "its schedules: " + ", ".join(shown[:10]) + more
    raise UsageError(f"no schedule named {name!r}; {hint}")


def pause(home: Path, root: Path, name: str, now: float | None = None) -> tuple[str, bool]:
    """Pause the schedule `name`: (its name as listed, False if it was paused already)."""
    found, _entry = find_schedule(root, name)
    with Store(home) as store:
        return found, store.pause_schedule(found, now)


def resume(home: Path, root: Path, name: str, now: float | None = None) -> tuple[str, bool]:
    """Resume the schedule `name`, without catching up the slots it missed: (its name as
    listed, False if it was not paused)."""
    found, entry = find_schedule(root, name)
    with Store(home) as store:
        return found, store.resume_schedule(found, [entry.key], now)


@dataclass(frozen=True)
class ScheduleRun:
    """What `orch run --schedule NAME` runs, and the schedule it runs for."""

    request: RunRequest
    name: str
    key: str
    at: float
    """When it was asked for (the `{scheduled_time}` of its parameters)."""

    def record(self, store: Store, run_id: str) -> None:
        """Record on the run which schedule started it, so that `orch retry` of it finds
        the schedule's `env` again, as the daemon's runs do."""
        store.record_started_by(run_id, self.key, self.name, self.at)


def scheduled_run(
    root: Path, name: str, now: dt.datetime, params: Mapping[str, Any] | None = None
) -> ScheduleRun:
    """What `orch run --schedule NAME` runs: the schedule's target with its parameters,
    `{scheduled_time}` read as `now`, and `params` over them, with the schedule's `env`
    added to its environment and its working directory, timeout and retries, as the
    daemon starts it."""
    from .executor import RunRequest  # what runs a flow: not loaded to list schedules

    found, entry = find_schedule(root, name)
    given = run_parameters(entry.schedule, now)
    given.update(params or {})
    request = RunRequest(
        target=entry.target,
        params=given,
        env=dict(entry.options.env),
        options=entry.options.stored(),
    )
    return ScheduleRun(request, found, entry.key, now.timestamp())


def run_request(
    root: Path, name: str, now: dt.datetime, params: Mapping[str, Any] | None = None
) -> RunRequest:
    """The request of `scheduled_run`."""
    return scheduled_run(root, name, now, params).request
