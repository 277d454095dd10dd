"""What the flow health screen shows, read in its polling thread (`poller.Poller`).

A health load reads every run of two windows (up to tens of thousands), so unlike the other
screens it does not follow each commit: with a daemon committing every second beside it,
it loads again once a second at most, and never spends more than `COST_SHARE` of a core
on it. The window slides with the clock, so it loads again every `REFRESH_SECONDS` anyway.
Nothing here imports Textual.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from ..health import WINDOWS, FlowHealth, flow_health
from ..store import Store
from .poller import LoadError, Poller

MIN_SECONDS = 1.0
"""Between two loads at least this long, however often the store changes."""
COST_SHARE = 0.05
"""And at least the last load's time divided by this (a 50 ms load: one a second at most)."""
REFRESH_SECONDS = 60.0
"""Loaded again at least this often, even when nothing changed: the window moved on."""


@dataclass
class HealthSnapshot:
    window: str
    """The window's name (`health.WINDOWS`)."""
    flows: list[FlowHealth] = field(default_factory=list)
    store_exists: bool = True


def load_health(store: Store, window: str, now: float) -> HealthSnapshot:
    """Every flow's health over `window` up to `now`."""
    seconds = WINDOWS[window]
    runs = store.health_runs(now - 2 * seconds)
    return HealthSnapshot(window, flow_health(runs, now=now, window=seconds))


class HealthWatcher:
    """Has the same `tick(force)` / `close()` shape as `reader.Poller`; `window()` gives the
    window wanted (read on each load; the screen forces a tick when it changes)."""

    def __init__(
        self,
        home: Path,
        window: Callable[[], str],
        clock: Callable[[], float],
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self.window = window
        self.clock = clock
        self.monotonic = monotonic
        self.poller: Poller[HealthSnapshot] = Poller(
            home,
            lambda store: load_health(store, self.window(), self.clock()),
            missing=lambda: HealthSnapshot(self.window(), store_exists=False),
        )
        self.loaded_at: float | None = None
        self.pause = MIN_SECONDS

    def tick(self, force: bool = False) -> HealthSnapshot | LoadError | None:
        now = self.monotonic()
        if not force and self.loaded_at is not None and now - self.loaded_at < self.pause:
            return None  # the store's change stays unread until then
        stale = self.loaded_at is None or now - self.loaded_at >= REFRESH_SECONDS
        result = self.poller.tick(force or stale)
        if result is not None:
            took = self.monotonic() - now
            self.loaded_at = now
            self.pause = max(MIN_SECONDS, took / COST_SHARE)
        return result

    def close(self) -> None:
        self.poller.close()
