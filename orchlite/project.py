"""A project's schedules and triggers, read from `orch.toml` and from `@flow(schedules=[...],
triggers=[...])` in source: the readers the project model (`orchlite.project_model`) hands its
parsed flow files and its one parse of `orch.toml` to.

Nothing here imports user code: flow files are read with `ast`, so the daemon and
`orch schedules` never run a flow file to find out when it fires. In a decorator only
literal arguments are understood (`cron("0 3 * * *", timezone="Europe/Berlin")`,
`interval(minutes=15)`); anything else is reported as an error for that flow.

`orch.toml` at the project root holds `[[schedule]]` entries:

    [[schedule]]
    target = "etl.py:nightly"          # file.py:flow (required)
    cron = "0 3 * * *"                 # or: interval = 900 / "15m" / "1h30m"
    timezone = "Europe/Berlin"
    parameters = { day = "{scheduled_time:%Y-%m-%d}" }
    catchup = "latest"                 # none | latest | all
    max_catchup = 10
    grace_seconds = 60
    overlap = "skip"                   # skip | allow | queue | cancel_previous
    enabled = true
    name = "nightly"
    jitter_seconds = 0                 # start each slot's run up to this late, at random

An entry may run a shell command instead of a flow (`command = "..."`, with its own
`timeout_seconds`, `retries` and `retry_delay_seconds`), and any entry may set
`working_dir` and `env` (see `orchlite.shell_jobs`).

A broken entry or file is a `ScheduleProblem` naming it; every other schedule still loads.
"""

from __future__ import annotations

import ast
import datetime as dt
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol, TypeVar

from .errors import UsageError
from .flow_source import (
    FLOW_MODULES,
    FlowInfo,
    flow_functions,
    flow_name,
    python_files,
    read_problem,
)
from .literal_calls import build_literal_call
from .parse_cache import FlowFile, Parsed, Read, read_flow_files
from .schedule_runs import run_parameters, schedule_key
from .schedules import Schedule, cron, interval
from .settings import PROJECT_FILE, ProjectFile
from .shell_jobs import COMMAND_KEYS, ENTRY_KEYS, RunOptions, read_entry, resolve_working_dir

OVERLAP_POLICIES = ("skip", "allow", "queue", "cancel_previous")
_TOML_KEYS = frozenset(
    {
        "target",
        "cron",
        "interval",
        "timezone",
        "day_or",
        "anchor",
        "parameters",
        "catchup",
        "max_catchup",
        "grace_seconds",
        "overlap",
        "enabled",
        "name",
        *ENTRY_KEYS,
        *COMMAND_KEYS,
        "jitter_seconds",
    }
)
_POLICY_KEYS = (
    "catchup",
    "max_catchup",
    "grace_seconds",
    "parameters",
    "enabled",
    "name",
    "jitter_seconds",
)
_SPAN = re.compile(r"(\d+(?:\.\d+)?)\s*(d|h|m|s)")
_UNIT_SECONDS = {"d": 86400, "h": 3600, "m": 60, "s": 1}


@dataclass(frozen=True)
class ScheduleEntry:
    """One schedule of one flow, with where it was declared."""

    source: str
    """"code" (a `@flow(schedules=...)` decorator) or "orch.toml"."""
    where: str
    """"flows.py:12" or "orch.toml schedule #2"."""
    target: str
    """The flow to run, as `orch run` takes it: "flows.py:function"."""
    flow_name: str
    schedule: Schedule
    overlap: str = "skip"
    options: RunOptions = field(default_factory=RunOptions)
    """How its runs start: working directory, environment, a command's timeout and retries."""

    @property
    def key(self) -> str:
        return schedule_key(self.target, self.schedule)


@dataclass(frozen=True)
class ScheduleProblem:
    """A schedule, entry or file that could not be read; the others still work."""

    source: str
    where: str
    message: str

    def __str__(self) -> str:
        return f"{self.where}: {self.message}"


FlowFiles = list[tuple[Path, Read]]
"""The project's flow files as `parse_cache.read_flow_files` gives them."""


def load_schedules(root: Path) -> tuple[list[ScheduleEntry], list[ScheduleProblem]]:
    """Every schedule of the project at `root`, and every problem found reading them, read
    on their own (the project model reads them with the rest of its declarations)."""
    return read_schedules(Path(root), read_flow_files(Path(root)), ProjectFile.read(Path(root)))


def _flows(files: FlowFiles) -> dict[str, FlowInfo]:
    """Every flow of `files`, by target ("flows.py:etl")."""
    return {f.target: f for _rel, read in files if isinstance(read, FlowFile) for f in read.flows}


