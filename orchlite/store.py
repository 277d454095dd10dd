"""The SQLite store in `.orch/orch.db`: connection, pragmas, migrations and every query.

Contract:

- WAL journal, `synchronous=NORMAL` (a commit survives a killed process; a power cut may lose
  the last commits, never consistency), foreign keys on.
- Every write runs in a `BEGIN IMMEDIATE` transaction, so writers queue on the busy handler
  instead of failing half-way with "database is locked". The busy timeout is long (60 s)
  because the CLI, the daemon, child runs and the TUI share one file; a write that still
  cannot get the lock is retried before it is reported.
- The schema is an ordered list of migrations; `PRAGMA user_version` is the number applied,
  bumped in the same transaction as the migration. A store with a higher version than this
  code knows is refused, never written.
- Listings never unpickle: results are opaque bytes here, each with the short text preview
  made when it was persisted (`result_preview`; NULL for results stored before schema 7).
- Every state message, history message, error message, traceback and log line is written
  through `redaction.redact()` here, where all of them are recorded, so a message built on a
  path that forgot to redact still never stores a known secret value.

Nothing outside this module writes SQL.
"""

from __future__ import annotations

import contextlib
import functools
import os
import socket
import sqlite3
import tempfile
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NamedTuple

from .config import check_home
from .errors import (
    NO_SPACE_ERRNOS,
    DiskFullError,
    EmptyStoreError,
    RunNotFoundError,
    SchemaTooNewError,
    StoreError,
    UsageError,
)
from .faults import fault_point
from .processes import process_start
from .redaction import active as redaction_active
from .redaction import redact, redact_optional
from .states import TERMINAL, StateName, can_transition, task_state_after

BUSY_TIMEOUT_MS = 60_000
WAL_AUTOCHECKPOINT_PAGES = 8_000
DB_NAME = "orch.db"

MIGRATIONS: list[str] = [
    # 1: the first schema.
    """
    CREATE TABLE flow_runs (
        id TEXT PRIMARY KEY,
        flow_name TEXT NOT NULL,
        name TEXT NOT NULL,
        target TEXT,
        parameters TEXT NOT NULL DEFAULT '{}',
        state TEXT NOT NULL,
        state_message TEXT,
        trigger TEXT NOT NULL DEFAULT 'manual',
        parent_run_id TEXT REFERENCES flow_runs(id) ON DELETE SET NULL,
        parent_position INTEGER,
        retry_of TEXT,
        created REAL NOT NULL,
        started REAL,
        ended REAL,
        attempts INTEGER NOT NULL DEFAULT 0,
        pid INTEGER,
        host TEXT,
        heartbeat REAL,
        deadline REAL,
        result_ref TEXT,
        result_data BLOB,
        result_serializer TEXT,
        tags TEXT NOT NULL DEFAULT '[]'
    );
    CREATE INDEX flow_runs_created ON flow_runs(created);
    CREATE INDEX flow_runs_flow ON flow_runs(flow_name, created);
    CREATE INDEX flow_runs_state ON flow_runs(state, created);
    CREATE INDEX flow_runs_parent ON flow_runs(parent_run_id);

    -- One b-tree per table on the hot path: a task run is keyed by (flow run, call
    -- position), and history rows are clustered by run, so recording a task costs one
    -- commit that touches two b-trees.
    CREATE TABLE task_runs (
        flow_run_id TEXT NOT NULL,
        position INTEGER NOT NULL,
        id TEXT NOT NULL,
        standalone INTEGER NOT NULL DEFAULT 0,
        task_key TEXT NOT NULL,
        name TEXT NOT NULL,
        dynamic_key TEXT NOT NULL,
        state TEXT NOT NULL,
        state_message TEXT,
        attempts INTEGER NOT NULL DEFAULT 0,
        inputs_hash TEXT,
        cache_key TEXT,
        result_ref TEXT,
        result_data BLOB,
        result_serializer TEXT,
        error_type TEXT,
        error_message TEXT,
        traceback TEXT,
        created REAL NOT NULL,
        started REAL,
        ended REAL,
        tags TEXT NOT NULL DEFAULT '[]',
        PRIMARY KEY (flow_run_id, position)
    ) WITHOUT ROWID;

    -- run_id is the flow run (or a standalone task run), position is NULL for rows about
    -- the flow run itself.
    CREATE TABLE state_history (
        run_id TEXT NOT NULL,
        seq INTEGER NOT NULL,
        position INTEGER,
        state TEXT NOT NULL,
        message TEXT,
        ts REAL NOT NULL,
        PRIMARY KEY (run_id, seq)
    ) WITHOUT ROWID;

    CREATE TABLE logs (
        id INTEGER PRIMARY KEY,
        flow_run_id TEXT,
        task_run_id TEXT,
        task_name TEXT,
        ts REAL NOT NULL,
        level INTEGER NOT NULL,
        logger TEXT NOT NULL,
        message TEXT NOT NULL
    );
    CREATE INDEX logs_flow ON logs(flow_run_id, id);

    CREATE TABLE cache_entries (
        key TEXT PRIMARY KEY,
        task_key TEXT NOT NULL,
        task_run_id TEXT,
        result_ref TEXT,
        result_data BLOB,
        result_serializer TEXT NOT NULL,
        created REAL NOT NULL,
        expires REAL
    );
    """,
    # 2: the task runs a task run waited for (positions in its flow run, as JSON).
    """
    ALTER TABLE task_runs ADD COLUMN upstream TEXT NOT NULL DEFAULT '[]';
    """,
    # 3: concurrency and rate limits (`orch limit`) and the slots taken against them.
    """
    CREATE TABLE concurrency_limits (
        name TEXT PRIMARY KEY,
        max_slots INTEGER NOT NULL CHECK (max_slots >= 1),
        per_second INTEGER NOT NULL DEFAULT 0,
        created REAL NOT NULL
    );

    -- One row per limit a lease takes. A concurrency slot (held = 1) counts until it is
    -- released, its lease expires unrenewed, or its holder process is gone. A rate-limit
    -- acquisition (held = 0) counts for one second after it was taken, whatever happens.
    CREATE TABLE concurrency_slots (
        lease TEXT NOT NULL,
        name TEXT NOT NULL REFERENCES concurrency_limits(name) ON DELETE CASCADE,
        occupy INTEGER NOT NULL,
        held INTEGER NOT NULL,
        pid INTEGER NOT NULL,
        host TEXT NOT NULL,
        task_run_id TEXT,
        holder TEXT,
        acquired REAL NOT NULL,
        expires REAL NOT NULL,
        PRIMARY KEY (lease, name)
    ) WITHOUT ROWID;
    CREATE INDEX concurrency_slots_name ON concurrency_slots(name, expires);
    """,
    # 4: schedules: the newest slot handled per schedule key, and the slot each
    # scheduled run was claimed for (`orch daemon`).
    """
    CREATE TABLE schedule_marks (
        key TEXT PRIMARY KEY,
        last_fired REAL NOT NULL,
        updated REAL NOT NULL
    );
    CREATE TABLE schedule_slots (
        run_id TEXT PRIMARY KEY REFERENCES flow_runs(id) ON DELETE CASCADE,
        key TEXT NOT NULL,
        slot REAL NOT NULL
    );
    CREATE INDEX schedule_slots_key ON schedule_slots(key, slot);
    """,
    # 5: flow-level retries under the daemon: the flow's retry policy as its run started
    # (JSON {"retries": n, "delays": [...]}), and the attempts made by the earlier runs of
    # a retry chain (a run the daemon scheduled after a crash continues their count).
    """
    ALTER TABLE flow_runs ADD COLUMN retry_policy TEXT;
    ALTER TABLE flow_runs ADD COLUMN prior_attempts INTEGER NOT NULL DEFAULT 0;
    """,
    # 6: task runs and state history keyed by integers, so that recording a task appends
    # to one page of each table. Every run id (a flow run, or a standalone task run) gets
    # a number that is never reused, a task run's `num` is (run number << 32) | call
    # position, and a history row's `num` is (run number << 32) | its index in the run.
    # The WITHOUT ROWID tables they replace kept whole rows in their interior pages, and
    # most appends rebalanced several pages.
    """
    CREATE TABLE run_numbers (
        num INTEGER PRIMARY KEY AUTOINCREMENT,
        run_id TEXT NOT NULL UNIQUE
    );
    INSERT INTO run_numbers (run_id) SELECT id FROM flow_runs ORDER BY created, id;
    INSERT OR IGNORE INTO run_numbers (run_id)
        SELECT flow_run_id FROM task_runs GROUP BY flow_run_id ORDER BY MIN(created);
    INSERT OR IGNORE INTO run_numbers (run_id)
        SELECT run_id FROM state_history GROUP BY run_id ORDER BY MIN(seq);

    CREATE TABLE task_runs_by_num (
        num INTEGER PRIMARY KEY,
        flow_run_id TEXT NOT NULL,
        position INTEGER NOT NULL,
        id TEXT NOT NULL,
        standalone INTEGER NOT NULL DEFAULT 0,
        task_key TEXT NOT NULL,
        name TEXT NOT NULL,
        dynamic_key TEXT NOT NULL,
        state TEXT NOT NULL,
        state_message TEXT,
        attempts INTEGER NOT NULL DEFAULT 0,
        inputs_hash TEXT,
        cache_key TEXT,
        result_ref TEXT,
        result_data BLOB,
        result_serializer TEXT,
        error_type TEXT,
        error_message TEXT,
        traceback TEXT,
        created REAL NOT NULL,
        started REAL,
        ended REAL,
        tags TEXT NOT NULL DEFAULT '[]',
        upstream TEXT NOT NULL DEFAULT '[]'
    );
    INSERT INTO task_runs_by_num
        SELECT (n.num << 32) | t.position, t.flow_run_id, t.position, t.id, t.standalone,
            t.task_key, t.name, t.dynamic_key, t.state, t.state_message, t.attempts,
            t.inputs_hash, t.cache_key, t.result_ref, t.result_data, t.result_serializer,
            t.error_type, t.error_message, t.traceback, t.created, t.started, t.ended,
            t.tags, t.upstream
        FROM task_runs t JOIN run_numbers n ON n.run_id = t.flow_run_id ORDER BY 1;
    DROP TABLE task_runs;
    ALTER TABLE task_runs_by_num RENAME TO task_runs;

    CREATE TABLE state_history_by_num (
        num INTEGER PRIMARY KEY,
        run_id TEXT NOT NULL,
        position INTEGER,
        state TEXT NOT NULL,
        message TEXT,
        ts REAL NOT NULL
    );
    INSERT INTO state_history_by_num
        SELECT (n.num << 32) | ROW_NUMBER() OVER (PARTITION BY h.run_id ORDER BY h.seq),
            h.run_id, h.position, h.state, h.message, h.ts
        FROM state_history h JOIN run_numbers n ON n.run_id = h.run_id ORDER BY 1;
    DROP TABLE state_history;
    ALTER TABLE state_history_by_num RENAME TO state_history;
    """,
    # 7: a short redacted text of each stored result, made when it was persisted, so that
    # nothing has to unpickle a result to show it.
    """
    ALTER TABLE flow_runs ADD COLUMN result_preview TEXT;
    ALTER TABLE task_runs ADD COLUMN result_preview TEXT;
    ALTER TABLE cache_entries ADD COLUMN result_preview TEXT;
    """,
    # 8 (process starts): beside each recorded pid, when that process started
    # (`processes.process_start`), so a pid since reused by another process is not taken
    # for a run's process or a slot's holder.
    """
    ALTER TABLE flow_runs ADD COLUMN pid_start TEXT;
    ALTER TABLE concurrency_slots ADD COLUMN pid_start TEXT;
    """,
    # 9 (transaction records): a `with transaction(key=...)` block that committed, so the
    # next one with that key begins committed.
    """
    CREATE TABLE transaction_records (
        key TEXT PRIMARY KEY,
        flow_run_id TEXT,
        committed REAL NOT NULL
    ) WITHOUT ROWID;
    """,
    # 10 (variables): `orchlite.variables.Variable`, named JSON values with tags.
    """
    CREATE TABLE variables (
        name TEXT PRIMARY KEY,
        value TEXT NOT NULL,
        tags TEXT NOT NULL DEFAULT '[]',
        created REAL NOT NULL,
        updated REAL NOT NULL
    ) WITHOUT ROWID;
    """,
    # 11 (artifacts): `orchlite.artifacts`, versioned per key, attached to the run that made
    # them and deleted with it.
    """
    CREATE TABLE artifacts (
        id TEXT PRIMARY KEY,
        key TEXT,
        type TEXT NOT NULL,
        data TEXT NOT NULL,
        description TEXT,
        flow_run_id TEXT,
        task_run_id TEXT,
        created REAL NOT NULL,
        updated REAL NOT NULL
    );
    CREATE INDEX artifacts_by_key ON artifacts (key, created);
    CREATE INDEX artifacts_by_run ON artifacts (flow_run_id, created);
    """,
    # 12 (pauses): a flow run paused by `pause_flow_run`, the input it waits for (a JSON
    # schema), and the resume request another process leaves for it with its verdict.
    """
    CREATE TABLE run_pauses (
        flow_run_id TEXT PRIMARY KEY,
        key TEXT,
        schema TEXT,
        deadline REAL NOT NULL,
        status TEXT NOT NULL,
        input TEXT,
        verdict TEXT,
        updated REAL NOT NULL
    ) WITHOUT ROWID;
    """,
]
SCHEMA_VERSION = len(MIGRATIONS)

