"""Letting go of the watchers that closed widgets leave behind.

Textual keeps a watcher on the object watched until that object's value next changes: every
`Header` watches the app's `title` and `sub_title`, every footer key its footer's `compact`.
Those rarely change, so each closed screen's header, and each footer key redrawn when a
screen comes back, would stay in memory for the whole session.
"""

from __future__ import annotations

from typing import Any


def drop_closed_watchers(*watched: Any) -> None:
    """Forget the watchers of `watched` whose owner has closed (or is closing)."""
    for obj in watched:
        for entries in getattr(obj, "__watchers", {}).values():
            entries[:] = [(owner, callback) for owner, callback in entries if not owner._closing]
