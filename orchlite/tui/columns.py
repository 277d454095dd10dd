"""A DataTable whose columns fit their text and the terminal, and shrink as well as grow.

Textual's auto-width columns only ever grow (one long run name pushes the columns after it
off-screen for the rest of the session), count characters rather than terminal cells, and
keep lines drawn before the widths settled. Here every column is as wide as its widest
cell, measured in cells (`rich.cells.cell_len`: emoji and CJK take two), kept as a count
of the rows at each width so that a row going away or changing can narrow it again; when
they do not all fit, the `flexible` columns give up cells (down to `MIN_FLEXIBLE`), and
the columns are fitted again on every resize.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Hashable, Iterable
from typing import Any, Generic, TypeVar

from rich.cells import cell_len
from rich.text import Text
from textual import events
from textual.geometry import Size
from textual.widgets import DataTable
from textual.widgets.data_table import CellType, ColumnKey, RowKey

MIN_FLEXIBLE = 8
"""Cells a flexible column keeps however narrow the terminal."""
MAX_CELL = 1_000
"""Cells of a column at most (a cell's text beyond it is not shown)."""


def text_width(cell: object) -> int:
    plain = cell.plain if isinstance(cell, Text) else str(cell)
    longest = max(plain.split("\n"), key=len) if "\n" in plain else plain
    return min(cell_len(longest), MAX_CELL)


K = TypeVar("K", bound=Hashable)


class CellWidths(Generic[K]):
    """The width of every cell shown, by row and column, and how many cells of each column
    have each width: a column's widest cell is known again when that cell goes."""

    def __init__(self) -> None:
        self._counts: dict[K, Counter[int]] = {}
        self._rows: dict[Hashable, dict[K, int]] = {}

    def add(self, row: Hashable, cells: Iterable[tuple[K, object]]) -> None:
        widths = {column: text_width(cell) for column, cell in cells}
        for column, width in widths.items():
            self._counts.setdefault(column, Counter())[width] += 1
        self._rows[row] = widths

    def set(self, row: Hashable, column: K, cell: object) -> None:
        widths = self._rows[row]
        counts = self._counts[column]
        counts[widths[column]] -= 1
        widths[column] = text_width(cell)
        counts[widths[column]] += 1

    def remove(self, row: Hashable) -> None:
        for column, width in self._rows.pop(row).items():
            self._counts[column][width] -= 1

    def clear(self) -> None:
        self._counts.clear()
        self._rows.clear()

    def widest(self, column: K) -> int:
        counts = self._counts.get(column, Counter())
        return max((width for width, n in counts.items() if n > 0), default=0)


def fit_widths(
    natural: dict[K, int], labels: dict[K, str], flexible: Iterable[K], room: int
) -> dict[K, int]:
    """`natural` (each column's width for its widest cell or label), with the `flexible`
    columns, in order, shrunk (down to `MIN_FLEXIBLE` or their label) until `room` cells
    hold them all, or as far as they go."""
    widths = dict(natural)
    over = sum(widths.values()) - room
    for key in flexible:
        if over <= 0:
            break
        if key not in widths:
            continue
        floor = max(MIN_FLEXIBLE, cell_len(labels[key]))
        give = min(over, max(widths[key] - floor, 0))
        widths[key] -= give
        over -= give
    return widths


class FittedTable(DataTable[Any]):
    """Columns are added with `add_column(label, key=...)`; `flexible` names, in order,
    the keys of the columns that shrink first when the table is too narrow."""

    def __init__(self, *, flexible: tuple[str, ...] = (), **options: Any) -> None:
        super().__init__(**options)
        self.flexible = flexible
        self._widths: CellWidths[ColumnKey] = CellWidths()
        self._fit_asked = False

    # -- keeping count of the widths -------------------------------------------------

    def add_row(
        self,
        *cells: CellType,
        height: int | None = 1,
        key: str | None = None,
        label: Text | str | None = None,
    ) -> RowKey:
        row_key = super().add_row(*cells, height=height, key=key, label=label)
        self._widths.add(row_key, zip(self.columns, cells, strict=True))
        self._ask_fit()
        return row_key

    def update_cell(
        self,
        row_key: RowKey | str,
        column_key: ColumnKey | str,
        value: CellType,
        *,
        update_width: bool = False,
    ) -> None:
        super().update_cell(row_key, column_key, value)
        row = RowKey(row_key) if isinstance(row_key, str) else row_key
        column = ColumnKey(column_key) if isinstance(column_key, str) else column_key
        self._widths.set(row, column, value)
        self._ask_fit()

    def remove_row(self, row_key: RowKey | str) -> None:
        row = RowKey(row_key) if isinstance(row_key, str) else row_key
        super().remove_row(row)
        self._widths.remove(row)
        self._ask_fit()

    def clear(self, columns: bool = False) -> FittedTable:
        super().clear(columns)
        self._widths.clear()
        self._ask_fit()
        return self

    # -- fitting ---------------------------------------------------------------------

    def on_resize(self, event: events.Resize) -> None:
        self.fit()

    def _ask_fit(self) -> None:
        if not self._fit_asked:
            self._fit_asked = True
            self.call_later(self.fit)

    def natural_widths(self) -> dict[ColumnKey, int]:
        """Each column's width for its widest cell (or its label)."""
        return {
            key: max(self._widths.widest(key), cell_len(column.label.plain))
            for key, column in self.columns.items()
        }

    def fit(self) -> None:
        """Size the columns to their text, the flexible ones shrunk to fit the width."""
        self._fit_asked = False
        room = self.scrollable_content_region.width
        if not self.columns or room <= 0:
            return
        padding = 2 * self.cell_padding * len(self.columns)
        labels = {key: column.label.plain for key, column in self.columns.items()}
        flexible = map(ColumnKey, self.flexible)
        widths = fit_widths(self.natural_widths(), labels, flexible, room - padding)
        changed = False
        for key, column in self.columns.items():
            if column.auto_width or column.width != widths[key]:
                column.auto_width = False
                column.width = widths[key]
                changed = True
        if changed:
            total = sum(widths.values()) + padding
            self.virtual_size = Size(total, self.virtual_size.height)
            self.notify_style_update()  # drops the lines drawn at the old widths, redraws
