"""The runs picked on the runs screen for a bulk cancel or retry (`bulk_actions`).

Only runs on screen are selected: a run that leaves the screen (the filters changed, or it
no longer matches them) leaves the selection, so an action never reaches a run the user
cannot see. A selected row shows `MARK` in its first cell.
"""

from __future__ import annotations

from collections.abc import Container, Iterable, Iterator

from rich.text import Text

MARK = "●"


def mark_cell(selected: bool, short_id: str = "") -> Text:
    """The first cell of a row: the mark (or a blank of its width), then the short id if
    given."""
    cell = Text(MARK if selected else " ", style="bold")
    if short_id:
        cell.append(" " + short_id, style="dim")
    return cell


class Selection:
    """Run ids in the order they were picked."""

    def __init__(self) -> None:
        self._ids: dict[str, None] = {}

    def __contains__(self, run_id: object) -> bool:
        return run_id in self._ids

    def __len__(self) -> int:
        return len(self._ids)

    def __iter__(self) -> Iterator[str]:
        return iter(list(self._ids))

    def toggle(self, run_id: str) -> None:
        if run_id in self._ids:
            del self._ids[run_id]
        else:
            self._ids[run_id] = None

    def add(self, run_ids: Iterable[str]) -> list[str]:
        """Select these runs too; returns those that were not selected yet."""
        added = [run_id for run_id in run_ids if run_id not in self._ids]
        self._ids.update(dict.fromkeys(added))
        return added

    def keep(self, run_ids: Container[str]) -> list[str]:
        """Keep only the selected runs among `run_ids`; returns those dropped."""
        dropped = [run_id for run_id in self._ids if run_id not in run_ids]
        for run_id in dropped:
            del self._ids[run_id]
        return dropped

    def clear(self) -> list[str]:
        """Select nothing; returns the runs that were selected."""
        dropped = list(self._ids)
        self._ids.clear()
        return dropped