_FLOW_RUN_COLUMNS = (
    "id, flow_name, name, target, parameters, state, state_message, trigger, parent_run_id,"
    " parent_position, retry_of, created, started, ended, attempts, pid, host, heartbeat,"
    " deadline, result_ref, result_serializer, pid_start, tags"
)
_TASK_RUN_COLUMNS = (
    "flow_run_id, position, id, standalone, task_key, name, dynamic_key, state, state_message,"
    " attempts, inputs_hash, cache_key, result_ref, result_serializer, error_type,"
    " error_message, traceback, created, started, ended, tags, upstream"
)


def _upsert_task_run(nulls: tuple[str, ...] = ()) -> str:
    """The task-run upsert, with NULL literals for the `nulls` columns."""
    columns = [c.strip() for c in f"{_TASK_RUN_COLUMNS}, result_data, result_preview".split(",")]
    values = ",".join("NULL" if c in nulls else "?" for c in ["num", *columns])
    return (
        f"INSERT INTO task_runs (num, {', '.join(columns)}) VALUES ({values})"
        " ON CONFLICT (num) DO UPDATE SET" + ",".join(f" {c} = excluded.{c}" for c in columns[2:])
    )


_UPSERT_TASK_RUN = _upsert_task_run()
_UPSERT_PLAIN_TASK_RUN = _upsert_task_run(
    ("state_message", "result_ref", "error_type", "error_message", "traceback")
)
"""The upsert of a row with no message, error or blob: most writes (see `_task_run_row`)."""
_IN_RUN = (
    "num >= (SELECT num << 32 FROM run_numbers WHERE run_id = ?)"
    " AND num < (SELECT (num + 1) << 32 FROM run_numbers WHERE run_id = ?)"
)
"""Rows of task_runs or state_history that belong to one run (its id given twice)."""
RUN_NUMBERS_KEPT = 10_000


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

    @property
    def result(self) -> StoredResult | None:
        if self.result_serializer is None:
            return None
        return StoredResult(
            self.result_serializer, self.result_data, self.result_ref, self.result_preview
        )


@dataclass(slots=True)
class StoredResult:
    """A persisted value: inline bytes, or the digest of a blob holding them."""

    serializer: str
    data: bytes | None = None
    blob: str | None = None
    preview: str | None = None
    """A short redacted text of the value, made as it was persisted (None before schema 7)."""


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


_ARTIFACT_COLUMNS = "id, key, type, data, description, flow_run_id, task_run_id, created, updated"


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


def _is_busy(exc: sqlite3.OperationalError) -> bool:
    text = str(exc).lower()
    return "locked" in text or "busy" in text


def _is_full(exc: object) -> bool:
    """SQLITE_FULL: "database or disk is full"."""
    return isinstance(exc, sqlite3.DatabaseError) and "disk is full" in str(exc)


