"""What a project declares for its daemon: schedules, triggers, alerts and retention.

`read_declarations(root, previous, log)` reads them all (the project model,
`orchlite.project_model.Project`: flow files with `ast` through the parse cache, and
`orch.toml` parsed once) and returns a `Declarations`. Each declaration belongs to one
file: a flow file (`flows.py`) or `orch.toml` (its schedules, triggers, alerts and `[daemon]`
table). A file that reads without a problem becomes that file's last good version. A file
with problems (a syntax error, an invalid cron string, an unreadable TOML table...) is, when
it had a good version before, replaced by that version whole: the daemon keeps firing what it
fired before the bad edit, and logs one line naming the first problem. A file never read
without a problem (at the daemon's start, say) contributes the entries that did load; each
problem is logged. Deleting a file drops its declarations.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path

from .alert_rules import AlertConfig
from .project import ScheduleEntry, ScheduleProblem
from .project_model import DEFAULT_RETENTION_DAYS, Project, retention_days
from .settings import PROJECT_FILE, ProjectFile
from .triggers import TriggerEntry

Entry = ScheduleEntry | TriggerEntry


def entry_env(
    entries: Iterable[Entry], key: str, key_of: Callable[[Entry], str] = lambda e: e.key
) -> dict[str, str]:
    """The `env` of the schedule or trigger whose key is `key` ({} when none has it).

    An entry's `env` is never stored with its runs: whoever starts one of them (the daemon,
    `orch retry`) reads it from the declarations at that start. `key_of` is how the caller
    computes an entry's key (the daemon caches them).
    """
    for entry in entries:
        if entry.options.env and key_of(entry) == key:
            return dict(entry.options.env)
    return {}


@dataclass(frozen=True)
class FileDeclarations:
    """What one file declares; for orch.toml also the alerts and retention."""

    schedules: tuple[ScheduleEntry, ...] = ()
    triggers: tuple[TriggerEntry, ...] = ()
    alerts: AlertConfig | None = None
    retention_days: float = DEFAULT_RETENTION_DAYS


@dataclass
class Declarations:
    """Everything the daemon acts on, and each file's last version read without problems."""

    schedules: list[ScheduleEntry] = field(default_factory=list)
    triggers: list[TriggerEntry] = field(default_factory=list)
    alerts: AlertConfig = field(default_factory=AlertConfig)
    retention_days: float = DEFAULT_RETENTION_DAYS
    problems: list[ScheduleProblem] = field(default_factory=list)
    """The problems of this read (also those of files replaced by their last good version)."""
    kept: list[str] = field(default_factory=list)
    """Files replaced by their last good version."""
    last_good: dict[str, FileDeclarations] = field(default_factory=dict)


def read_declarations(
    root: Path, previous: Declarations | None = None, log: Callable[[str], None] | None = None
) -> Declarations:
    """Read the project's declarations; a broken file keeps `previous`'s good version."""
    log = log or (lambda _message: None)
    project = Project(root)
    schedules, triggers, alerts = project.schedules, project.triggers, project.alerts
    retention = project.retention_days
    if retention is None:
        retention = previous.retention_days if previous else DEFAULT_RETENTION_DAYS
    problems = project.problems

    current: dict[str, FileDeclarations] = {}
    declared: list[ScheduleEntry | TriggerEntry] = [*schedules, *triggers]
    for name in {_file_of(e.source, e.where) for e in declared} | {PROJECT_FILE}:
        current[name] = FileDeclarations(
            tuple(e for e in schedules if _file_of(e.source, e.where) == name),
            tuple(e for e in triggers if _file_of(e.source, e.where) == name),
        )
    current[PROJECT_FILE] = FileDeclarations(
        current[PROJECT_FILE].schedules, current[PROJECT_FILE].triggers, alerts, retention
    )
    broken: dict[str, list[ScheduleProblem]] = {}
    for problem in problems:
        broken.setdefault(_file_of(problem.source, problem.where), []).append(problem)

    old = previous.last_good if previous else {}
    last_good = {name: decl for name, decl in current.items() if name not in broken}
    kept = []
    for name, found in sorted(broken.items()):
        good = old.get(name)
        if good is None:
            for problem in found:
                log(f"error: {problem}")
            continue
        current[name] = last_good[name] = good
        kept.append(name)
        more = f" (and {len(found) - 1} more)" if len(found) > 1 else ""
        log(
            f"error: {found[0]}{more}; keeping what was last read from {name}"
            f" ({_describe(good)}) until it is fixed"
        )
    toml = current[PROJECT_FILE]
    files = [current[name] for name in sorted(current)]
    return Declarations(
        schedules=[e for decl in files for e in decl.schedules],
        triggers=[e for decl in files for e in decl.triggers],
        alerts=toml.alerts or AlertConfig(),
        retention_days=toml.retention_days,
        problems=problems,
        kept=kept,
        last_good=last_good,
    )


def _file_of(source: str, where: str) -> str:
    """The file a declaration or problem comes from: "flows.py:12" -> "flows.py"."""
    if source != "code":
        return PROJECT_FILE
    path, sep, line = where.rpartition(":")
    return path if sep and line.isdigit() else where


def _describe(decl: FileDeclarations) -> str:
    counts = [
        (len(decl.schedules), "schedule(s)"),
        (len(decl.triggers), "trigger(s)"),
        (len(decl.alerts.rules) if decl.alerts else 0, "alert rule(s)"),
    ]
    return ", ".join(f"{n} {what}" for n, what in counts if n) or "no declarations"


def load_retention_days(root: Path) -> float:
    """`[daemon] retention_days` of the project's orch.toml, read on its own (default 30;
    0 turns the cleanup off); UsageError when it is not a number >= 0."""
    return retention_days(ProjectFile.read(Path(root)))
