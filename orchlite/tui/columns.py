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
from typing import Any

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


class FittedTable(DataTable[Any]):
    """Columns are added with `add_column(label, key=...)`; `flexible` names, in order,
    the keys of the columns that shrink first when the table is too narrow."""

    def __init__(self, *, flexible: tuple[str, ...] = (), **options: Any) -> None:
        super().__init__(**options)
        self.flexible = flexible
        self._widths: dict[ColumnKey, Counter[int]] = {}
        self._cells: dict[RowKey, dict[ColumnKey, int]] = {}
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
        pairs = zip(self.columns, cells, strict=True)
        widths = {column: text_width(cell) for column, cell in pairs}
        for column, width in widths.items():
            self._widths.setdefault(column, Counter())[width] += 1
        self._cells[row_key] = widths
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
        widths = self._cells[RowKey(row_key) if isinstance(row_key, str) else row_key]
        column = ColumnKey(column_key) if isinstance(column_key, str) else column_key
        counts = self._widths[column]
        counts[widths[column]] -= 1
        widths[column] = text_width(value)
        counts[widths[column]] += 1
        self._ask_fit()

    def remove_row(self, row_key: RowKey | str) -> None:
        row = RowKey(row_key) if isinstance(row_key, str) else row_key
        super().remove_row(row)
        for column, width in self._cells.pop(row).items():
            self._widths[column][width] -= 1
        self._ask_fit()

    def clear(self, columns: bool = False) -> FittedTable:
        super().clear(columns)
        self._cells.clear()
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
        natural = {}
        for key, column in self.columns.items():
            counts = self._widths.get(key, Counter())
            widest = max((width for width, n in counts.items() if n > 0), default=0)
            natural[key] = max(widest, cell_len(column.label.plain))
        return natural

    def fit(self) -> None:
        """Size the columns to their text, the flexible ones shrunk to fit the width."""
        self._fit_asked = False
        room = self.scrollable_content_region.width
        if not self.columns or room <= 0:
            return
        widths = self.natural_widths()
        padding = 2 * self.cell_padding * len(widths)
        over = sum(widths.values()) + padding - room
        for key in map(ColumnKey, self.flexible):
            if over <= 0:
                break
            if key not in widths:
                continue
            floor = max(MIN_FLEXIBLE, cell_len(self.columns[key].label.plain))
            give = min(over, max(widths[key] - floor, 0))
            widths[key] -= give
            over -= give
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