class Store:
    """One project's database. Safe to share between threads: each gets its own connection."""

    def __init__(
        self,
        home: Path,
        *,
        create: bool = True,
        read_only: bool = False,
        busy_timeout_ms: int = BUSY_TIMEOUT_MS,
    ) -> None:
        """`read_only=True` opens an existing store for reading only (a view such as the TUI):
        its connections cannot write, take no write locks and never checkpoint, so they
        never hold up a writer. `busy_timeout_ms` is how long to wait for another process's
        lock (`orch doctor` waits less, to report a locked store)."""
        self.home = home
        self._busy_ms = busy_timeout_ms
        self.path = home / DB_NAME
        self._local = threading.local()
        self._connections: list[sqlite3.Connection] = []
        self._lock = threading.Lock()
        self._numbers: dict[str, int] = {}
        """Run numbers (migration 6) this process has seen committed, by run id."""
        self._history_ends: dict[int, int] = {}
        """Per run number, the newest history row this process committed for that run."""
        self.read_only = read_only
        """True when asked for, or when opened with `create=False` in a `.orch/` this
        process cannot write."""
        self._writable_home = True
        self._frozen_by_full_disk = False
        """True when the disk is full and this store could only be opened to read (see
        `_connect`); a write then fails with DiskFullError."""
        if create and not read_only:
            _make_home(home)
            check_home(home)
            if not self.path.exists():
                _create_database(self.path)
        elif not self.path.exists():
            raise StoreError(f"no orchlite store at {home}")
        else:
            check_home(home)
            self._writable_home = os.access(home, os.W_OK | os.X_OK) and os.access(
                self.path, os.R_OK | os.W_OK
            )
            self.read_only = read_only or not self._writable_home
        self._prepare()

    # -- connections and transactions -------------------------------------------------

    def _connect(self) -> sqlite3.Connection:
        if self.read_only:
            return self._connect_read_only()
        try:
            conn = sqlite3.connect(
                self.path,
                timeout=self._busy_ms / 1000,
                isolation_level=None,
                check_same_thread=False,
            )
        except sqlite3.DatabaseError as exc:
            raise StoreError(f"cannot open {self.path}: {exc}") from None
        try:
            conn.execute(f"PRAGMA busy_timeout = {self._busy_ms}")
            conn.execute("PRAGMA foreign_keys = ON")
            conn.execute("PRAGMA synchronous = NORMAL")
            # Writers would otherwise checkpoint (copy the WAL into the database and fsync)
            # inline every 1,000 pages; the recorder thread checkpoints in the background,
            # and this bound only catches a WAL that nobody else checkpoints.
            conn.execute(f"PRAGMA wal_autocheckpoint = {WAL_AUTOCHECKPOINT_PAGES}")
        except sqlite3.DatabaseError as exc:
            conn.close()
            if not no_space_left(self.home):
                raise StoreError(f"cannot open {self.path}: {exc}") from None
            return self._connect_on_full_disk()
        with self._lock:
            self._connections.append(conn)
        return conn

    def _connect_on_full_disk(self) -> sqlite3.Connection:
        """A read-only connection when the disk is full and the WAL index cannot be made.

        Even a reader of a WAL database needs the 32 KiB `-shm` file, which a full disk
        cannot hold once the last connection removed it. Then the database file alone is
        exact if the WAL holds nothing (the last writer merged it back), and it is read as
        immutable; a write fails with DiskFullError. With committed pages still in the WAL,
        nothing can be read correctly until space is freed.
        """
        wal = self.path.with_name(self.path.name + "-wal")
        if _size(wal) > 0:
            raise DiskFullError(self.path)
        self.read_only = True
        self._writable_home = False
        self._frozen_by_full_disk = True
        return self._connect_read_only()

    def _connect_read_only(self) -> sqlite3.Connection:
        """Open for reading only; without a -shm file that could be created, as immutable.

        A WAL database needs its -shm file even to read. In a `.orch/` nobody can write
        there is no writer either, so reading the database file as immutable is exact once
        the last writer closed (it merged the WAL back into the database). A writable
        `.orch/` may have writers, so there it is never read as immutable.
        """
        from urllib.parse import quote

        base = f"file:{quote(str(self.path.absolute()))}?mode=ro"
        uris = (base,) if self._writable_home else (base, base + "&immutable=1")
        last: sqlite3.DatabaseError | None = None
        for uri in uris:
            try:
                conn = sqlite3.connect(
                    uri, uri=True, isolation_level=None, check_same_thread=False, timeout=5
                )
            except sqlite3.DatabaseError as exc:
                last = exc
                continue
            try:
                conn.execute("SELECT COUNT(*) FROM sqlite_master").fetchone()
            except sqlite3.DatabaseError as exc:
                conn.close()
                last = exc
                continue
            conn.execute(f"PRAGMA busy_timeout = {self._busy_ms}")
            with self._lock:
                self._connections.append(conn)
            return conn
        raise StoreError(f"cannot read {self.path} (read-only): {last}")

    @property
    def conn(self) -> sqlite3.Connection:
        conn: sqlite3.Connection | None = getattr(self._local, "conn", None)
        if conn is None:
            conn = self._connect()
            self._local.conn = conn
        return conn

    def close_thread_connection(self) -> None:
        """Close the calling thread's connection, if it has one (a thread that ends)."""
        conn: sqlite3.Connection | None = getattr(self._local, "conn", None)
        if conn is None:
            return
        self._local.conn = None
        with self._lock:
            if conn in self._connections:
                self._connections.remove(conn)
        conn.close()

    def close(self) -> None:
        with self._lock:
            for conn in self._connections:
                conn.close()
            self._connections.clear()
        self._local = threading.local()

    def __enter__(self) -> Store:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def transaction(self, fault: str = "") -> _Transaction:
        """A `BEGIN IMMEDIATE` write transaction; nested calls become savepoints.

        `fault` names the crash point (`orchlite.faults`) just after its commit.
        """
        return _Transaction(self, self.conn, fault)

    def _begin(self, conn: sqlite3.Connection) -> None:
        if self._frozen_by_full_disk:
            raise DiskFullError(self.path)
        if self.read_only:
            raise StoreError(f"cannot write {self.path}: it is open read-only")
        try:
            conn.execute("BEGIN IMMEDIATE")  # the busy handler waits up to the busy timeout
            return
        except sqlite3.OperationalError as exc:
            if not _is_busy(exc):
                raise StoreError(f"cannot write {self.path}: {exc}") from None
        except sqlite3.DatabaseError as exc:
            raise StoreError(f"cannot write {self.path}: {exc}") from None
        deadline = time.monotonic() + self._busy_ms / 1000
        delay = 0.001
        while True:
            try:
                conn.execute("BEGIN IMMEDIATE")
                return
            except sqlite3.OperationalError as exc:
                if not _is_busy(exc) or time.monotonic() > deadline:
                    raise StoreError(f"cannot write {self.path}: {exc}") from None
                time.sleep(delay)
                delay = min(delay * 2, 0.1)
            except sqlite3.DatabaseError as exc:
                raise StoreError(f"cannot write {self.path}: {exc}") from None

    def _prepare(self) -> None:
        if _size(self.path) == 0 and _size(self.path.with_name(self.path.name + "-wal")) == 0:
            # A new database is created whole (`_create_database`): an empty one lost its data.
            raise EmptyStoreError(
                f"{self.path} is empty (0 bytes): the store's history is gone; restore it from"
                " a backup, or delete it to start a new store"
            )
        conn = self.conn
        try:
            version = conn.execute("PRAGMA user_version").fetchone()[0]
        except sqlite3.DatabaseError as exc:
            raise StoreError(f"{self.path} is not a usable orchlite database: {exc}") from None
        if version > SCHEMA_VERSION:
            raise SchemaTooNewError(
                f"{self.path} was written by a newer orchlite (schema {version}; this version "
                f"knows {SCHEMA_VERSION}): upgrade orchlite"
            )
        if version < SCHEMA_VERSION:
            if self.read_only:
                if self._writable_home:
                    raise StoreError(
                        f"{self.path} needs a schema upgrade, which a read-only view does not"
                        " make: run `orch runs` once to upgrade it"
                    )
                raise StoreError(
                    f"{self.path} needs a schema upgrade, but {self.home} is not writable"
                )
            self._migrate(conn)

    def _migrate(self, conn: sqlite3.Connection) -> None:
        from filelock import FileLock

        with FileLock(str(self.home / "migrate.lock"), mode=0o600):
            mode = conn.execute("PRAGMA journal_mode").fetchone()[0]
            if mode != "wal":
                conn.execute("PRAGMA journal_mode = WAL")
            with self.transaction():
                version = conn.execute("PRAGMA user_version").fetchone()[0]
                for number in range(version, SCHEMA_VERSION):
                    for statement in _statements(MIGRATIONS[number]):
                        conn.execute(statement)
                    conn.execute(f"PRAGMA user_version = {number + 1}")
        _restrict(self.path)

    def checkpoint(self) -> None:
        """Copy the WAL back into the database without blocking readers or writers."""
        self.conn.execute("PRAGMA wal_checkpoint(PASSIVE)")

    def data_version(self) -> int:
        """Changes whenever another connection commits: cheap change detection for pollers."""
        return int(self.conn.execute("PRAGMA data_version").fetchone()[0])

    # -- flow runs --------------------------------------------------------------------

    def create_flow_run(
        self,
        *,
        run_id: str,
        flow_name: str,
        name: str,
        parameters: str,
        state: StateName = StateName.PENDING,
        message: str | None = None,
        target: str | None = None,
        trigger: str = "manual",
        parent_run_id: str | None = None,
        parent_position: int | None = None,
        retry_of: str | None = None,
        tags: str = "[]",
        pid: int | None = None,
        host: str | None = None,
        now: float | None = None,
    ) -> None:
        """Record a new flow run.

        A run already recorded under `run_id` while waiting to start (SCHEDULED, LATE or
        PENDING: claimed by a scheduler, or queued by a supervisor) is adopted instead: its
        flow, name, target and parameters are filled in and it moves to `state`. A run id
        that already started is refused. `pid` and `host` name the process that will run
        it, so a run whose process dies before it starts is reaped too.

        A run that retries another (`retry_of`) claims that retry: it is refused with a
        UsageError naming the other while another unfinished run retries the same run, and
        with RunNotFoundError when the run to retry was deleted meanwhile (`orch gc`). Once
        recorded, it keeps the retried run from `orch gc` until it ends (`delete_runs_before`).
        """
        now = time.time() if now is None else now
        heartbeat = None if pid is None else now
        message = redact_optional(message)
        pid_start = _start_of(pid, host)
        with self.transaction("run_created") as conn:
            if retry_of is not None:
                self._claim_retry(conn, run_id, retry_of)
            row = conn.execute("SELECT state FROM flow_runs WHERE id = ?", (run_id,)).fetchone()
            if row is not None:
                if row[0] not in _WAITING:
                    raise StoreError(f"flow run {run_id} has already started ({row[0]})")
                conn.execute(
                    "UPDATE flow_runs SET flow_name = ?, name = ?, target = COALESCE(?, target),"
                    " parameters = ?, state = ?, state_message = ?, pid = COALESCE(?, pid),"
                    " host = COALESCE(?, host), heartbeat = COALESCE(?, heartbeat),"
                    " pid_start = CASE WHEN ? IS NULL THEN pid_start ELSE ? END WHERE id = ?",
                    (
                        flow_name,
                        name,
                        target,
                        parameters,
                        state.value,
                        message,
                        pid,
                        host,
                        heartbeat,
                        pid,
                        pid_start,
                        run_id,
                    ),
                )
                if row[0] != state.value:
                    self._insert_history(conn, run_id, None, state.value, message, now)
                return
            conn.execute(
                "INSERT INTO flow_runs (id, flow_name, name, target, parameters, state,"
                " state_message, trigger, parent_run_id, parent_position, retry_of, created,"
                " tags, pid, host, heartbeat, pid_start)"
                " VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)",
                (
                    run_id,
                    flow_name,
                    name,
                    target,
                    parameters,
                    state.value,
                    message,
                    trigger,
                    parent_run_id,
                    parent_position,
                    retry_of,
                    now,
                    tags,
                    pid,
                    host,
                    heartbeat,
                    pid_start,
                ),
            )
            self._insert_history(conn, run_id, None, state.value, message, now)

    @staticmethod
    def _claim_retry(conn: sqlite3.Connection, run_id: str, retry_of: str) -> None:
        if not conn.execute("SELECT 1 FROM flow_runs WHERE id = ?", (retry_of,)).fetchone():
            raise RunNotFoundError(f"run {retry_of[:8]} no longer exists (deleted by `orch gc`)")
        other = _live_retry(conn, retry_of, run_id)
        if other is not None:
            raise UsageError(
                f"run {retry_of[:8]} is already being retried by run {other[0][:8]} ({other[1]});"
                f" wait for it to end, or stop it with `orch cancel {other[0][:8]}`"
            )

    def set_flow_run_state(
        self,
        run_id: str,
        state: StateName,
        message: str | None = None,
        *,
        result: StoredResult | None = None,
        pid: int | None = None,
        host: str | None = None,
        attempts: int | None = None,
        deadline: float | None = None,
        parameters: str | None = None,
        logs: Sequence[LogRow] = (),
        now: float | None = None,
    ) -> bool:
        """Move a flow run to `state`; False (and nothing written) if the move is not allowed."""
        now = time.time() if now is None else now
        message = redact_optional(message)
        with self.transaction(_FLOW_STATE_FAULTS.get(state, "")) as conn:
            row = conn.execute("SELECT state FROM flow_runs WHERE id = ?", (run_id,)).fetchone()
            if row is None:
                raise RunNotFoundError(f"no flow run {run_id}")
            if not can_transition(StateName(row[0]), state):
                return False
            sets = ["state = ?", "state_message = ?"]
            values: list[Any] = [state.value, message]
            if state is StateName.RUNNING:
                sets += ["started = COALESCE(started, ?)", "heartbeat = ?"]
                values += [now, now]
            if state in TERMINAL:
                sets.append("ended = ?")
                values.append(now)
            if pid is not None:
                sets += ["pid = ?", "host = ?", "pid_start = ?"]
                values += [pid, host, _start_of(pid, host)]
            if attempts is not None:
                sets.append("attempts = ?")
                values.append(attempts)
            if deadline is not None:
                sets.append("deadline = ?")
                values.append(deadline)
            if parameters is not None:
                sets.append("parameters = ?")
                values.append(parameters)
            if result is not None:
                sets += [
                    "result_ref = ?",
                    "result_data = ?",
                    "result_serializer = ?",
                    "result_preview = ?",
                ]
                values += [result.blob, result.data, result.serializer, result.preview]
            conn.execute(f"UPDATE flow_runs SET {', '.join(sets)} WHERE id = ?", (*values, run_id))
            self._insert_history(conn, run_id, None, state.value, message, now)
            if state in TERMINAL:
                # No task run outlives its flow run: one still unfinished was cut short (a
                # timeout, a cancel, a crash) or its last write failed (a full disk).
                self._end_unfinished_task_runs(conn, run_id, state, message, now)
            if logs:
                self._insert_logs(conn, logs)
        return True

    def end_abandoned_run(
        self, run_id: str, state: StateName, message: str, now: float | None = None
    ) -> bool:
        """End a run whose process is gone: the flow run and its unfinished task runs.

        False when the run had already reached a terminal state (nothing is changed).
        """
        return self.set_flow_run_state(run_id, state, message, now=now)

    def _end_unfinished_task_runs(
        self,
        conn: sqlite3.Connection,
        run_id: str,
        state: StateName,
        message: str | None,
        now: float,
    ) -> int:
        """End the task runs of flow run `run_id` that are not finished, as it ended in
        `state`; returns how many."""
        terminal = tuple(s.value for s in TERMINAL)
        marks = ",".join("?" * len(terminal))
        unfinished = conn.execute(
            f"SELECT num, position FROM task_runs WHERE {_IN_RUN} AND state NOT IN ({marks})",
            (run_id, run_id, *terminal),
        ).fetchall()
        task_state = task_state_after(state)
        message = redact_optional(message) or f"its flow run ended {state.value}"
        for num, position in unfinished:
            conn.execute(
                "UPDATE task_runs SET state = ?, state_message = ?, ended = ? WHERE num = ?",
                (task_state.value, message, now, num),
            )
            self._insert_history(conn, run_id, position, task_state.value, message, now)
        return len(unfinished)

    def orphaned_task_runs(self) -> list[tuple[str, int, str, str, str]]:
        """Unfinished task runs of ended flow runs: (flow run, position, task run name,
        task run state, flow run state) each. Reads every task run (for `orch doctor`)."""
        terminal = tuple(s.value for s in TERMINAL)
        marks = ",".join("?" * len(terminal))
        rows = self.conn.execute(
            "SELECT t.flow_run_id, t.position, t.name, t.state, f.state"
            " FROM task_runs t JOIN flow_runs f ON f.id = t.flow_run_id"
            f" WHERE t.state NOT IN ({marks}) AND f.state IN ({marks}) ORDER BY t.num",
            (*terminal, *terminal),
        ).fetchall()
        return [(r[0], r[1], r[2], r[3], r[4]) for r in rows]

    def end_orphaned_task_runs(self, run_ids: Iterable[str], now: float | None = None) -> int:
        """End the unfinished task runs of these ended flow runs as their flow run ended
        (see `orphaned_task_runs`); returns how many were ended."""
        now = time.time() if now is None else now
        ended = 0
        with self.transaction() as conn:
            for run_id in dict.fromkeys(run_ids):
                row = conn.execute("SELECT state FROM flow_runs WHERE id = ?", (run_id,)).fetchone()
                if row is None or StateName(row[0]) not in TERMINAL:
                    continue
                message = f"its flow run ended {row[0]}; ended by orch doctor"
                ended += self._end_unfinished_task_runs(
                    conn, run_id, StateName(row[0]), message, now
                )
        return ended

    def request_cancel(self, run_id: str, message: str = "cancellation requested") -> bool:
        """Mark a run CANCELLING; its process notices and stops. False if it already ended."""
        return self.set_flow_run_state(run_id, StateName.CANCELLING, message)

    def stopping(self, run_ids: Sequence[str]) -> dict[str, str]:
        """Which of these runs must stop, with their state: those someone asked to cancel
        (CANCELLING), and those another process already ended (e.g. reaped as CRASHED)."""
        if not run_ids:
            return {}
        stops = (StateName.CANCELLING.value, *(s.value for s in TERMINAL))
        marks = ",".join("?" * len(run_ids))
        states = ",".join("?" * len(stops))
        rows = self.conn.execute(
            f"SELECT id, state FROM flow_runs WHERE id IN ({marks}) AND state IN ({states})",
            (*run_ids, *stops),
        ).fetchall()
        return {row[0]: row[1] for row in rows}

    def heartbeat(self, run_ids: Iterable[str], now: float | None = None) -> None:
        ids = list(run_ids)
        if not ids:
            return
        now = time.time() if now is None else now
        with self.transaction() as conn:
            conn.executemany(
                "UPDATE flow_runs SET heartbeat = ? WHERE id = ?", [(now, i) for i in ids]
            )

    def get_flow_run(self, run_id: str) -> FlowRun:
        row = self.conn.execute(
            f"SELECT {_FLOW_RUN_COLUMNS} FROM flow_runs WHERE id = ?", (run_id,)
        ).fetchone()
        if row is None:
            raise RunNotFoundError(f"no flow run {run_id}")
        return FlowRun(*row)

    def flow_run_result(self, run_id: str) -> StoredResult | None:
        row = self.conn.execute(
            "SELECT result_serializer, result_data, result_ref, result_preview FROM flow_runs"
            " WHERE id = ?",
            (run_id,),
        ).fetchone()
        return StoredResult(*row) if row and row[0] else None

    def resolve_run_id(self, ref: str) -> str:
        """A full run id from an id, a unique id prefix, or `last`."""
        ref = ref.strip()
        if ref == "last":
            # `+` keeps SQLite off the parent index: walking the created index from the
            # newest end finds the answer at once; sorting every top-level run does not.
            row = self.conn.execute(
                "SELECT id FROM flow_runs WHERE +parent_run_id IS NULL"
                " ORDER BY created DESC LIMIT 1"
            ).fetchone()
            if row is None:
                raise RunNotFoundError("no runs recorded yet")
            return str(row[0])
        if not ref or not all(c in "0123456789abcdef" for c in ref.lower()):
            raise RunNotFoundError(f"no run matches {ref!r}: run ids are hexadecimal")
        prefix = ref.lower()
        rows = self.conn.execute(
            "SELECT id FROM flow_runs WHERE id >= ? AND id < ? ORDER BY id LIMIT 6",
            (prefix, prefix + "g"),
        ).fetchall()
        if not rows:
            raise RunNotFoundError(f"no run matches {ref!r}")
        if len(rows) > 1:
            shown = ", ".join(r[0][:12] for r in rows[:5])
            raise RunNotFoundError(f"{ref!r} matches several runs ({shown}…): give more of the id")
        return str(rows[0][0])

    def list_flow_runs(
        self,
        *,
        flow: str | Sequence[str] | None = None,
        state: str | Sequence[str] | None = None,
        limit: int = 20,
        include_subflows: bool = True,
        tags: Sequence[str] | None = None,
    ) -> list[FlowRun]:
        """Flow runs, newest first (with `tags`: those carrying any of them)."""
        where, values = _flow_and_state(flow, state)
        if tags:
            marks = ", ".join("?" * len(tags))
            where.append(f"EXISTS (SELECT 1 FROM json_each(tags) WHERE value IN ({marks}))")
            values += list(tags)
        if not include_subflows:
            where.append("parent_run_id IS NULL")
        clause = f"WHERE {' AND '.join(where)}" if where else ""
        rows = self.conn.execute(
            f"SELECT {_FLOW_RUN_COLUMNS} FROM flow_runs {clause} ORDER BY created DESC LIMIT ?",
            (*values, limit),
        ).fetchall()
        return [FlowRun(*row) for row in rows]

    def flow_runs_page(
        self,
        *,
        flow: str | None = None,
        state: str | None = None,
        text: str = "",
        before: RunKey | None = None,
        down_to: RunKey | None = None,
        limit: int = -1,
    ) -> list[FlowRun]:
        """Flow runs newest first by (created, id), for keyset paging (-1: no limit).

        `before` keeps the runs older than that key (the next page), `down_to` those at that
        key or newer (the pages already shown, read again). Each bound is a range on the
        created index, so a page costs the same however deep it is. `text` matches part of
        the id, name, flow, trigger, state or message, ignoring ASCII case.
        """
        where, values = _flow_and_state(flow, state)
        if text:
            columns = ("id", "name", "flow_name", "trigger", "state", "state_message")
            where.append("(" + " OR ".join(f"{c} LIKE ? ESCAPE '\\'" for c in columns) + ")")
            values += [_like_pattern(text)] * len(columns)
        if before is not None:
            where.append("created <= ? AND (created < ? OR id < ?)")
            values += [before[0], before[0], before[1]]
        if down_to is not None:
            where.append("created >= ? AND (created > ? OR id >= ?)")
            values += [down_to[0], down_to[0], down_to[1]]
        clause = f"WHERE {' AND '.join(where)}" if where else ""
        rows = self.conn.execute(
            f"SELECT {_FLOW_RUN_COLUMNS} FROM flow_runs {clause}"
            " ORDER BY created DESC, id DESC LIMIT ?",
            (*values, limit),
        ).fetchall()
        return [FlowRun(*row) for row in rows]

    def latest_runs_per_flow(self, *, flows: int = 8, runs: int = 20) -> list[list[FlowRun]]:
        """The newest `runs` runs of each of the `flows` flows that ran most recently, the
        flow that ran last first. Index seeks only: the flow names are walked one by one
        on the (flow, created) index rather than grouping every run."""
        names = self.conn.execute(
            "WITH RECURSIVE names(flow) AS ("
            " SELECT MIN(flow_name) FROM flow_runs"
            " UNION ALL SELECT (SELECT MIN(flow_name) FROM flow_runs WHERE flow_name > flow)"
            " FROM names WHERE flow IS NOT NULL)"
            " SELECT flow, (SELECT MAX(created) FROM flow_runs WHERE flow_name = flow) AS last"
            " FROM names WHERE flow IS NOT NULL ORDER BY last DESC LIMIT ?",
            (flows,),
        ).fetchall()
        return [
            [
                FlowRun(*row)
                for row in self.conn.execute(
                    f"SELECT {_FLOW_RUN_COLUMNS} FROM flow_runs WHERE flow_name = ?"
                    " ORDER BY created DESC LIMIT ?",
                    (name, runs),
                )
            ]
            for name, _last in names
        ]

    def child_flow_runs(self, run_id: str) -> list[FlowRun]:
        rows = self.conn.execute(
            f"SELECT {_FLOW_RUN_COLUMNS} FROM flow_runs WHERE parent_run_id = ?"
            " ORDER BY parent_position, created",
            (run_id,),
        ).fetchall()
        return [FlowRun(*row) for row in rows]

    def unfinished_flow_runs(self) -> list[FlowRun]:
        """Runs not in a terminal state (for crash recovery).

        Asked by the positive list of states, so the state index answers it without reading
        every finished run.
        """
        unfinished = tuple(s.value for s in StateName if s not in TERMINAL)
        marks = ",".join("?" * len(unfinished))
        rows = self.conn.execute(
            f"SELECT {_FLOW_RUN_COLUMNS} FROM flow_runs WHERE state IN ({marks})", unfinished
        ).fetchall()
        return [FlowRun(*row) for row in rows]

    # -- task runs --------------------------------------------------------------------

    def save_task_run(
        self,
        run: TaskRun,
        states: Sequence[StateRow] = (),
        *,
        cache: tuple[str, float | None] | None = None,
        logs: Sequence[LogRow] = (),
    ) -> bool:
        """Write a task run's whole row and append its new state changes, in one commit.

        The row is upserted, so the same call records a new task run, a state change, or a
        new attempt at a (flow run, position) left by an earlier attempt of the flow run.
        `cache` = (key, expires) also stores the run's result as a cache entry in the same
        commit, so a cache entry never exists without its result.

        Terminal states are final: once its flow run has ended (e.g. reaped as CRASHED
        while its process was stopped, or TIMED_OUT while an abandoned body ran on),
        nothing of the task run is written (its log lines are) and False is returned.
        """
        with self.transaction(_TASK_SAVED_FAULTS.get(run.state, "")) as conn:
            written = self._write_task_run(conn, run, states, cache, logs)
        if written is None:
            return False
        if not conn.in_transaction:  # committed, not a part of a larger transaction
            self._remember(run.flow_run_id, *written)
        return True

    def save_task_runs(self, saves: Sequence[TaskRunSave]) -> list[BaseException | None]:
        """Write several task runs in one commit: what `save_task_run` does for each.

        Each goes in a savepoint of its own, so one that fails is left out and the others
        are committed; returns, for each, None or the error it got (every one of them, if
        the commit itself failed).
        """
        errors: list[BaseException | None] = [None] * len(saves)
        committed: list[tuple[str, int, int | None]] = []
        ends: dict[int, int] = {}  # history ends within this transaction
        try:
            with self.transaction() as conn:
                for i, save in enumerate(saves):
                    conn.execute("SAVEPOINT task_run")
                    try:
                        written = self._write_task_run(conn, *save, ends=ends)
                    except Exception as exc:
                        conn.execute("ROLLBACK TO task_run")
                        errors[i] = DiskFullError(self.path) if _is_full(exc) else exc
                    else:
                        if written is None:  # its flow run has ended: nothing to write
                            conn.execute("RELEASE task_run")
                            continue
                        number, end = written
                        if end is not None:
                            ends[number] = end
                        committed.append((save.run.flow_run_id, number, end))
                    conn.execute("RELEASE task_run")
        except BaseException as exc:
            return [error or exc for error in errors]
        for run_id, number, end in committed:
            self._remember(run_id, number, ends.get(number, end))
        for save, error in zip(saves, errors, strict=True):
            fault = _TASK_SAVED_FAULTS.get(save.run.state)
            if fault and error is None:
                fault_point(fault)
        return errors

    def _write_task_run(
        self,
        conn: sqlite3.Connection,
        run: TaskRun,
        states: Sequence[StateRow],
        cache: tuple[str, float | None] | None,
        logs: Sequence[LogRow],
        ends: dict[int, int] | None = None,
    ) -> tuple[int, int | None] | None:
        """The statements of one task run's save; returns its run number and history end
        (`ends`: those written earlier in the same transaction), or None when its flow run
        has ended and only the log lines were written."""
        if not run.standalone and self._flow_run_ended(conn, run.flow_run_id):
            if logs:
                self._insert_logs(conn, logs)
            return None
        number = self._run_number(conn, run.flow_run_id)
        conn.execute(*_task_run_row(number << 32 | run.position, run))
        end = None
        if states:
            last = ends.get(number) if ends else None
            end = self._append_history(conn, number, run.flow_run_id, run.position, states, last)
        if cache is not None and run.result_serializer is not None:
            conn.execute(
                "INSERT OR REPLACE INTO cache_entries (key, task_key, task_run_id,"
                " result_ref, result_data, result_serializer, result_preview, created, expires)"
                " VALUES (?,?,?,?,?,?,?,?,?)",
                (
                    cache[0],
                    run.task_key,
                    run.id,
                    run.result_ref,
                    run.result_data,
                    run.result_serializer,
                    run.result_preview,
                    run.ended or time.time(),
                    cache[1],
                ),
            )
        if logs:
            self._insert_logs(conn, logs)
        return number, end

    @staticmethod
    def _flow_run_ended(conn: sqlite3.Connection, run_id: str) -> bool:
        row = conn.execute("SELECT ended FROM flow_runs WHERE id = ?", (run_id,)).fetchone()
        return row is not None and row[0] is not None

    def task_runs(self, flow_run_id: str, *, with_results: bool = False) -> list[TaskRun]:
        """A flow run's task runs in call order; inline result bytes only if asked for."""
        data = "result_data" if with_results else "NULL"
        rows = self.conn.execute(
            f"SELECT {_TASK_RUN_COLUMNS}, {data}, result_preview FROM task_runs"
            f" WHERE {_IN_RUN} ORDER BY num",
            (flow_run_id, flow_run_id),
        ).fetchall()
        return [TaskRun(*row) for row in rows]

    def task_run_result(self, flow_run_id: str, position: int) -> StoredResult | None:
        row = self.conn.execute(
            "SELECT result_serializer, result_data, result_ref, result_preview FROM task_runs"
            " WHERE num = (SELECT num << 32 FROM run_numbers WHERE run_id = ?) | ?",
            (flow_run_id, position),
        ).fetchone()
        return StoredResult(*row) if row and row[0] else None

    def task_state_counts(self, flow_run_ids: Sequence[str]) -> dict[str, dict[str, int]]:
        """For each flow run: how many of its task runs are in each state."""
        counts: dict[str, dict[str, int]] = {run_id: {} for run_id in flow_run_ids}
        if not flow_run_ids:
            return counts
        marks = ",".join("?" * len(flow_run_ids))
        for run_id, state, n in self.conn.execute(
            "SELECT r.run_id, t.state, COUNT(*) FROM run_numbers r JOIN task_runs t"
            " ON t.num >= r.num << 32 AND t.num < (r.num + 1) << 32"
            f" WHERE r.run_id IN ({marks}) GROUP BY r.run_id, t.state",
            tuple(flow_run_ids),
        ):
            counts[run_id][state] = n
        return counts

    # -- history and logs -------------------------------------------------------------

    def _run_number(self, conn: sqlite3.Connection, run_id: str) -> int:
        """The number of `run_id` (see migration 6), given to it on its first use."""
        number = self._numbers.get(run_id)
        if number is not None:
            return number
        row = conn.execute("SELECT num FROM run_numbers WHERE run_id = ?", (run_id,)).fetchone()
        if row is not None:
            return int(row[0])
        cursor = conn.execute("INSERT INTO run_numbers (run_id) VALUES (?)", (run_id,))
        return int(cursor.lastrowid or 0)

    def _remember(self, run_id: str, number: int, history_end: int | None) -> None:
        """Keep a committed run number and history end (a number given in a transaction
        that rolled back could be given again to another run: only committed ones count)."""
        if len(self._numbers) >= RUN_NUMBERS_KEPT:
            self._numbers.clear()
            self._history_ends.clear()
        self._numbers[run_id] = number
        if history_end is not None:
            self._history_ends[number] = history_end

    def _insert_history(
        self,
        conn: sqlite3.Connection,
        run_id: str,
        position: int | None,
        state: str,
        message: str | None,
        ts: float,
    ) -> None:
        number = self._run_number(conn, run_id)
        self._append_history(conn, number, run_id, position, [(state, message, ts)])

    def _append_history(
        self,
        conn: sqlite3.Connection,
        number: int,
        run_id: str,
        position: int | None,
        states: Sequence[tuple[str, str | None, float]],
        last: int | None = None,
    ) -> int:
        """Append state changes of run `number` after its newest one; returns the last num.

        A run's history rows are numbered without gaps, each writer appending right after
        the newest one. So the end this process last committed for the run (or `last`, one
        written earlier in the same transaction) is tried first, with no lookup: if any
        other connection appended since, the first row collides with one of theirs, and the
        end is then read from the table.
        """
        remembered = self._history_ends.pop(number, None)
        if last is None:
            last = remembered
        if last is not None:
            try:
                return _insert_history_after(conn, last, run_id, position, states)
            except sqlite3.IntegrityError:
                pass
        first = number << 32
        row = conn.execute(_LAST_HISTORY_ROW, (first, first + (1 << 32))).fetchone()
        return _insert_history_after(conn, row[0] if row else first, run_id, position, states)

    def history(self, run_id: str, position: int | None = None) -> list[HistoryEntry]:
        """State changes of a flow run and its task runs (or of one task run), oldest first."""
        sql = f"SELECT run_id, position, state, message, ts FROM state_history WHERE {_IN_RUN}"
        values: list[Any] = [run_id, run_id]
        if position is not None:
            sql += " AND position = ?"
            values.append(position)
        rows = self.conn.execute(sql + " ORDER BY num", values).fetchall()
        return [HistoryEntry(*row) for row in rows]

    def write_logs(self, rows: Sequence[LogRow]) -> None:
        if rows:
            with self.transaction() as conn:
                self._insert_logs(conn, rows)

    @staticmethod
    def _insert_logs(conn: sqlite3.Connection, rows: Sequence[LogRow]) -> None:
        rows = [(*row[:-1], redact(row[-1])) for row in rows] if redaction_active() else rows
        conn.executemany(
            "INSERT INTO logs (flow_run_id, task_run_id, task_name, ts, level, logger, message)"
            " VALUES (?,?,?,?,?,?,?)",
            rows,
        )

    def logs(
        self,
        flow_run_id: str,
        *,
        after_id: int = 0,
        min_level: int = 0,
        task_name: str | None = None,
        limit: int = 10_000,
        task_run_id: str | None = None,
        flow_only: bool = False,
        text: str = "",
    ) -> list[LogRecord]:
        """A flow run's log records (and its subflows' are separate runs), oldest first.

        `task_run_id` keeps one task run's records, `flow_only` those of the flow run itself,
        `text` those whose message contains it (ignoring ASCII case).
        """
        sql = (
            "SELECT id, flow_run_id, task_run_id, task_name, ts, level, logger, message FROM logs"
            " WHERE flow_run_id = ? AND id > ? AND level >= ?"
        )
        values: list[Any] = [flow_run_id, after_id, min_level]
        if task_name is not None:
            sql += " AND task_name = ?"
            values.append(task_name)
        if task_run_id is not None:
            sql += " AND task_run_id = ?"
            values.append(task_run_id)
        if flow_only:
            sql += " AND task_run_id IS NULL"
        if text:
            sql += " AND message LIKE ? ESCAPE '\\'"
            values.append(_like_pattern(text))
        sql += " ORDER BY id LIMIT ?"
        values.append(limit)
        return [LogRecord(*row) for row in self.conn.execute(sql, values)]

    # -- cache ------------------------------------------------------------------------

    def get_cache_entry(self, key: str, now: float | None = None) -> CacheEntry | None:
        """The unexpired entry for `key`, if any."""
        now = time.time() if now is None else now
        row = self.conn.execute(
            "SELECT key, task_key, task_run_id, result_serializer, result_data, result_ref,"
            " result_preview, created, expires FROM cache_entries WHERE key = ?",
            (key,),
        ).fetchone()
        if row is None or (row[8] is not None and row[8] <= now):
            return None
        stored = StoredResult(row[3], row[4], row[5], row[6])
        return CacheEntry(row[0], row[1], row[2], stored, *row[7:])

    def delete_cache_entry(self, key: str) -> None:
        with self.transaction() as conn:
            conn.execute("DELETE FROM cache_entries WHERE key = ?", (key,))

    def list_cache_entries(self, limit: int = 1000) -> list[CacheEntry]:
        rows = self.conn.execute(
            "SELECT key, task_key, task_run_id, result_serializer, NULL, result_ref,"
            " created, expires FROM cache_entries ORDER BY created DESC LIMIT ?",
            (limit,),
        ).fetchall()
        return [CacheEntry(r[0], r[1], r[2], StoredResult(r[3], r[4], r[5]), *r[6:]) for r in rows]

    def clear_cache(self, task_key: str | None = None) -> int:
        with self.transaction() as conn:
            if task_key is None:
                cursor = conn.execute("DELETE FROM cache_entries")
            else:
                cursor = conn.execute("DELETE FROM cache_entries WHERE task_key = ?", (task_key,))
            return cursor.rowcount

    # -- concurrency limits -------------------------------------------------------------

    def set_concurrency_limit(
        self, name: str, limit: int, *, per_second: bool = False, now: float | None = None
    ) -> None:
        """Create or change the limit `name`; slots already taken stay taken."""
        now = time.time() if now is None else now
        with self.transaction() as conn:
            conn.execute(
                "INSERT INTO concurrency_limits (name, max_slots, per_second, created)"
                " VALUES (?,?,?,?) ON CONFLICT (name) DO UPDATE SET"
                " max_slots = excluded.max_slots, per_second = excluded.per_second",
                (name, limit, int(per_second), now),
            )

    def delete_concurrency_limit(self, name: str) -> bool:
        """Remove a limit and the slots taken against it; False if there was none."""
        with self.transaction() as conn:
            cursor = conn.execute("DELETE FROM concurrency_limits WHERE name = ?", (name,))
            return cursor.rowcount > 0

    def concurrency_limits(self, names: Sequence[str] | None = None) -> list[ConcurrencyLimit]:
        """All limits, or those among `names`, by name."""
        sql = "SELECT name, max_slots, per_second, created FROM concurrency_limits"
        values: tuple[str, ...] = ()
        if names is not None:
            if not names:
                return []
            sql += f" WHERE name IN ({','.join('?' * len(names))})"
            values = tuple(names)
        rows = self.conn.execute(sql + " ORDER BY name", values).fetchall()
        return [ConcurrencyLimit(r[0], r[1], bool(r[2]), r[3]) for r in rows]

    def concurrency_slots(self, now: float | None = None) -> list[Slot]:
        """Slots that count, oldest first (their holders may be gone): those whose lease has
        not expired, and every held slot of this host (see `try_acquire_slots`)."""
        now = time.time() if now is None else now
        rows = self.conn.execute(
            f"SELECT {_SLOT_COLUMNS} FROM concurrency_slots"
            " WHERE expires > ? OR (held = 1 AND host = ?) ORDER BY acquired",
            (now, socket.gethostname()),
        ).fetchall()
        return [_slot(row) for row in rows]

    def try_acquire_slots(
        self,
        lease: str,
        names: Sequence[str],
        occupy: int,
        *,
        pid: int,
        host: str,
        task_run_id: str | None,
        holder: str | None,
        lease_seconds: float,
        gone: Callable[[Slot], bool],
        now: float | None = None,
    ) -> tuple[bool, list[SlotUsage]]:
        """Take `occupy` slots of every existing limit among `names`, or none, in one commit.

        Expired slots of these limits are deleted first, except the held slots of `host`:
        on the holder's own host a slot is held while its process lives, however long it
        went without renewing (stopped with Ctrl-Z, a suspended machine, a clock jump).
        When the slots do not fit, held slots whose holder `gone()` says is dead are
        deleted and the fit is checked again.
        A concurrency slot expires `lease_seconds` from now unless renewed; a rate-limit
        acquisition one second from now. Returns whether the slots were taken and each
        limit's usage (after taking them, or as it blocked). Names without a limit are
        ignored.
        """
        now = time.time() if now is None else now
        with self.transaction() as conn:
            limits = self.concurrency_limits(sorted(set(names)))
            if not limits:
                return True, []
            marks = ",".join("?" * len(limits))
            keys = tuple(limit.name for limit in limits)
            conn.execute(
                f"DELETE FROM concurrency_slots WHERE name IN ({marks}) AND expires <= ?"
                " AND (held = 0 OR host != ?)",
                (*keys, now, host),
            )
            usage = self._slot_usage(conn, limits)
            if any(u.in_use + occupy > u.limit for u in usage):
                rows = conn.execute(
                    f"SELECT {_SLOT_COLUMNS} FROM concurrency_slots"
                    f" WHERE name IN ({marks}) AND held = 1",
                    keys,
                ).fetchall()
                dead = {slot.lease for slot in map(_slot, rows) if gone(slot)}
                if dead:
                    conn.executemany(
                        "DELETE FROM concurrency_slots WHERE lease = ? AND held = 1",
                        [(d,) for d in dead],
                    )
                    usage = self._slot_usage(conn, limits)
            if any(u.in_use + occupy > u.limit for u in usage):
                return False, usage
            conn.executemany(
                f"INSERT INTO concurrency_slots ({_SLOT_COLUMNS}) VALUES (?,?,?,?,?,?,?,?,?,?,?)",
                [
                    (
                        lease,
                        limit.name,
                        occupy,
                        int(not limit.per_second),
                        pid,
                        host,
                        task_run_id,
                        holder,
                        now,
                        now + (1.0 if limit.per_second else lease_seconds),
                        _start_of(pid, host),
                    )
                    for limit in limits
                ],
            )
            for u in usage:
                u.in_use += occupy
            return True, usage

    @staticmethod
    def _slot_usage(conn: sqlite3.Connection, limits: list[ConcurrencyLimit]) -> list[SlotUsage]:
        marks = ",".join("?" * len(limits))
        taken = dict(
            conn.execute(
                "SELECT name, SUM(occupy) FROM concurrency_slots"
                f" WHERE name IN ({marks}) GROUP BY name",
                tuple(limit.name for limit in limits),
            ).fetchall()
        )
        return [
            SlotUsage(limit.name, int(taken.get(limit.name) or 0), limit.limit, limit.per_second)
            for limit in limits
        ]

    def renew_slots(self, leases: Sequence[str], expires: float) -> int:
        """Push back the expiry of these leases' held slots; how many slot rows were renewed."""
        if not leases:
            return 0
        marks = ",".join("?" * len(leases))
        with self.transaction() as conn:
            cursor = conn.execute(
                f"UPDATE concurrency_slots SET expires = ? WHERE lease IN ({marks}) AND held = 1",
                (expires, *leases),
            )
            return cursor.rowcount

    def release_slots(self, lease: str) -> None:
        """Give back a lease's held slots (rate-limit acquisitions keep counting)."""
        with self.transaction() as conn:
            conn.execute("DELETE FROM concurrency_slots WHERE lease = ? AND held = 1", (lease,))

    # -- retention --------------------------------------------------------------------

    def delete_runs_before(self, cutoff: float) -> int:
        """Delete finished runs created before `cutoff`, with their tasks and logs.

        A run that an unfinished run retries is kept, with its subflow runs: the retry may
        still resume from their results.
        """
        terminal = tuple(s.value for s in TERMINAL)
        marks = ",".join("?" * len(terminal))
        with self.transaction() as conn:
            conn.execute(
                "CREATE TEMP TABLE IF NOT EXISTS doomed (id TEXT PRIMARY KEY)",
            )
            conn.execute("DELETE FROM doomed")
            conn.execute(
                f"WITH RECURSIVE resumable(id) AS ({_RETRIED_BY_LIVE_RUNS}"
                " UNION SELECT f.id FROM flow_runs f JOIN resumable r ON f.parent_run_id = r.id)"
                " INSERT INTO doomed SELECT id FROM flow_runs WHERE created < ?"
                f" AND state IN ({marks}) AND id NOT IN (SELECT id FROM resumable)",
                (*_UNFINISHED, cutoff, *terminal),
            )
            conn.execute(
                "INSERT OR IGNORE INTO doomed SELECT DISTINCT flow_run_id FROM task_runs"
                " WHERE standalone = 1 AND created < ?",
                (cutoff,),
            )
            deleted = conn.execute("SELECT COUNT(*) FROM doomed").fetchone()[0]
            ranges = conn.execute(
                "SELECT num << 32, (num + 1) << 32 FROM run_numbers"
                " WHERE run_id IN (SELECT id FROM doomed)"
            ).fetchall()
            for table in ("state_history", "task_runs"):
                conn.executemany(f"DELETE FROM {table} WHERE num >= ? AND num < ?", ranges)
            for sql in (
                "DELETE FROM logs WHERE flow_run_id IN (SELECT id FROM doomed)",
                "DELETE FROM artifacts WHERE flow_run_id IN (SELECT id FROM doomed)",
                "DELETE FROM run_numbers WHERE run_id IN (SELECT id FROM doomed)",
                "DELETE FROM flow_runs WHERE id IN (SELECT id FROM doomed)",
            ):
                conn.execute(sql)
            conn.execute(
                "DELETE FROM cache_entries WHERE expires IS NOT NULL AND expires < ?",
                (time.time(),),
            )
        return int(deleted)

    def referenced_blobs(self) -> set[str]:
        refs: set[str] = set()
        for table in ("flow_runs", "task_runs", "cache_entries"):
            refs.update(
                row[0]
                for row in self.conn.execute(
                    f"SELECT result_ref FROM {table} WHERE result_ref IS NOT NULL"
                )
            )
        return refs

    def integrity_check(self) -> str:
        return str(self.conn.execute("PRAGMA integrity_check").fetchone()[0])

    # -- doctor -------------------------------------------------------------------------

    def integrity_problems(self, limit: int = 20) -> list[str]:
        """What `PRAGMA integrity_check` reports; empty when the database is sound."""
        try:
            rows = self.conn.execute(f"PRAGMA integrity_check({int(limit)})").fetchall()
        except sqlite3.DatabaseError as exc:
            return [str(exc)]
        problems = [str(row[0]) for row in rows]
        return [] if problems == ["ok"] else problems

    def blob_references(self) -> list[tuple[str, str, str]]:
        """(kind, row, digest) for every row that stores its result in a blob.

        kind is "flow run", "task run" or "cache entry"; row names it (a run id, a run id
        and call position, or a cache key).
        """
        refs: list[tuple[str, str, str]] = []
        for run_id, ref in self.conn.execute(
            "SELECT id, result_ref FROM flow_runs WHERE result_ref IS NOT NULL"
        ):
            refs.append(("flow run", run_id, ref))
        for run_id, position, ref in self.conn.execute(
            "SELECT flow_run_id, position, result_ref FROM task_runs WHERE result_ref IS NOT NULL"
        ):
            refs.append(("task run", f"{run_id}#{position}", ref))
        for key, ref in self.conn.execute(
            "SELECT key, result_ref FROM cache_entries WHERE result_ref IS NOT NULL"
        ):
            refs.append(("cache entry", key, ref))
        return refs

    def delete_cache_entries_for_blobs(self, digests: Iterable[str]) -> int:
        """Delete the cache entries whose result is one of these blobs; returns how many."""
        deleted = 0
        with self.transaction() as conn:
            for digest in digests:
                cursor = conn.execute("DELETE FROM cache_entries WHERE result_ref = ?", (digest,))
                deleted += cursor.rowcount
        return deleted

    # -- schedules ----------------------------------------------------------------------

    def schedule_mark(self, key: str, now: float) -> float:
        """The newest slot handled for schedule `key`; a new key is marked `now` first."""
        row = self.conn.execute(
            "SELECT last_fired FROM schedule_marks WHERE key = ?", (key,)
        ).fetchone()
        if row is not None:
            return float(row[0])
        with self.transaction() as conn:
            conn.execute(
                "INSERT OR IGNORE INTO schedule_marks (key, last_fired, updated) VALUES (?,?,?)",
                (key, now, now),
            )
            row = conn.execute(
                "SELECT last_fired FROM schedule_marks WHERE key = ?", (key,)
            ).fetchone()
        return float(row[0])

    def claim_slot(
        self,
        *,
        run_id: str,
        key: str,
        slot: float,
        flow_name: str,
        name: str,
        target: str,
        parameters: str,
        skip_reason: str | None = None,
        now: float | None = None,
    ) -> bool:
        """Claim one slot of a schedule: record its run SCHEDULED (or SKIPPED with the
        reason) and move the schedule's mark to the slot, in one transaction.

        False when a run with `run_id` already exists: the slot was claimed before (by
        another daemon, or before a restart), and nothing is written.
        """
        now = time.time() if now is None else now
        with self.transaction("slot_claimed") as conn:
            if conn.execute("SELECT 1 FROM flow_runs WHERE id = ?", (run_id,)).fetchone():
                self._mark(conn, key, slot, now)
                return False
            self.create_flow_run(
                run_id=run_id,
                flow_name=flow_name,
                name=name,
                parameters=parameters,
                state=StateName.SCHEDULED,
                target=target,
                trigger="schedule",
                now=now,
            )
            conn.execute(
                "INSERT INTO schedule_slots (run_id, key, slot) VALUES (?,?,?)",
                (run_id, key, slot),
            )
            if skip_reason is not None:
                self.set_flow_run_state(run_id, StateName.SKIPPED, skip_reason, now=now)
            self._mark(conn, key, slot, now)
        return True

    @staticmethod
    def _mark(conn: sqlite3.Connection, key: str, slot: float, now: float) -> None:
        conn.execute(
            "INSERT INTO schedule_marks (key, last_fired, updated) VALUES (?,?,?)"
            " ON CONFLICT (key) DO UPDATE SET"
            " last_fired = MAX(last_fired, excluded.last_fired), updated = excluded.updated",
            (key, slot, now),
        )

    def waiting_slots(self) -> list[ScheduledSlot]:
        """Claimed slots whose run has not started yet (SCHEDULED or LATE), oldest first."""
        rows = self.conn.execute(
            "SELECT s.run_id, s.key, s.slot, r.target, r.parameters, r.state FROM schedule_slots s"
            " JOIN flow_runs r ON r.id = s.run_id WHERE r.state IN ('SCHEDULED', 'LATE')"
            " ORDER BY s.slot, s.run_id"
        ).fetchall()
        return [ScheduledSlot(*row) for row in rows]

    def last_slot_runs(self) -> dict[str, ScheduledSlot]:
        """Per schedule key, the run of its newest claimed slot."""
        rows = self.conn.execute(
            "SELECT s.run_id, s.key, s.slot, r.target, r.parameters, r.state FROM schedule_slots s"
            " JOIN flow_runs r ON r.id = s.run_id"
            " WHERE s.slot = (SELECT MAX(slot) FROM schedule_slots WHERE key = s.key)"
        ).fetchall()
        return {row[1]: ScheduledSlot(*row) for row in rows}

    # -- triggers ---------------------------------------------------------------------

    def claim_trigger_run(
        self,
        *,
        run_id: str,
        key: str,
        flow_name: str,
        name: str,
        target: str,
        parameters: str,
        trigger: str,
        message: str | None = None,
        now: float | None = None,
    ) -> bool:
        """Record a trigger's run SCHEDULED (with `message`, e.g. what fired it) and a
        `schedule_slots` row under the trigger's key at `now`, so the daemon starts it like
        a scheduled run. False, writing nothing, when `run_id` already exists.
        """
        now = time.time() if now is None else now
        with self.transaction("trigger_run_claimed") as conn:
            if conn.execute("SELECT 1 FROM flow_runs WHERE id = ?", (run_id,)).fetchone():
                return False
            self.create_flow_run(
                run_id=run_id,
                flow_name=flow_name,
                name=name,
                parameters=parameters,
                state=StateName.SCHEDULED,
                message=message,
                target=target,
                trigger=trigger,
                now=now,
            )
            conn.execute(
                "INSERT INTO schedule_slots (run_id, key, slot) VALUES (?,?,?)",
                (run_id, key, now),
            )
        return True

    def ended_flow_runs(
        self, flow_names: Sequence[str], states: Sequence[str], since: float
    ) -> list[FlowRun]:
        """Runs of these flows that ended at or after `since` in one of `states`, by end."""
        if not flow_names or not states:
            return []
        names = ",".join("?" * len(flow_names))
        marks = ",".join("?" * len(states))
        rows = self.conn.execute(
            f"SELECT {_FLOW_RUN_COLUMNS} FROM flow_runs WHERE flow_name IN ({names})"
            f" AND state IN ({marks}) AND ended >= ? ORDER BY ended, id",
            (*flow_names, *states, since),
        ).fetchall()
        return [FlowRun(*row) for row in rows]

    def move_trigger_mark(self, key: str, mark: float, now: float | None = None) -> None:
        """Move a trigger's mark forward to `mark` (never back)."""
        now = time.time() if now is None else now
        with self.transaction() as conn:
            self._mark(conn, key, mark, now)

    # -- transaction records ----------------------------------------------------------

    def transaction_committed(self, key: str) -> bool:
        """Whether a transaction with this key has committed (`orchlite.transactions`)."""
        row = self.conn.execute(
            "SELECT 1 FROM transaction_records WHERE key = ?", (key,)
        ).fetchone()
        return row is not None

    def record_transaction(self, key: str, flow_run_id: str | None) -> None:
        """Record that the transaction with this key committed (again, with `overwrite`)."""
        with self.transaction() as conn:
            conn.execute(
                "INSERT OR REPLACE INTO transaction_records (key, flow_run_id, committed)"
                " VALUES (?, ?, ?)",
                (key, flow_run_id, time.time()),
            )

    # -- variables --------------------------------------------------------------------

    def set_variable(self, name: str, value: str, tags: str, *, overwrite: bool) -> bool:
        """Store a variable (JSON `value` and `tags`); False if it exists and not `overwrite`."""
        now = time.time()
        with self.transaction() as conn:
            if overwrite:
                conn.execute(
                    "INSERT INTO variables (name, value, tags, created, updated)"
                    " VALUES (?, ?, ?, ?, ?) ON CONFLICT(name) DO UPDATE SET"
                    " value = excluded.value, tags = excluded.tags, updated = excluded.updated",
                    (name, value, tags, now, now),
                )
                return True
            cursor = conn.execute(
                "INSERT OR IGNORE INTO variables (name, value, tags, created, updated)"
                " VALUES (?, ?, ?, ?, ?)",
                (name, value, tags, now, now),
            )
            return cursor.rowcount == 1

    def get_variable(self, name: str) -> tuple[str, str, float] | None:
        """(JSON value, JSON tags, when it was last set), or None."""
        row = self.conn.execute(
            "SELECT value, tags, updated FROM variables WHERE name = ?", (name,)
        ).fetchone()
        return None if row is None else (row[0], row[1], row[2])

    def delete_variable(self, name: str) -> bool:
        with self.transaction() as conn:
            return conn.execute("DELETE FROM variables WHERE name = ?", (name,)).rowcount == 1

    def list_variables(self) -> list[tuple[str, str, str, float]]:
        """(name, JSON value, JSON tags, updated) of every variable, by name."""
        rows = self.conn.execute(
            "SELECT name, value, tags, updated FROM variables ORDER BY name"
        ).fetchall()
        return [(r[0], r[1], r[2], r[3]) for r in rows]

    # -- artifacts --------------------------------------------------------------------

    def add_artifact(self, artifact: Artifact) -> None:
        artifact.data = redact(artifact.data) if redaction_active() else artifact.data
        artifact.description = redact_optional(artifact.description)
        with self.transaction() as conn:
            conn.execute(
                f"INSERT INTO artifacts ({_ARTIFACT_COLUMNS}) VALUES (?,?,?,?,?,?,?,?,?)",
                (
                    artifact.id,
                    artifact.key,
                    artifact.type,
                    artifact.data,
                    artifact.description,
                    artifact.flow_run_id,
                    artifact.task_run_id,
                    artifact.created,
                    artifact.updated,
                ),
            )

    def update_artifact(self, artifact_id: str, data: str, description: str | None) -> bool:
        """Replace an artifact's data (and description, when given); False if it is gone."""
        data = redact(data) if redaction_active() else data
        with self.transaction() as conn:
            cursor = conn.execute(
                "UPDATE artifacts SET data = ?, description = COALESCE(?, description),"
                " updated = ? WHERE id = ?",
                (data, redact_optional(description), time.time(), artifact_id),
            )
            return cursor.rowcount == 1

    def artifacts(
        self,
        *,
        key: str | None = None,
        flow_run_id: str | None = None,
        latest_per_key: bool = False,
        limit: int = 1000,
    ) -> list[Artifact]:
        """Artifacts, newest first: every version of `key`, those of one flow run (with its
        task runs'), or, with `latest_per_key`, the newest version of each key."""
        where, args = [], []
        if key is not None:
            where.append("key = ?")
            args.append(key)
        if flow_run_id is not None:
            where.append("flow_run_id = ?")
            args.append(flow_run_id)
        if latest_per_key:
            where.append(
                "key IS NOT NULL AND created = (SELECT MAX(created) FROM artifacts b"
                " WHERE b.key = artifacts.key)"
            )
        sql = f"SELECT {_ARTIFACT_COLUMNS} FROM artifacts"
        if where:
            sql += " WHERE " + " AND ".join(where)
        sql += " ORDER BY created DESC, id LIMIT ?"
        rows = self.conn.execute(sql, (*args, limit)).fetchall()
        return [Artifact(*row) for row in rows]

    # -- pauses -----------------------------------------------------------------------

    def pause_flow_run(
        self, run_id: str, key: str | None, schema: str | None, deadline: float, message: str
    ) -> None:
        """Record the run PAUSED, waiting until `deadline` for a resume request."""
        with self.transaction() as conn:
            conn.execute(
                "INSERT OR REPLACE INTO run_pauses (flow_run_id, key, schema, deadline, status,"
                " input, verdict, updated) VALUES (?, ?, ?, ?, 'waiting', NULL, NULL, ?)",
                (run_id, key, schema, deadline, time.time()),
            )
            self.set_flow_run_state(run_id, StateName.PAUSED, message)

    def pause_of(self, run_id: str) -> dict[str, Any] | None:
        """The run's pause: key, schema (JSON), deadline, status (waiting, submitted,
        accepted, refused), input (JSON) and verdict; None if it never paused."""
        row = self.conn.execute(
            "SELECT key, schema, deadline, status, input, verdict FROM run_pauses"
            " WHERE flow_run_id = ?",
            (run_id,),
        ).fetchone()
        if row is None:
            return None
        names = ("key", "schema", "deadline", "status", "input", "verdict")
        return dict(zip(names, row, strict=True))

    def request_resume(self, run_id: str, run_input: str | None) -> bool:
        """Leave a resume request for a PAUSED run; False if it is not waiting for one."""
        with self.transaction() as conn:
            cursor = conn.execute(
                "UPDATE run_pauses SET status = 'submitted', input = ?, verdict = NULL,"
                " updated = ? WHERE flow_run_id = ? AND status IN ('waiting', 'refused')"
                " AND EXISTS (SELECT 1 FROM flow_runs WHERE id = ? AND state = 'PAUSED')",
                (run_input, time.time(), run_id, run_id),
            )
            return cursor.rowcount == 1

    def settle_resume(self, run_id: str, accepted: bool, verdict: str | None = None) -> None:
        """The paused run's answer to a resume request: accepted (it runs again) or refused
        (it goes on waiting; `verdict` says why)."""
        with self.transaction() as conn:
            conn.execute(
                "UPDATE run_pauses SET status = ?, verdict = ?, updated = ? WHERE flow_run_id = ?",
                ("accepted" if accepted else "refused", verdict, time.time(), run_id),
            )
            if accepted:
                self.set_flow_run_state(run_id, StateName.RUNNING, "resumed")

    # -- flow-level retries under the daemon ------------------------------------------

    def set_retry_policy(self, run_id: str, policy: str) -> None:
        """Record the flow's retry policy (JSON) on its run, for the daemon to read."""
        with self.transaction() as conn:
            conn.execute("UPDATE flow_runs SET retry_policy = ? WHERE id = ?", (policy, run_id))

    def retry_policy(self, run_id: str) -> str | None:
        row = self.conn.execute(
            "SELECT retry_policy FROM flow_runs WHERE id = ?", (run_id,)
        ).fetchone()
        return None if row is None else row[0]

    def prior_attempts(self, run_id: str) -> int:
        """Attempts made by the earlier runs of this run's retry chain (0 for most runs)."""
        row = self.conn.execute(
            "SELECT prior_attempts FROM flow_runs WHERE id = ?", (run_id,)
        ).fetchone()
        return 0 if row is None else int(row[0])

    def claim_retry_run(
        self,
        *,
        run_id: str,
        retry_of: str,
        key: str,
        due: float,
        prior_attempts: int,
        message: str | None = None,
        now: float | None = None,
    ) -> bool:
        """Record the next attempt of run `retry_of` as a new SCHEDULED run (trigger
        "retry", same flow, target and parameters) with a `schedule_slots` row under `key`
        at `due`. False, writing nothing, when `run_id` already exists."""
        now = time.time() if now is None else now
        with self.transaction("retry_run_claimed") as conn:
            if conn.execute("SELECT 1 FROM flow_runs WHERE id = ?", (run_id,)).fetchone():
                return False
            if _live_retry(conn, retry_of, run_id) is not None:
                return False  # retried already, e.g. by hand with `orch retry`
            old = self.get_flow_run(retry_of)
            self.create_flow_run(
                run_id=run_id,
                flow_name=old.flow_name,
                name=old.name,
                parameters=old.parameters,
                state=StateName.SCHEDULED,
                message=message,
                target=old.target,
                trigger="retry",
                retry_of=retry_of,
                now=now,
            )
            conn.execute(
                "UPDATE flow_runs SET prior_attempts = ? WHERE id = ?", (prior_attempts, run_id)
            )
            conn.execute(
                "INSERT INTO schedule_slots (run_id, key, slot) VALUES (?,?,?)",
                (run_id, key, due),
            )
        return True

    def slot_key(self, run_id: str) -> str | None:
        """The schedule or trigger key a run was claimed under, if any."""
        row = self.conn.execute(
            "SELECT key FROM schedule_slots WHERE run_id = ?", (run_id,)
        ).fetchone()
        return None if row is None else row[0]

    def unretried_runs(
        self, states: Sequence[str], triggers: Sequence[str], since: float
    ) -> list[str]:
        """Top-level runs that ended in `states` at or after `since`, started by one of
        `triggers`, with a retry policy and no run that retries them; oldest first."""
        marks = ",".join("?" * len(states))
        kinds = ",".join("?" * len(triggers))
        rows = self.conn.execute(
            f"SELECT id FROM flow_runs r WHERE state IN ({marks}) AND trigger IN ({kinds})"
            " AND retry_policy IS NOT NULL AND parent_run_id IS NULL AND ended >= ?"
            " AND NOT EXISTS (SELECT 1 FROM flow_runs x WHERE x.retry_of = r.id)"
            " ORDER BY ended",
            (*states, *triggers, since),
        ).fetchall()
        return [row[0] for row in rows]


