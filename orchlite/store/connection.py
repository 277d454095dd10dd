"""The connection to `orch.db`: pragmas, busy handling, transactions and savepoints.

Each thread gets its own connection. Every write runs in a `BEGIN IMMEDIATE` transaction, so
writers queue on the busy handler instead of failing half-way with "database is locked"; a
transaction opened inside another becomes a savepoint of it.
"""

from __future__ import annotations

import os
import sqlite3
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

from ..config import check_home
from ..errors import DiskFullError, EmptyStoreError, SchemaTooNewError, StoreError
from ..faults import fault_point
from .files import is_full, make_home, no_space_left, restrict, size
from .migrations import SCHEMA_VERSION
from .schema import create_database, upgrade

BUSY_TIMEOUT_MS = 60_000
"""Long, because the CLI, the daemon, child runs and the TUI share one file; a write that
still cannot get the lock is retried before it is reported."""
WAL_AUTOCHECKPOINT_PAGES = 8_000
DB_NAME = "orch.db"

_D = TypeVar("_D", bound="Database")


class Database:
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
        self._connections: dict[sqlite3.Connection, threading.Thread] = {}
        """Every open connection, and the thread it belongs to."""
        self._generation = 0
        """How many times `close` was called: a thread's connection from before the last
        `close` is closed by that thread, at its next use of the store."""
        self._lock = threading.Lock()
        self._numbers: dict[str, int] = {}
        """Run numbers (migration 6) this process has seen committed, by run id."""
        self.read_only = read_only
        """True when asked for, or when opened with `create=False` in a `.orch/` this
        process cannot write."""
        self._writable_home = True
        self._frozen_by_full_disk = False
        """True when the disk is full and this store could only be opened to read (see
        `_connect`); a write then fails with DiskFullError."""
        if create and not read_only:
            make_home(home)
            check_home(home)
            if not self.path.exists():
                create_database(self.path)
        elif not self.path.exists():
            raise StoreError(f"no orchlite store at {home}")
        else:
            check_home(home)
            self._writable_home = os.access(home, os.W_OK | os.X_OK) and os.access(
                self.path, os.R_OK | os.W_OK
            )
            self.read_only = read_only or not self._writable_home
        self._prepare()

    # -- connections ------------------------------------------------------------------

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
            self._connections[conn] = threading.current_thread()
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
        if size(wal) > 0:
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
                self._connections[conn] = threading.current_thread()
            return conn
        raise StoreError(f"cannot read {self.path} (read-only): {last}")

    @property
    def conn(self) -> sqlite3.Connection:
        local = self._local
        conn: sqlite3.Connection | None = getattr(local, "conn", None)
        if conn is None or local.generation != self._generation:
            if conn is not None:
                self.close_thread_connection()  # from before `close`: this thread's to close
            conn = self._connect()
            local.conn, local.generation = conn, self._generation
        return conn

    def close_thread_connection(self) -> None:
        """Close the calling thread's connection, if it has one (a thread that ends)."""
        conn: sqlite3.Connection | None = getattr(self._local, "conn", None)
        if conn is None:
            return
        self._local.conn = None
        with self._lock:
            self._connections.pop(conn, None)
        conn.close()

    def close(self) -> None:
        """Close this thread's connection and those of threads that have ended.

        A connection of another live thread (the recorder's, say) may be in use by it at
        this very moment, and SQLite must not be closed under a running statement: that
        thread closes it itself, at its next use of the store or as it ends.
        """
        here = threading.current_thread()
        with self._lock:
            self._generation += 1
            for conn, owner in list(self._connections.items()):
                if owner is here or not owner.is_alive():
                    del self._connections[conn]
                    conn.close()
        self._local.conn = None

    def __enter__(self: _D) -> _D:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- transactions -----------------------------------------------------------------

    def transaction(self, fault: str = "") -> _Transaction:
        """A `BEGIN IMMEDIATE` write transaction; nested calls become savepoints.

        `fault` names the crash point (`orchlite.faults`) just after its commit.
        """
        return _Transaction(self, self.conn, fault)

    def after_commit(self, fn: Callable[[], None]) -> None:
        """Call `fn` once this thread's write transaction commits (now, if none is open).

        Dropped if that transaction rolls back: what `fn` reacts to never happened.
        """
        if not self.conn.in_transaction:
            fn()
            return
        pending: list[Callable[[], None]] | None = getattr(self._local, "after_commit", None)
        if pending is None:
            pending = self._local.after_commit = []
        pending.append(fn)

    def _take_after_commit(self) -> list[Callable[[], None]]:
        pending: list[Callable[[], None]] | None = getattr(self._local, "after_commit", None)
        if not pending:
            return []
        self._local.after_commit = None
        return pending

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

    # -- schema -----------------------------------------------------------------------

    def _prepare(self) -> None:
        if size(self.path) == 0 and size(self.path.with_name(self.path.name + "-wal")) == 0:
            # A new database is created whole (`create_database`): an empty one lost its data.
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
                upgrade(conn, conn.execute("PRAGMA user_version").fetchone()[0])
        restrict(self.path)

    # -- upkeep -----------------------------------------------------------------------

    def checkpoint(self) -> None:
        """Copy the WAL back into the database without blocking readers or writers."""
        self.conn.execute("PRAGMA wal_checkpoint(PASSIVE)")

    def data_version(self) -> int:
        """Changes whenever another connection commits: cheap change detection for pollers."""
        return int(self.conn.execute("PRAGMA data_version").fetchone()[0])


class _Transaction:
    """The context manager behind `Database.transaction()` (a class: it is on the hot path).

    A savepoint is rolled back only while its transaction is still open: SQLite itself rolls
    back the whole transaction on some errors (a full disk, say), and `ROLLBACK TO` would then
    fail with "no such savepoint", hiding the error that caused it.
    """

    __slots__ = ("conn", "database", "fault", "mark", "nested")

    def __init__(self, database: Database, conn: sqlite3.Connection, fault: str = "") -> None:
        self.database = database
        self.conn = conn
        self.nested = False
        self.fault = fault
        self.mark = 0
        """How many after-commit calls were queued when this savepoint began."""

    def __enter__(self) -> sqlite3.Connection:
        if self.conn.in_transaction:
            self.nested = True
            self.mark = len(getattr(self.database._local, "after_commit", None) or ())
            self.conn.execute("SAVEPOINT nested")
        else:
            self.database._begin(self.conn)
        return self.conn

    def __exit__(self, kind: object, exc: object, tb: object) -> None:
        conn = self.conn
        if self.nested:
            if kind is None:
                conn.execute("RELEASE nested")
            elif conn.in_transaction:
                conn.execute("ROLLBACK TO nested")
                conn.execute("RELEASE nested")
                pending = getattr(self.database._local, "after_commit", None)
                if pending:
                    del pending[self.mark :]  # what the savepoint undid never happened
            return
        if kind is not None:
            self.database._take_after_commit()
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            if is_full(exc):
                raise DiskFullError(self.database.path) from None
            return
        try:
            conn.execute("COMMIT")
        except sqlite3.DatabaseError as err:
            self.database._take_after_commit()
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            if is_full(err):
                raise DiskFullError(self.database.path) from None
            raise StoreError(f"cannot write {self.database.path}: {err}") from None
        if self.fault:
            fault_point(self.fault)
        for fn in self.database._take_after_commit():
            fn()


def _is_busy(exc: sqlite3.OperationalError) -> bool:
    text = str(exc).lower()
    return "locked" in text or "busy" in text
