"""Plain-data views of runs for the CLI and the TUI: dicts ready for JSON or a table.

This is the documented `--json` shape; times are ISO 8601 in UTC, durations in seconds. A
`result` is the short redacted text recorded with a stored result (null when none was stored,
or it was stored before orchlite recorded previews): nothing here unpickles.
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Sequence
from datetime import datetime, timezone
from typing import Any

from .errors import UsageError
from .names import spellings
from .states import StateName
from .store import Artifact, FlowRun, LogRecord, Store, TaskRun


def iso(ts: float | None) -> str | None:
    if ts is None:
        return None
    return datetime.fromtimestamp(ts, tz=timezone.utc).isoformat(timespec="milliseconds")


def duration(run: FlowRun | TaskRun, now: float | None = None) -> float | None:
    if run.started is None:
        return None
    end = run.ended if run.ended is not None else (now or time.time())
    return round(end - run.started, 6)


def format_duration(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    if seconds < 1:
        return f"{seconds * 1000:.0f}ms"
    if seconds < 60:
        return f"{seconds:.1f}s"
    minutes, secs = divmod(int(seconds), 60)
    if minutes < 60:
        return f"{minutes}m{secs:02d}s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h{minutes:02d}m"


SLOT_TRIGGERS = ("schedule", "backfill")
"""The triggers of runs claimed for a schedule's slot: their views carry the slot."""


def run_summary(
    run: FlowRun, counts: dict[str, int] | None = None, slot: float | None = None
) -> dict[str, Any]:
    """A run as listed; `slot` is when the schedule slot it ran for was due, if any."""
    return {
        "id": run.id,
        "name": run.name,
        "flow": run.flow_name,
        "state": run.state,
        "message": run.state_message,
        "trigger": run.trigger,
        "parameters": json.loads(run.parameters or "{}"),
        "created": iso(run.created),
        "started": iso(run.started),
        "ended": iso(run.ended),
        "duration": duration(run),
        "parent": run.parent_run_id,
        "retry_of": run.retry_of,
        "tags": json.loads(run.tags or "[]"),
        "slot": iso(slot),
        "task_counts": counts or {},
    }


def run_list(
    store: Store,
    *,
    flow: str | Sequence[str] | None = None,
    state: str | Sequence[str] | None = None,
    tags: Sequence[str] | None = None,
    limit: int = 20,
) -> list[dict[str, Any]]:
    if flow is not None:  # either spelling of a name finds the flow's runs
        flow = [s for name in ([flow] if isinstance(flow, str) else flow) for s in spellings(name)]
    runs = store.list_flow_runs(flow=flow, state=state, tags=tags, limit=limit)
    ids = [r.id for r in runs]
    counts = store.task_state_counts(ids)
    slots = store.slot_times(ids, SLOT_TRIGGERS)
    return [run_summary(r, counts[r.id], slots.get(r.id)) for r in runs]


def task_summary(task: TaskRun) -> dict[str, Any]:
    return {
        "id": task.id,
        "name": task.name,
        "task_key": task.task_key,
        "position": task.position,
        "state": task.state,
        "message": task.state_message,
        "attempts": task.attempts,
        "cached": task.state == StateName.CACHED.value,
        "started": iso(task.started),
        "ended": iso(task.ended),
        "duration": duration(task),
        "error": (f"{task.error_type}: {task.error_message}" if task.error_type else None),
        "upstream": json.loads(task.upstream or "[]"),
        "result": task.result_preview,
    }