@dataclass(slots=True)
class ScheduledSlot:
    """A slot a schedule fired for, and its run."""

    run_id: str
    key: str
    slot: float
    target: str | None
    parameters: str
    state: str


def _flow_and_state(
    flow: str | Sequence[str] | None, state: str | Sequence[str] | None
) -> tuple[list[str], list[Any]]:
    """WHERE terms and their values for the listings' flow and state filters (one or any of
    several values each)."""
    where: list[str] = []
    values: list[Any] = []
    for column, wanted in (("flow_name", flow), ("state", state)):
        if wanted is None:
            continue
        names = [wanted] if isinstance(wanted, str) else list(wanted)
        where.append(f"{column} IN ({', '.join('?' * len(names))})")
        values += names
    return where, values


class _Transaction:
    """The context manager behind `Store.transaction()` (a class: it is on the hot path)."""

    __slots__ = ("conn", "fault", "nested", "store")

    def __init__(self, store: Store, conn: sqlite3.Connection, fault: str = "") -> None:
        self.store = store
        self.conn = conn
        self.nested = False
        self.fault = fault

    def __enter__(self) -> sqlite3.Connection:
        if self.conn.in_transaction:
            self.nested = True
            self.conn.execute("SAVEPOINT nested")
        else:
            self.store._begin(self.conn)
        return self.conn

    def __exit__(self, kind: object, exc: object, tb: object) -> None:
        conn = self.conn
        if self.nested:
            if kind is not None:
                conn.execute("ROLLBACK TO nested")
            conn.execute("RELEASE nested")
            return
        if kind is not None:
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            if _is_full(exc):
                raise DiskFullError(self.store.path) from None
            return
        try:
            conn.execute("COMMIT")
        except sqlite3.DatabaseError as err:
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            if _is_full(err):
                raise DiskFullError(self.store.path) from None
            raise StoreError(f"cannot write {self.store.path}: {err}") from None
        if self.fault:
            fault_point(self.fault)


