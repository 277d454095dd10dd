"""What the schedules screen shows: `daemon.listing()` and `daemon.status()`, reloaded cheaply.

A `BoardWatcher` tick compares a few stamps (the project files' mtimes, the store's
`data_version`, the daemon's pid file and lock, and the clock's half minute, since next fire
times move with time) and only then calls the two daemon functions, which parse the
project and read the store. Nothing here imports Textual.
"""

from __future__ import annotations

import datetime as dt
import os
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..config import project_root
from ..operations import PID_FILE, is_running, listing, status
from ..project import fingerprint
from ..store import DB_NAME, Store

RELOAD_SECONDS = 30.0
"""Next fire times are recomputed at least this often, even when nothing changed."""


@dataclass
class Board:
    schedules: list[dict[str, Any]] = field(default_factory=list)
    triggers: list[dict[str, Any]] = field(default_factory=list)
    errors: list[dict[str, Any]] = field(default_factory=list)
    daemon: dict[str, Any] = field(default_factory=dict)


def load_board(home: Path, now: float) -> Board:
    """Every schedule and trigger with next fire times and last runs, and the daemon's status."""
    when = dt.datetime.fromtimestamp(now, dt.timezone.utc)
    found = listing(home, project_root(home), when, read_only=True)
    return Board(
        found["schedules"], found["triggers"], found["errors"], status(home, read_only=True)
    )


class BoardWatcher:
    """Has the same `tick(force)` / `close()` shape as `reader.Poller`."""

    def __init__(self, home: Path, clock: Callable[[], float]) -> None:
        self.home = home
        self.clock = clock
        self.root = project_root(home)
        self.store: Store | None = None
        self.stamp: tuple[Any, ...] | None = None

    def _stamp(self, now: float) -> tuple[Any, ...]:
        if self.store is None and (self.home / DB_NAME).exists():
            self.store = Store(self.home, read_only=True)
        version = self.store.data_version() if self.store is not None else None
        try:
            pid_file: int | None = os.stat(self.home / PID_FILE).st_mtime_ns
        except OSError:
            pid_file = None
        return (
            fingerprint(self.root),
            version,
            pid_file,
            is_running(self.home),
            int(now // RELOAD_SECONDS),
        )

    def tick(self, force: bool = False) -> Board | None:
        try:
            now = self.clock()
            stamp = self._stamp(now)
            if stamp == self.stamp and not force:
                return None
            self.stamp = stamp
            return load_board(self.home, now)
        except Exception as exc:  # a broken project is shown on the screen, never raised
            self.stamp = None
            message = f"{type(exc).__name__}: {exc}"
            return Board(errors=[{"source": "orch", "where": str(self.root), "message": message}])

    def close(self) -> None:
        if self.store is not None:
            self.store.close()
            self.store = None