def _declaring(files: FlowFiles) -> list[tuple[Path, Parsed]]:
    """The syntax trees of the files whose flows declare schedules or triggers, and the
    errors of the files that cannot be read."""
    out: list[tuple[Path, Parsed]] = []
    for rel, read in files:
        if not isinstance(read, FlowFile):
            out.append((rel, read))
        elif read.declares:
            try:
                out.append((rel, read.tree()))
            except (SyntaxError, OSError, ValueError) as exc:  # changed since it was listed
                out.append((rel, exc))
    return out


def read_schedules(
    root: Path, files: FlowFiles, toml: ProjectFile
) -> tuple[list[ScheduleEntry], list[ScheduleProblem]]:
    """The schedules declared in `files` and `toml`, and every problem found reading them."""
    entries: list[ScheduleEntry] = []
    problems: list[ScheduleProblem] = []
    flows = {target: info.name for target, info in _flows(files).items()}
    for rel, tree in _declaring(files):
        if not isinstance(tree, ast.Module):
            problems.append(ScheduleProblem("code", rel.as_posix(), read_problem(tree)))
            continue
        for item in _scan_file(tree, rel):
            if isinstance(item, ScheduleEntry):
                item = _in_existing_folder(item, root)
            if isinstance(item, ScheduleEntry):
                entries.append(item)
            else:
                problems.append(item)
    toml_entries, toml_problems = _load_toml(root, toml, flows)
    entries += toml_entries
    problems += toml_problems
    return _without_duplicates(entries, problems), problems


def fingerprint(root: Path) -> tuple[tuple[str, int], ...]:
    """Changes when orch.toml or any flow file is added, removed or modified."""
    root = Path(root)
    paths = [*python_files(root), root / PROJECT_FILE]
    stamps = []
    for path in paths:
        try:
            stamps.append((str(path), os.stat(path).st_mtime_ns))
        except OSError:
            continue
    return tuple(sorted(stamps))


# -- flow files ----------------------------------------------------------------------------


def _factory_aliases(tree: ast.Module, names: tuple[str, ...]) -> dict[str, str]:
    """Local name -> declaration helper (`cron`, `on_files`...), import aliases included."""
    factories = {name: name for name in names}
    for node in tree.body:
        if not isinstance(node, ast.ImportFrom) or node.module is None:
            continue
        if node.module.split(".")[0] in FLOW_MODULES:
            for alias in node.names:
                if alias.name in names:
                    factories[alias.asname or alias.name] = alias.name
    return factories


def _scan_file(tree: ast.Module, rel: Path) -> list[ScheduleEntry | ScheduleProblem]:
    """The schedules its flows declare, and their problems."""
    factories = _factory_aliases(tree, ("cron", "interval"))
    out: list[ScheduleEntry | ScheduleProblem] = []
    for fn, call in flow_functions(tree):
        target = f"{rel.as_posix()}:{fn.name}"
        name = flow_name(call, fn.name)
        for kw in call.keywords if call else ():
            if kw.arg == "schedules":
                out += _decorator_schedules(kw.value, factories, target, name, rel)
    return out


def _decorator_schedules(
    node: ast.expr, factories: dict[str, str], target: str, flow_name: str, rel: Path
) -> list[ScheduleEntry | ScheduleProblem]:
    where = f"{rel.as_posix()}:{node.lineno}"
    if not isinstance(node, (ast.List, ast.Tuple)):
        return [_problem(where, target, "schedules= must be a literal list of cron()/interval()")]
    out: list[ScheduleEntry | ScheduleProblem] = []
    for item in node.elts:
        here = f"{rel.as_posix()}:{item.lineno}"
        try:
            schedule = _literal_call(item, factories)
            run_parameters(schedule, dt.datetime.now(dt.timezone.utc))  # check templates
        except UsageError as exc:
            out.append(_problem(here, target, str(exc)))
            continue
        options = schedule.run_options()
        out.append(ScheduleEntry("code", here, target, flow_name, schedule, options=options))
    return out


def _in_existing_folder(entry: ScheduleEntry, root: Path) -> ScheduleEntry | ScheduleProblem:
    """The entry, or the problem that its `working_dir` is no folder in the project."""
    try:
        resolve_working_dir(root, entry.options.working_dir)
    except UsageError as exc:
        return _problem(entry.where, entry.target, str(exc))
    return entry


def _literal_call(node: ast.expr, factories: dict[str, str]) -> Schedule:
    schedule: Schedule = build_literal_call(
        node, factories, {"cron": cron, "interval": interval}, "schedule"
    )
    return schedule