_SLOT_COLUMNS = (
    "lease, name, occupy, held, pid, host, task_run_id, holder, acquired, expires, pid_start"
)


_UNFINISHED = tuple(s.value for s in StateName if s not in TERMINAL)
_RETRIED_BY_LIVE_RUNS = (
    "SELECT retry_of FROM flow_runs WHERE state IN"
    f" ({','.join('?' * len(_UNFINISHED))}) AND retry_of IS NOT NULL"
)
"""The runs that an unfinished run retries (the unfinished states given as parameters)."""


def _live_retry(conn: sqlite3.Connection, retry_of: str, run_id: str) -> tuple[str, str] | None:
    """(id, state) of an unfinished run other than `run_id` that retries `retry_of`."""
    marks = ",".join("?" * len(_UNFINISHED))
    row = conn.execute(
        f"SELECT id, state FROM flow_runs WHERE state IN ({marks}) AND retry_of = ? AND id != ?"
        " ORDER BY created LIMIT 1",
        (*_UNFINISHED, retry_of, run_id),
    ).fetchone()
    return None if row is None else (row[0], row[1])


def _start_of(pid: int | None, host: str | None) -> str | None:
    """When process `pid` of `host` started, if it runs here; None otherwise."""
    if pid is None or host != socket.gethostname():
        return None
    return process_start(pid)


