"""The SQLite store in `.orch/orch.db`: connection, pragmas, migrations and every query.

Contract:

- WAL journal, `synchronous=NORMAL` (a commit survives a killed process; a power cut may lose
  the last commits, never consistency), foreign keys on.
- Every write runs in a `BEGIN IMMEDIATE` transaction, so writers queue on the busy handler
  instead of failing half-way with "database is locked". The busy timeout is long (60 s)
  because the CLI, the daemon, child runs and the TUI share one file; a write that still
  cannot get the lock is retried before it is reported.
- The schema is an ordered list of named migrations; `PRAGMA user_version` is the number
  applied, bumped in the same transaction as the migration. A store with a higher version
  than this code knows is refused, never written.
- Listings never unpickle: results are opaque bytes here, each with the short text preview
  made when it was persisted (`result_preview`; NULL for results stored before schema 7).
- Every state message, history message, error message, traceback and log line is written
  through `redaction.redact()` here, where all of them are recorded, so a message built on a
  path that forgot to redact still never stores a known secret value.

Nothing outside this package writes SQL. Its modules: `connection` (connections, pragmas,
busy handling, transactions and savepoints: `Database`, the base of every part),
`migrations` (the named migrations) and `schema` (applying them), `records` (the rows as
records), `sql` and `files` (what the parts share), then one part of `Store` per concern:
`runs`, `listings`, `task_runs`, `history`, `logs`, `health` (what flow health is computed
from), `cache`, `limits`, `scheduling` (the daemon's claims), `schedule_pauses` (paused
schedules), `maintenance` (retention and `orch doctor`), `pauses`, `artifacts`, `variables`,
`transaction_records`, `deliveries` (alert claims) and `task_detail` (one task run in full).
`runs.on_flow_run_state` hooks a function to every committed move of a flow run to a new
state.
`port.EngineStore` names the methods the engine uses.
"""

from __future__ import annotations

from ..errors import StoreError
from .artifacts import Artifacts
from .cache import Cache
from .connection import BUSY_TIMEOUT_MS, DB_NAME
from .deliveries import Deliveries
from .files import no_space_left
from .health import Health
from .limits import Limits
from .listings import RunListings
from .logs import Logs
from .maintenance import Maintenance
from .migrations import MIGRATIONS, SCHEMA_VERSION, Migration
from .pauses import Pauses
from .port import EngineStore
from .records import (
    Artifact,
    CacheEntry,
    ConcurrencyLimit,
    FlowRun,
    HealthRun,
    HistoryEntry,
    LogRecord,
    LogRow,
    Progress,
    RunKey,
    RunMark,
    ScheduledSlot,
    Slot,
    SlotUsage,
    StateRow,
    StoredResult,
    TaskRun,
    TaskRunSave,
)
from .runs import StateHook, on_flow_run_state
from .schedule_pauses import SchedulePauses
from .task_detail import Attempt, TaskDetails, TaskRunDetail, upstream_positions
from .transaction_records import TransactionRecords
from .variables import Variables

__all__ = [
    "BUSY_TIMEOUT_MS",
    "DB_NAME",
    "MIGRATIONS",
    "SCHEMA_VERSION",
    "Artifact",
    "Attempt",
    "CacheEntry",
    "ConcurrencyLimit",
    "EngineStore",
    "FlowRun",
    "HealthRun",
    "HistoryEntry",
    "LogRecord",
    "LogRow",
    "Migration",
    "Progress",
    "RunKey",
    "RunMark",
    "ScheduledSlot",
    "Slot",
    "SlotUsage",
    "StateHook",
    "StateRow",
    "Store",
    "StoreError",
    "StoredResult",
    "TaskRun",
    "TaskRunDetail",
    "TaskRunSave",
    "no_space_left",
    "on_flow_run_state",
    "upstream_positions",
]


class Store(
    SchedulePauses,
    Pauses,
    Maintenance,
    RunListings,
    TaskDetails,
    Health,
    Logs,
    Cache,
    Limits,
    Artifacts,
    Variables,
    TransactionRecords,
    Deliveries,
):
    """One project's database. Safe to share between threads: each gets its own connection.

    Made of one part per concern; `Database` (the connection) is the base of each.
    """
