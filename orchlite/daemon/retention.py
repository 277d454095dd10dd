"""Retention: deleting old finished runs and the blobs nothing references any more.

`orch gc` calls `collect_garbage` once; the daemon's `Retention` calls it at start and then
once a day, deleting finished runs older than `[daemon] retention_days` of orch.toml
(default 30; 0 turns it off).
"""

from __future__ import annotations

from collections.abc import Callable

from ..store import Store

GC_EVERY_SECONDS = 86400.0
"""The daemon collects garbage this often (and once at start)."""
DAY_SECONDS = 86400.0


def collect_garbage(store: Store, cutoff: float) -> tuple[int, int]:
    """What `orch gc` does: delete finished runs created before `cutoff` (with their tasks
    and logs), then unreferenced blobs; returns (runs deleted, blobs pruned)."""
    from ..blobs import BlobStore

    deleted = store.delete_runs_before(cutoff)
    pruned = BlobStore(store.home / "blobs").prune(store.referenced_blobs())
    return deleted, pruned


class Retention:
    """The daemon's housekeeping: `collect_garbage` with the project's retention, daily."""

    def __init__(self, store: Store, log: Callable[[str], None], days: float) -> None:
        self.store = store
        self.log = log
        self.days = days
        """Runs older than this many days are deleted; 0 or less turns retention off."""
        self._last: float | None = None

    def maybe_collect(self, now: float) -> tuple[int, int] | None:
        """Once a day (and the first time): `orch gc` with the project's retention; None if
        not due, turned off, or failed (the failure is logged)."""
        if self.days <= 0:
            return None
        if self._last is not None and now - self._last < GC_EVERY_SECONDS:
            return None
        self._last = now
        try:
            deleted, pruned = collect_garbage(self.store, now - self.days * DAY_SECONDS)
        except Exception as exc:  # never let housekeeping stop the scheduler
            self.log(f"error: retention cleanup failed: {exc}")
            return None
        if deleted or pruned:
            self.log(
                f"retention: deleted {deleted} run(s) older than {self.days:g} day(s)"
                f" and {pruned} unreferenced blob(s)"
            )
        return deleted, pruned