def _slot(row: Sequence[Any]) -> Slot:
    return Slot(row[0], row[1], row[2], bool(row[3]), *row[4:])


_WAITING = frozenset({StateName.SCHEDULED.value, StateName.LATE.value, StateName.PENDING.value})


# The crash points (`orchlite.faults`) after the commits of flow and task run states.
_FLOW_STATE_FAULTS = {StateName.RUNNING: "run_started"} | {s: "run_finished" for s in TERMINAL}
_TASK_SAVED_FAULTS = {
    StateName.RUNNING.value: "task_started",
    StateName.COMPLETED.value: "task_result_recorded",
    StateName.CACHED.value: "task_result_recorded",
}


@functools.lru_cache(maxsize=64)
def _history_insert(no_position: bool, messages: tuple[bool, ...]) -> str:
    """One INSERT statement for history rows with or without (NULL) a message each."""
    position = "NULL" if no_position else "?"
    rows = ",".join(f"(?,?,{position},?,{'?' if m else 'NULL'},?)" for m in messages)
    return f"INSERT INTO state_history (num, run_id, position, state, message, ts) VALUES {rows}"


_LAST_HISTORY_ROW = (
    "SELECT num FROM state_history WHERE num >= ? AND num < ? ORDER BY num DESC LIMIT 1"
)


