"""Applying the schema's migrations (`migrations`), and creating a new database whole.

`PRAGMA user_version` is the number of migrations applied, bumped in the same transaction
as the migrations themselves.
"""

from __future__ import annotations

import os
import sqlite3
import tempfile
from pathlib import Path

from ..errors import NO_SPACE_ERRNOS, DiskFullError, StoreError
from .files import is_full, no_space_left
from .migrations import MIGRATIONS, SCHEMA_VERSION


def statements(script: str) -> list[str]:
    return [part.strip() for part in script.split(";") if part.strip()]


def upgrade(conn: sqlite3.Connection, version: int) -> None:
    """Apply the migrations after `version`, each bumping `user_version`, in the caller's
    transaction."""
    for number in range(version, SCHEMA_VERSION):
        for statement in statements(MIGRATIONS[number].sql):
            conn.execute(statement)
        conn.execute(f"PRAGMA user_version = {number + 1}")


def create_database(path: Path) -> None:
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
        upgrade(conn, 0)
        conn.execute("COMMIT")
    except sqlite3.DatabaseError as exc:
        if is_full(exc) or no_space_left(path.parent):
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