class _Declared(Protocol):
    """What schedule and trigger entries share for duplicate checks."""

    @property
    def key(self) -> str: ...

    @property
    def source(self) -> str: ...

    @property
    def where(self) -> str: ...


_Entry = TypeVar("_Entry", bound=_Declared)


def _without_duplicates(entries: list[_Entry], problems: list[ScheduleProblem]) -> list[_Entry]:
    """The entries with a key seen before dropped, each reported as a duplicate."""
    seen: dict[str, _Entry] = {}
    unique = []
    for entry in entries:
        first = seen.setdefault(entry.key, entry)
        if first is entry:
            unique.append(entry)
        else:
            problems.append(
                ScheduleProblem(entry.source, entry.where, f"duplicate of {first.where}")
            )
    return unique


def _problem(where: str, target: str, message: str) -> ScheduleProblem:
    return ScheduleProblem("code", where, f"{target}: {message}")


# -- orch.toml -----------------------------------------------------------------------------


def _load_toml(
    root: Path, toml: ProjectFile, flows: dict[str, str]
) -> tuple[list[ScheduleEntry], list[ScheduleProblem]]:
    try:
        data = toml.tables()
    except UsageError as exc:
        return [], [ScheduleProblem(PROJECT_FILE, PROJECT_FILE, str(exc))]
    if data is None:
        return [], []
    raw = data.get("schedule", [])
    if not isinstance(raw, list):
        return [], [ScheduleProblem(PROJECT_FILE, PROJECT_FILE, "[[schedule]] must be a table")]
    entries, problems = [], []
    for number, item in enumerate(raw, start=1):
        label = item.get("name") if isinstance(item, dict) else None
        where = f"{PROJECT_FILE} schedule #{number}" + (f" ({label!r})" if label else "")
        try:
            entries.append(_toml_entry(item, where, root, flows))
        except UsageError as exc:
            problems.append(ScheduleProblem(PROJECT_FILE, where, str(exc)))
    return entries, problems


def _toml_entry(item: Any, where: str, root: Path, flows: dict[str, str]) -> ScheduleEntry:
    if not isinstance(item, dict):
        raise UsageError("expected a table")
    unknown = sorted(set(item) - _TOML_KEYS)
    if unknown:
        raise UsageError(f"unknown key(s): {', '.join(unknown)}")
    run = read_entry(item, root)
    target = run.target or _flow_target(item, root, flows)
    overlap = item.get("overlap", "skip")
    if overlap not in OVERLAP_POLICIES:
        expected = ", ".join(repr(o) for o in OVERLAP_POLICIES)
        raise UsageError(f"invalid overlap {overlap!r}: expected one of {expected}")
    policy = {k: item[k] for k in _POLICY_KEYS if k in item}
    if "parameters" in policy and not isinstance(policy["parameters"], dict):
        raise UsageError("parameters must be a table")
    timezone = item.get("timezone", "UTC")
    if ("cron" in item) == ("interval" in item):
        raise UsageError("give exactly one of cron or interval")
    try:
        if "cron" in item:
            schedule: Schedule = cron(item["cron"], timezone, item.get("day_or", True), **policy)
        else:
            anchor = item.get("anchor")
            if anchor is not None and not isinstance(anchor, dt.datetime):
                raise UsageError(f"invalid anchor {anchor!r}: expected a TOML date-time")
            schedule = interval(
                parse_span(item["interval"]), anchor_date=anchor, timezone=timezone, **policy
            )
    except TypeError as exc:
        raise UsageError(str(exc)) from None
    run_parameters(schedule, dt.datetime.now(dt.timezone.utc))  # a bad template fails here
    name = run.flow_name or flows.get(target, target.rpartition(":")[2])
    return ScheduleEntry(PROJECT_FILE, where, target, name, schedule, overlap, run.options)


def _flow_target(item: dict[str, Any], root: Path, flows: dict[str, str]) -> str:
    """The checked `target` of an entry that runs a flow."""
    target = item.get("target")
    if not isinstance(target, str) or not target.strip():
        raise UsageError('missing target (target = "file.py:flow", or command = "...")')
    return _check_target(target.strip(), root, flows)


