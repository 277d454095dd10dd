"""When the screens read the store: a `Poller` asks SQLite's `data_version` (one pragma,
microseconds) on every tick and only runs its loader when another connection committed
since the last load, so an idle TUI costs next to nothing however many runs the store
holds. The store is opened read-only (`Store(read_only=True)`), so a view takes no write
lock and never holds up a writer. What each screen reads is in `reader`.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Generic, TypeVar

from ..errors import OrchError
from ..store import DB_NAME, Store

T = TypeVar("T")


@dataclass
class LoadError:
    message: str


class Follower:
    """A loader that keeps what it read from one store, to read only what changed next
    time; `Poller` calls `reset()` when the store it reads is replaced by another."""

    def reset(self) -> None:
        raise NotImplementedError


class Poller(Generic[T]):
    """Runs `load(store)` when the store changed (or when asked to); see the module doc.

    `load` returning None means "nothing new". Before the store exists, `missing()` is
    delivered once, and the poller keeps watching for the database file to appear.
    """

    def __init__(
        self,
        home: Path,
        load: Callable[[Store], T | None],
        missing: Callable[[], T | None] = lambda: None,
    ) -> None:
        self.home = home
        self.database = os.fspath(home / DB_NAME)
        """The database file's path, made once: `tick` looks at the file on every poll."""
        self.load = load
        self.missing = missing
        self.store: Store | None = None
        self.version: int | None = None
        self.identity: tuple[int, int] | None = None
        """The database file's (device, inode) when the store was opened."""
        self._reported_missing = False
        self._open_failures = 0

    def tick(self, force: bool = False) -> T | LoadError | None:
        """One poll: a new snapshot, an error to show, or None when nothing changed."""
        try:
            if self.store is not None and _identity(self.database) != self.identity:
                self._replaced()
            if self.store is None:
                if not os.path.exists(self.database):
                    if self._reported_missing and not force:
                        return None
                    self._reported_missing = True
                    return self.missing()
                self.store = self._open()
                if self.store is None:
                    return None
            version = self.store.data_version()
            if version == self.version and not force:
                return None
            self.version = version
            return self.load(self.store)
        except OrchError as exc:
            self.version = None  # try again next tick
            return LoadError(str(exc))

    def _replaced(self) -> None:
        """The database file was deleted or replaced (`.orch/` removed, a backup restored):
        what was read from the old one goes, and the new one is read from the start."""
        self.close()
        self.version = None
        self._reported_missing = False
        if isinstance(self.load, Follower):
            self.load.reset()

    def _open(self) -> Store | None:
        """The store, read-only; None the first time it cannot be opened yet (a writer that
        just created the file may still be writing its schema), an error the next time."""
        identity = _identity(self.database)
        try:
            store = Store(self.home, read_only=True)
        except OrchError:
            self._open_failures += 1
            if self._open_failures > 1:
                raise
            return None
        self._open_failures = 0
        self.identity = identity
        return store

    def close(self) -> None:
        if self.store is not None:
            self.store.close()
            self.store = None


def _identity(database: str) -> tuple[int, int] | None:
    """The database file's (device, inode); None when there is none."""
    try:
        found = os.stat(database)
    except OSError:
        return None
    return found.st_dev, found.st_ino


@dataclass
class Wakeup:
    """Tells a polling thread to poll now (and to reload even if nothing changed)."""

    event: threading.Event = field(default_factory=threading.Event)
    stopped: bool = False

    def poke(self) -> None:
        self.event.set()

    def stop(self) -> None:
        self.stopped = True
        self.event.set()

    def wait(self, seconds: float) -> bool:
        """Sleep up to `seconds`; True if poked (consumes the poke). A poke that comes as the
        sleep times out is kept for the next wait, never cleared unseen."""
        poked = self.event.wait(seconds)
        if poked:
            self.event.clear()
        return poked