def _insert_history_after(
    conn: sqlite3.Connection,
    last: int,
    run_id: str,
    position: int | None,
    states: Sequence[tuple[str, str | None, float]],
) -> int:
    """Insert `states` as the history rows numbered from `last + 1`; returns the last num.

    A missing position or message is written as a NULL literal, not bound (see
    `_task_run_row`).
    """
    head = (run_id,) if position is None else (run_id, position)
    values: list[Any] = []
    messages: list[bool] = []
    for num, (state, message, ts) in enumerate(states, last + 1):
        if message is None:
            values += (num, *head, state, ts)
        else:
            values += (num, *head, state, redact(message), ts)
        messages.append(message is not None)
    conn.execute(_history_insert(position is None, tuple(messages)), values)
    return last + len(states)


def _task_run_row(num: int, run: TaskRun) -> tuple[str, tuple[Any, ...]]:
    """The upsert of a task run's row and its parameters.

    The sqlite3 module looks for an adapter for every None (and bytes) value it binds,
    which costs more than binding the rest of the row; a row with no message, error or
    blob (most writes) gets a statement with NULL literals in their place instead.
    """
    if (
        run.state_message is None
        and run.result_ref is None
        and run.error_type is None
        and run.error_message is None
        and run.traceback is None
    ):
        return _UPSERT_PLAIN_TASK_RUN, (
            num,
            run.flow_run_id,
            run.position,
            run.id,
            run.standalone,
            run.task_key,
            run.name,
            run.dynamic_key,
            run.state,
            run.attempts,
            run.inputs_hash,
            run.cache_key,
            run.result_serializer,
            run.created,
            run.started,
            run.ended,
            run.tags,
            run.upstream,
            run.result_data,
            run.result_preview,
        )
    return _UPSERT_TASK_RUN, (
        num,
        run.flow_run_id,
        run.position,
        run.id,
        run.standalone,
        run.task_key,
        run.name,
        run.dynamic_key,
        run.state,
        redact_optional(run.state_message),
        run.attempts,
        run.inputs_hash,
        run.cache_key,
        run.result_ref,
        run.result_serializer,
        run.error_type,
        redact_optional(run.error_message),
        redact_optional(run.traceback),
        run.created,
        run.started,
        run.ended,
        run.tags,
        run.upstream,
        run.result_data,
        run.result_preview,
    )


