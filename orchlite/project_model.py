"""A project's declarations, read once: its flows, schedules, triggers, alerts, retention, and
the problems found reading them.

`Project(root)` is what every reader of a project's declarations asks: `orch flows`,
`orch run NAME` (the project is the `discovery.FlowSource` a name is looked up in),
`orch schedules` and `orch upcoming` (`daemon.listing`), the daemon's reload
(`declarations.read_declarations`), `orch backfill`, `orch schedule`, and the TUI's flow
picker and schedules screen. Nothing here imports user code.

A model reads each of its two inputs once, on first use, and builds each part (flows,
schedules, triggers, alerts, retention) from them on first use too, so a command pays only
for what it shows:

- the flow files, through the parse cache (`parse_cache.read_flow_files`): a file that declares
  no flow is not read again while its modification time and size hold;
- `orch.toml`, parsed once (`settings.ProjectFile`) and handed to each reader of its tables.

A model is a snapshot of the files as they were when first read: a change on disk is seen by
a new `Project`.
"""

from __future__ import annotations

from collections import Counter
from functools import cached_property
from pathlib import Path

from .alert_rules import AlertConfig, alerts_of
from .errors import UsageError
from .flow_source import FlowInfo, FlowScan, read_problem, sorted_scan
from .parse_cache import FlowFile, read_flow_files
from .project import (
    FlowFiles,
    ScheduleEntry,
    ScheduleProblem,
    read_schedules,
    read_triggers,
)
from .settings import PROJECT_FILE, ProjectFile
from .triggers import TriggerEntry

DEFAULT_RETENTION_DAYS = 30.0
FLOW_FILES = "flow files"
"""The name `Project.reads` counts the reads of the flow files under."""


class Project:
    """The declarations of the project at `root`, each read on first use and kept."""

    def __init__(self, root: Path) -> None:
        self.root = Path(root)
        self.reads: Counter[str] = Counter()
        """How many times each input was read: `PROJECT_FILE` and `FLOW_FILES`, once each
        at most whatever is asked."""

    # -- the two inputs ----------------------------------------------------------------------

    @cached_property
    def toml(self) -> ProjectFile:
        """orch.toml, parsed once."""
        self.reads[PROJECT_FILE] += 1
        return ProjectFile.read(self.root)

    @cached_property
    def files(self) -> FlowFiles:
        """The files that declare flows or cannot be read (through the parse cache)."""
        self.reads[FLOW_FILES] += 1
        return read_flow_files(self.root)

    # -- flows -------------------------------------------------------------------------------

    @cached_property
    def _flow_scan(self) -> FlowScan:
        flows = [f for _rel, read in self.files if isinstance(read, FlowFile) for f in read.flows]
        errors = [
            (rel, read_problem(read)) for rel, read in self.files if not isinstance(read, FlowFile)
        ]
        return sorted_scan(flows, errors)

    def flow_scan(self) -> FlowScan:
        """(flows, unreadable files): what `discovery.load_target` looks a name up in."""
        return self._flow_scan

    @property
    def flows(self) -> list[FlowInfo]:
        """Every flow, sorted by file then line."""
        return self._flow_scan[0]

    @property
    def unreadable(self) -> list[tuple[Path, str]]:
        """(relative path, message) for each file that could not be read, sorted."""
        return self._flow_scan[1]

    # -- schedules, triggers, alerts, retention ----------------------------------------------

    @cached_property
    def _schedules(self) -> tuple[list[ScheduleEntry], list[ScheduleProblem]]:
        return read_schedules(self.root, self.files, self.toml)

    @property
    def schedules(self) -> list[ScheduleEntry]:
        return self._schedules[0]

    @property
    def schedule_problems(self) -> list[ScheduleProblem]:
        """Broken schedules, entries and files (a flow file's syntax error is one)."""
        return self._schedules[1]

    @cached_property
    def _triggers(self) -> tuple[list[TriggerEntry], list[ScheduleProblem]]:
        return read_triggers(self.root, self.files, self.toml)

    @property
    def triggers(self) -> list[TriggerEntry]:
        return self._triggers[0]

    @property
    def trigger_problems(self) -> list[ScheduleProblem]:
        return self._triggers[1]

    @cached_property
    def alerts(self) -> AlertConfig:
        """The `[[alert]]` rules, and the problems of the broken ones."""
        return alerts_of(self.toml)

    @cached_property
    def _retention(self) -> tuple[float | None, ScheduleProblem | None]:
        try:
            return retention_days(self.toml), None
        except UsageError as exc:
            return None, ScheduleProblem(PROJECT_FILE, f"{PROJECT_FILE} [daemon]", str(exc))

    @property
    def retention_days(self) -> float | None:
        """`[daemon] retention_days` (default 30; 0 turns the cleanup off); None when the
        table is broken (its problem is among `problems`)."""
        return self._retention[0]

    @property
    def problems(self) -> list[ScheduleProblem]:
        """Every problem: schedules (syntax errors of flow files included), triggers, the
        `[daemon]` table, alerts; in that order."""
        retention = self._retention[1]
        return [
            *self.schedule_problems,
            *self.trigger_problems,
            *([retention] if retention else []),
            *(_alert_problem(text) for text in self.alerts.problems),
        ]


def retention_days(toml: ProjectFile) -> float:
    """`[daemon] retention_days` of a parsed orch.toml (default 30); UsageError if invalid."""
    try:
        data = toml.tables()
    except UsageError:
        return DEFAULT_RETENTION_DAYS  # reported with the schedules
    if data is None:
        return DEFAULT_RETENTION_DAYS
    section = data.get("daemon", {})
    if not isinstance(section, dict):
        raise UsageError("[daemon] must be a table")
    value = section.get("retention_days", DEFAULT_RETENTION_DAYS)
    if isinstance(value, bool) or not isinstance(value, (int, float)) or value < 0:
        raise UsageError(f"retention_days must be a number >= 0, not {value!r}")
    return float(value)


def _alert_problem(text: str) -> ScheduleProblem:
    where, _, message = text.partition(": ")
    return ScheduleProblem(PROJECT_FILE, where, message)