def _check_target(target: str, root: Path, flows: dict[str, str]) -> str:
    where, sep, function = target.rpartition(":")
    if not sep or not where or not function:
        raise UsageError(f"bad target {target!r}: expected file.py:flow")
    if not where.endswith(".py"):
        return target  # package.module:flow, resolved when the run starts
    path = Path(where)
    if path.is_absolute():
        try:
            path = path.resolve().relative_to(root.resolve())
        except ValueError:
            raise UsageError(f"target {target!r} is outside the project {root}") from None
    normal = f"{path.as_posix()}:{function}"
    if not (root / path).is_file():
        raise UsageError(f"target {target!r}: no such file {path.as_posix()}")
    if normal not in flows and any(t.startswith(f"{path.as_posix()}:") for t in flows):
        raise UsageError(f"target {target!r}: no flow {function!r} in {path.as_posix()}")
    return normal


def parse_span(value: Any) -> float | dt.timedelta:
    """Seconds (a number) or a span such as "15m", "1h30m", "90s", "2d" in seconds."""
    if isinstance(value, bool):
        raise UsageError(f"invalid interval {value!r}")
    if isinstance(value, (int, float, dt.timedelta)):
        return value
    if isinstance(value, str):
        text = value.replace(" ", "").lower()
        if text and _SPAN.sub("", text) == "":
            return float(sum(float(n) * _UNIT_SECONDS[u] for n, u in _SPAN.findall(text)))
    raise UsageError(f"invalid interval {value!r}: expected seconds or a span like '15m'")


# -- triggers (see orchlite/triggers.py) ---------------------------------------------------


def load_triggers(root: Path) -> tuple[list[Any], list[ScheduleProblem]]:
    """Every `TriggerEntry` of the project at `root`, read on their own (see `read_triggers`)."""
    return read_triggers(Path(root), read_flow_files(Path(root)), ProjectFile.read(Path(root)))


def read_triggers(
    root: Path, files: FlowFiles, toml: ProjectFile
) -> tuple[list[Any], list[ScheduleProblem]]:
    """Every `TriggerEntry` declared: `@flow(triggers=[...])` in flow files (literal
    `on_files(...)` / `on_flow(...)` calls) and `[[trigger]]` entries in orch.toml.

    A broken trigger or entry is a `ScheduleProblem` naming it; the others still load.
    Syntax errors in flow files are reported by `read_schedules`, not again here.
    """
    from .triggers import TriggerEntry, accepted_parameters, from_call, from_toml

    entries: list[TriggerEntry] = []
    problems: list[ScheduleProblem] = []
    infos = _flows(files)
    flows = {target: info.name for target, info in infos.items()}
    wants = {
        target: accepted_parameters(p.name for p in info.parameters)
        for target, info in infos.items()
    }
    for path, tree in _declaring(files):
        rel = path.as_posix()
        if not isinstance(tree, ast.Module):
            continue  # reported by read_schedules
        factories = _factory_aliases(tree, ("on_files", "on_flow"))
        for fn, call in flow_functions(tree):
            target = f"{rel}:{fn.name}"
            name = flow_name(call, fn.name)
            for kw in call.keywords if call else ():
                if kw.arg != "triggers":
                    continue
                items = kw.value.elts if isinstance(kw.value, (ast.List, ast.Tuple)) else None
                if items is None:
                    problems.append(
                        _problem(
                            f"{rel}:{kw.value.lineno}",
                            target,
                            "triggers= must be a literal list of on_files()/on_flow()",
                        )
                    )
                    continue
                for item in items:
                    here = f"{rel}:{item.lineno}"
                    try:
                        trigger = from_call(item, factories)
                    except UsageError as exc:
                        problems.append(_problem(here, target, str(exc)))
                        continue
                    entries.append(
                        TriggerEntry(
                            "code", here, target, name, trigger, *wants.get(target, (False, False))
                        )
                    )
    try:
        data = toml.tables()
    except UsageError:
        data = None  # reported by read_schedules
    if data is not None:
        raw = data.get("trigger", [])
        if not isinstance(raw, list):
            problems.append(
                ScheduleProblem(PROJECT_FILE, PROJECT_FILE, "[[trigger]] must be a table")
            )
            raw = []
        for number, item in enumerate(raw, start=1):
            label = item.get("name") if isinstance(item, dict) else None
            where = f"{PROJECT_FILE} trigger #{number}" + (f" ({label!r})" if label else "")
            try:
                trigger = from_toml(item)
                run = read_entry(item, root)
                target = run.target or _flow_target(item, root, flows)
            except UsageError as exc:
                problems.append(ScheduleProblem(PROJECT_FILE, where, str(exc)))
                continue
            name = run.flow_name or flows.get(target, target.rpartition(":")[2])
            paths_, upstream = wants.get(target, (False, False))
            entries.append(
                TriggerEntry(
                    PROJECT_FILE, where, target, name, trigger, paths_, upstream, run.options
                )
            )
    return _without_duplicates(entries, problems), problems