def _like_pattern(text: str) -> str:
    """A LIKE pattern (with ESCAPE '\\') matching `text` anywhere, taken literally."""
    return "%" + "".join("\\" + c if c in "\\%_" else c for c in text) + "%"


def _statements(script: str) -> list[str]:
    return [part.strip() for part in script.split(";") if part.strip()]


def _make_home(home: Path) -> None:
    try:
        home.mkdir(mode=0o700, parents=True, exist_ok=True)
    except OSError as exc:
        raise StoreError(f"cannot create {home}: {exc.strerror or exc}") from None
    if not os.access(home, os.W_OK | os.X_OK):
        raise StoreError(f"{home} is not writable")


def _create_database(path: Path) -> None:
    """Create `orch.db` whole: built under a temporary name, then linked into place.

    So an `orch.db` is never seen empty, and a zero-byte one is always a damaged store,
    reported as such instead of silently becoming a new one. The file is created owner-only
    (SQLite gives the -wal and -shm files the database's mode), whatever the umask. When two
    processes create a store at once, the first link wins and the other build is dropped.
    """
    try:
        fd, name = tempfile.mkstemp(dir=path.parent, prefix=".orch.db-new-")
    except OSError as exc:
        if exc.errno in NO_SPACE_ERRNOS:
            raise DiskFullError(path) from None
        raise StoreError(f"cannot create {path}: {exc.strerror or exc}") from None
    os.close(fd)
    tmp = Path(name)
    try:
        _build_schema(tmp, path)
        _link_into_place(tmp, path)
    finally:
        for leftover in (tmp, tmp.with_name(tmp.name + "-wal"), tmp.with_name(tmp.name + "-shm")):
            leftover.unlink(missing_ok=True)


def _build_schema(tmp: Path, path: Path) -> None:
    """Apply every migration to the new database `tmp` (to become `path`), in one go."""
    conn: sqlite3.Connection | None = None
    try:
        conn = sqlite3.connect(tmp, isolation_level=None)
        conn.execute("PRAGMA journal_mode = WAL")
        conn.execute("BEGIN IMMEDIATE")
        for script in MIGRATIONS:
            for statement in _statements(script):
                conn.execute(statement)
        conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")
        conn.execute("COMMIT")
    except sqlite3.DatabaseError as exc:
        if _is_full(exc) or no_space_left(path.parent):
            raise DiskFullError(path) from None
        raise StoreError(f"cannot create {path}: {exc}") from None
    finally:
        if conn is not None:
            conn.close()  # merges the WAL into the file, so the link below is whole


def _link_into_place(tmp: Path, path: Path) -> None:
    try:
        os.link(tmp, path)
    except FileExistsError:
        pass  # another process created it first
    except OSError as exc:
        if exc.errno in NO_SPACE_ERRNOS:
            raise DiskFullError(path) from None
        if path.exists():
            return
        try:  # a filesystem without hard links
            os.rename(tmp, path)
        except OSError as err:
            raise StoreError(f"cannot create {path}: {err.strerror or err}") from None


def _size(path: Path) -> int:
    try:
        return path.stat().st_size
    except FileNotFoundError:
        return 0


FULL_BELOW_BYTES = 64 * 1024
"""Less free space than this where `.orch/` lives counts as a full disk: SQLite cannot even
make the 32 KiB WAL index a reader needs."""


def no_space_left(folder: Path) -> bool:
    """True when the filesystem holding `folder` is (nearly) full for this user."""
    try:
        info = os.statvfs(folder)
    except OSError:
        return False
    return info.f_bavail * info.f_frsize < FULL_BELOW_BYTES


def _restrict(path: Path) -> None:
    with contextlib.suppress(OSError):
        path.chmod(0o600)
