"""The rows the store reads and writes, as plain records (no SQL here)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import NamedTuple


@dataclass(slots=True)
class FlowRun:
    id: str
    flow_name: str
    name: str
    target: str | None
    parameters: str
    state: str
    state_message: str | None
    trigger: str
    parent_run_id: str | None
    parent_position: int | None
    retry_of: str | None
    created: float
    started: float | None
    ended: float | None
    attempts: int
    pid: int | None
    host: str | None
    heartbeat: float | None
    deadline: float | None
    result_ref: str | None
    result_serializer: str | None
    pid_start: str | None = None
    """When the process `pid` started (`processes.process_start`); None if not known."""
    tags: str = "[]"
    """JSON list: the tags of the `tags(...)` blocks it was created in."""


@dataclass(slots=True)
class TaskRun:
    flow_run_id: str
    position: int
    id: str
    standalone: int
    task_key: str
    name: str
    dynamic_key: str
    state: str
    state_message: str | None
    attempts: int
    inputs_hash: str | None
    cache_key: str | None
    result_ref: str | None
    result_serializer: str | None
    error_type: str | None
    error_message: str | None
    traceback: str | None
    created: float
    started: float | None
    ended: float | None
    tags: str = "[]"
    upstream: str = "[]"
    result_data: bytes | None = None
    result_preview: str | None = None

    @classmethod
    def new(
        cls,
        *,
        flow_run_id: str,
        position: int,
        id: str,
        task_key: str,
        name: str,
        created: float,
        dynamic_key: str = "0",
        standalone: bool = False,
    ) -> TaskRun:
        """A task run as it starts: PENDING, no attempt made, no error, no result."""
        # Positional: one per task call, and binding 20 keywords costs twice the rest.
        return cls(
            flow_run_id,
            position,
            id,
            int(standalone),
            task_key,
            name,
            dynamic_key,
            "PENDING",
            None,  # state_message
            0,  # attempts
            None,  # inputs_hash
            None,  # cache_key
            None,  # result_ref
            None,  # result_serializer
            None,  # error_type
            None,  # error_message
            None,  # traceback
            created,
            None,  # started
            None,  # ended
        )

    @property
    def result(self) -> StoredResult | None:
        if self.result_serializer is None:
            return None
        return StoredResult(
            self.result_serializer, self.result_data, self.result_ref, self.result_preview
        )

    @result.setter
    def result(self, stored: StoredResult) -> None:
        self.result_ref, self.result_data = stored.blob, stored.data
        self.result_serializer, self.result_preview = stored.serializer, stored.preview


@dataclass(slots=True)
class StoredResult:
    """A persisted value: inline bytes, or the digest of a blob holding them."""

    serializer: str
    data: bytes | None = None
    blob: str | None = None
    preview: str | None = None
    """A short redacted text of the value, made as it was persisted (None before schema 7)."""


class Progress(NamedTuple):
    """How far a task run is: any change of its state makes a different one (a reader
    compares them to find what changed, see `TaskRuns.task_run_progress`)."""

    position: int
    state: str
    attempts: int
    history_length: int
    created: float


@dataclass(slots=True)
class HistoryEntry:
    run_id: str
    position: int | None
    state: str
    message: str | None
    ts: float


@dataclass(slots=True)
class LogRecord:
    id: int
    flow_run_id: str | None
    task_run_id: str | None
    task_name: str | None
    ts: float
    level: int
    logger: str
    message: str


@dataclass(slots=True)
class CacheEntry:
    key: str
    task_key: str
    task_run_id: str | None
    result: StoredResult
    created: float
    expires: float | None


@dataclass(slots=True)
class ConcurrencyLimit:
    name: str
    limit: int
    per_second: bool
    """True: at most `limit` acquisitions in any one second; False: `limit` slots held at once."""
    created: float


@dataclass(slots=True)
class Slot:
    """Slots of one limit taken under one lease, and who took them."""

    lease: str
    name: str
    occupy: int
    held: bool
    pid: int
    host: str
    task_run_id: str | None
    holder: str | None
    acquired: float
    expires: float
    pid_start: str | None = None
    """When the holder process started (`processes.process_start`); None if not known."""


@dataclass(slots=True)
class SlotUsage:
    """How much of a limit is taken, as seen by one acquisition attempt."""

    name: str
    in_use: int
    limit: int
    per_second: bool


RunKey = tuple[float, str]
"""(created, id) of a flow run: the order runs are paged in, newest first; unique."""

RunMark = tuple[str, float | None, float | None]
"""(state, started, ended) of a flow run: what changes as it moves on."""

LogRow = tuple[str | None, str | None, str | None, float, int, str, str]
"""(flow_run_id, task_run_id, task_name, ts, level, logger, message) as written."""

StateRow = tuple[str, str | None, float]
"""(state, message, timestamp) of one state change."""


class TaskRunSave(NamedTuple):
    """One task run's save (`Store.save_task_run`'s arguments), for `save_task_runs`."""

    run: TaskRun
    states: Sequence[StateRow] = ()
    cache: tuple[str, float | None] | None = None
    logs: Sequence[LogRow] = ()


@dataclass(slots=True)
class ScheduledSlot:
    """A slot a schedule fired for, and its run."""

    run_id: str
    key: str
    slot: float
    target: str | None
    parameters: str
    state: str
    trigger: str = "schedule"
    """What claimed it: "schedule", "backfill", a trigger's kind, "retry"."""


@dataclass(slots=True)
class Artifact:
    """One artifact (one version of its key): `data` is JSON text, redacted."""

    id: str
    key: str | None
    type: str
    data: str
    description: str | None
    flow_run_id: str | None
    task_run_id: str | None
    created: float
    updated: float


class HealthRun(NamedTuple):
    """What a flow's health is computed from, per run (`Store.health_runs`)."""

    flow_name: str
    state: str
    created: float
    started: float | None
    ended: float | None
    slot: float | None
    """When the schedule slot it ran for was due; None unless a schedule started it."""
    message: str | None
    """Its state message, kept only for a run that failed."""