def run_detail(store: Store, run_id: str) -> dict[str, Any]:
    run = store.get_flow_run(run_id)
    tasks = store.task_runs(run_id)
    counts: dict[str, int] = {}
    for task in tasks:
        counts[task.state] = counts.get(task.state, 0) + 1
    detail = run_summary(run, counts, store.slot_times([run_id], SLOT_TRIGGERS).get(run_id))
    detail["target"] = run.target
    detail["attempts"] = run.attempts
    stored = store.flow_run_result(run_id)
    detail["result"] = stored.preview if stored is not None else None
    history: dict[int | None, list[dict[str, Any]]] = {}
    for entry in store.history(run_id):
        history.setdefault(entry.position, []).append(
            {"state": entry.state, "message": entry.message, "at": iso(entry.ts)}
        )
    detail["history"] = history.get(None, [])
    detail["tasks"] = [{**task_summary(t), "history": history.get(t.position, [])} for t in tasks]
    detail["children"] = [
        {"id": c.id, "flow": c.flow_name, "state": c.state, "position": c.parent_position}
        for c in store.child_flow_runs(run_id)
    ]
    errors = [t for t in tasks if t.traceback and t.state != StateName.COMPLETED.value]
    detail["error"] = errors[-1].traceback if errors else None
    made = reversed(store.artifacts(flow_run_id=run_id))
    names = {t.id: t.name for t in tasks}
    detail["artifacts"] = [
        {**artifact_view(a), "task": names.get(a.task_run_id or "")} for a in made
    ]
    return detail


def cache_list(store: Store) -> list[dict[str, Any]]:
    return [
        {
            "key": entry.key,
            "task": entry.task_key,
            "task_run": entry.task_run_id,
            "serializer": entry.result.serializer,
            "in_blob": entry.result.blob is not None,
            "created": iso(entry.created),
            "expires": iso(entry.expires),
        }
        for entry in store.list_cache_entries()
    ]


_CONTROL = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069]")
"""What a terminal would act on rather than show: C0 and C1 controls (ESC starts escape
sequences, CR overwrites a line), DEL and the bidi overrides; newline and tab are kept."""


def printable(text: str) -> str:
    """`text` with every control character shown as a visible escape: ESC as `\\x1b`.

    Run names, parameters, messages, errors and log lines are written by users and their
    code; drawn raw, an escape sequence in one could clear or retitle the terminal.
    """
    if not _CONTROL.search(text):
        return text
    return _CONTROL.sub(_escaped, text.replace("\r\n", "\n"))


def _escaped(match: re.Match[str]) -> str:
    code = ord(match.group())
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}"


_LEVEL_NAMES = {10: "DEBUG", 20: "INFO", 30: "WARNING", 40: "ERROR", 50: "CRITICAL"}


def log_view(record: LogRecord) -> dict[str, Any]:
    """A log record as `orch logs --json` prints it (one object per line)."""
    return {
        "id": record.id,
        "ts": iso(record.ts),
        "level": _LEVEL_NAMES.get(record.level, str(record.level)),
        "task": record.task_name,
        "logger": record.logger,
        "message": record.message,
    }


def format_log(record: LogRecord) -> str:
    stamp = datetime.fromtimestamp(record.ts).strftime("%H:%M:%S.%f")[:-3]
    level = _LEVEL_NAMES.get(record.level, str(record.level))
    who = f"Task run {record.task_name!r}" if record.task_name else "Flow run"
    return printable(f"{stamp} | {level:<7} | {who} - {record.message}")


_AGE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([smhdw])\s*$")
_UNIT_SECONDS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}


def parse_age(text: str) -> float:
    """`30d`, `12h`, `90m`, `45s`, `2w` → seconds; UsageError otherwise."""
    match = _AGE.match(text.lower())
    if not match:
        raise UsageError(f"bad age {text!r}: expected a number and a unit, like 30d, 12h or 90m")
    return float(match.group(1)) * _UNIT_SECONDS[match.group(2)]


def artifact_view(artifact: Artifact) -> dict[str, Any]:
    """An artifact as `orch artifacts --json` and `orch show --json` print it."""
    return {
        "id": artifact.id,
        "key": artifact.key,
        "type": artifact.type,
        "description": artifact.description,
        "data": json.loads(artifact.data),
        "flow_run": artifact.flow_run_id,
        "task_run": artifact.task_run_id,
        "created": iso(artifact.created),
        "updated": iso(artifact.updated),
    }


def variable_list(store: Store | None) -> list[dict[str, Any]]:
    """Every variable as `{"name", "value", "tags", "updated"}`, by name."""
    if store is None:
        return []
    return [
        {"name": name, "value": json.loads(value), "tags": json.loads(tags), "updated": iso(at)}
        for name, value, tags, at in store.list_variables()
    ]
