"""The store's files on disk: its home folder, their modes, and running out of space."""

from __future__ import annotations

import contextlib
import os
import sqlite3
from pathlib import Path

from ..errors import StoreError

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


def is_full(exc: object) -> bool:
    """SQLITE_FULL: "database or disk is full"."""
    return isinstance(exc, sqlite3.DatabaseError) and "disk is full" in str(exc)


def make_home(home: Path) -> None:
    try:
        home.mkdir(mode=0o700, parents=True, exist_ok=True)
    except OSError as exc:
        raise StoreError(f"cannot create {home}: {exc.strerror or exc}") from None
    if not os.access(home, os.W_OK | os.X_OK):
        raise StoreError(f"{home} is not writable")


def size(path: Path) -> int:
    try:
        return path.stat().st_size
    except FileNotFoundError:
        return 0


def restrict(path: Path) -> None:
    with contextlib.suppress(OSError):
        path.chmod(0o600)
