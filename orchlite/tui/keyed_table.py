"""A table of rows by key, drawn line by line on Textual's Line API.

Textual's `DataTable` re-indexes its rows and drops every rendered line whenever a row goes
in or a cell changes, so a runs list beside a daemon that starts a run a second redrew each
row in view every second. Here each cell's text is rendered once and kept until that cell
changes, each row's line is put together from its cells once per look (plain, zebra, under
the cursor) and kept until the row changes, and only the lines in view are asked for: a new
run at the top costs one row's rendering, and a ticking duration one cell's. Each line as the
screen gets it (through the widget's styles and the app's filters) is kept by its row, not
by its place as Textual keeps them, so the rows a new run pushes down are not styled again.

The cursor follows its row's key: rows going in above it, or the rows being put in another
order, never move it to another row. Columns fit their text and the terminal as
`FittedTable`'s do (`columns.fit_widths`), on every change of their widest cell and resize.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, ClassVar

from rich.cells import cell_len
from rich.segment import Segment
from rich.style import Style
from rich.text import Text
from textual import events
from textual.binding import Binding, BindingType
from textual.geometry import Region, Size
from textual.message import Message
from textual.scroll_view import ScrollView
from textual.strip import Strip

from .columns import CellWidths, fit_widths

HEADER = "keyed-table--header"
CURSOR = "keyed-table--cursor"
EVEN = "keyed-table--even-row"
ODD = "keyed-table--odd-row"
PLAIN = "keyed-table--row"
"""A row's look with neither zebra stripes nor the cursor."""
BASE = ""
"""The widget's own style, without a look's."""


@dataclass
class Column:
    key: str
    label: str
    width: int = 0
    auto_width: bool = True
    """True until the column was first fitted."""

    @property
    def content_width(self) -> int:
        return self.width


class KeyedTable(ScrollView, can_focus=True):
    """Rows added, updated and removed by key; a row cursor; `flexible` names, in order,
    the keys of the columns that shrink first when the table is too narrow."""

    COMPONENT_CLASSES: ClassVar[set[str]] = {HEADER, CURSOR, EVEN, ODD, PLAIN}

    DEFAULT_CSS = """
    KeyedTable {
        background: $surface;
        color: $foreground;
        height: auto;
        max-height: 100%;
        &:focus {
            background-tint: $foreground 5%;
            & > .keyed-table--cursor {
                background: $block-cursor-background;
                color: $block-cursor-foreground;
                text-style: $block-cursor-text-style;
            }
            & > .keyed-table--header {
                background-tint: $foreground 5%;
            }
        }
        &:dark > .keyed-table--even-row {
            background: $surface-darken-1 40%;
        }
        & > .keyed-table--header {
            text-style: bold;
            background: $panel;
            color: $foreground;
        }
        &:ansi > .keyed-table--header {
            background: ansi_bright_blue;
            color: ansi_default;
        }
        & > .keyed-table--even-row {
            background: $surface-lighten-1 50%;
        }
        & > .keyed-table--cursor {
            background: $block-cursor-blurred-background;
            color: $block-cursor-blurred-foreground;
            text-style: $block-cursor-blurred-text-style;
        }
    }
    """

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("enter", "select", "Select", show=False),
        Binding("up", "move(-1)", "Up", show=False),
        Binding("down", "move(1)", "Down", show=False),
        Binding("pageup", "page(-1)", "Page up", show=False),
        Binding("pagedown", "page(1)", "Page down", show=False),
        Binding("home,ctrl+home", "move_to(0)", "Top", show=False),
        Binding("end,ctrl+end", "move_to(-1)", "Bottom", show=False),
        Binding("left", "scroll_left", "Left", show=False),
        Binding("right", "scroll_right", "Right", show=False),
    ]

    class RowHighlighted(Message):
        """The cursor went to another row (by a key, a click, or its row going)."""

        def __init__(self, table: KeyedTable, cursor_row: int, row_key: str) -> None:
            super().__init__()
            self.table = table
            self.cursor_row = cursor_row
            self.row_key = row_key

        @property
        def control(self) -> KeyedTable:
            return self.table

    class RowSelected(RowHighlighted):
        """`enter` or a click on a row."""

    def __init__(
        self,
        *,
        flexible: tuple[str, ...] = (),
        zebra_stripes: bool = False,
        cell_padding: int = 1,
        id: str | None = None,
        classes: str | None = None,
    ) -> None:
        super().__init__(id=id, classes=classes)
        self.flexible = flexible
        self.zebra_stripes = zebra_stripes
        self.cell_padding = cell_padding
        self.columns: dict[str, Column] = {}
        self._keys: list[str] = []
        self._index: dict[str, int] | None = {}
        self._cells: dict[str, tuple[Any, ...]] = {}
        self._widths: CellWidths[str] = CellWidths()
        self._segments: dict[str, list[list[Segment] | None]] = {}
        """Each row's cells rendered at their column's width (None: to render again)."""
        self._lines: dict[tuple[str, str], Strip] = {}
        """Each row's line in each look it was drawn in."""
        self._drawn: dict[tuple[str, str], Strip] = {}
        """Each row's line in each look as the screen got it, through the widget's styles and
        the app's filters (`render_lines`), drawn for `_drawn_for`."""
        self._drawn_for: tuple[object, ...] = ()
        self._styles: dict[str, Style] = {}
        self._cursor_key: str | None = None
        self.cursor_row = 0
        self._fit_asked = False
        self._width = 0

    # -- rows by key -----------------------------------------------------------------

    def add_column(self, label: str, *, key: str) -> None:
        self.columns[key] = Column(key, label)
        self._ask_fit()

    def add_row(self, *cells: Any, key: str) -> None:
        """Add a row below the others (`order` puts the rows in another order)."""
        if key in self._cells:
            raise KeyError(f"a row with key {key!r} is already in the table")
        self._keys.append(key)
        if self._index is not None:
            self._index[key] = len(self._keys) - 1
        self._cells[key] = cells
        self._widths.add(key, zip(self.columns, cells, strict=True))
        self._rows_moved()

    def update_cell(self, row_key: str, column_key: str, value: Any) -> None:
        """Change one cell: only that cell is rendered again, and only its line redrawn."""
        column = list(self.columns).index(column_key)
        cells = self._cells[row_key]
        self._cells[row_key] = (*cells[:column], value, *cells[column + 1 :])
        self._widths.set(row_key, column_key, value)
        rendered = self._segments.get(row_key)
        if rendered is not None:
            rendered[column] = None
        self._forget_lines(row_key)
        self.refresh_line(self.get_row_index(row_key) + 1)  # below the header
        self._ask_fit()

    def remove_row(self, row_key: str) -> None:
        del self._cells[row_key]
        self._keys.remove(row_key)
        self._index = None
        self._widths.remove(row_key)
        self._segments.pop(row_key, None)
        self._forget_lines(row_key)
        self._rows_moved()

    def order(self, keys: Sequence[str]) -> None:
        """Show the rows in the order of `keys` (the keys of all the rows)."""
        if list(keys) != self._keys:
            self._keys = list(keys)
            self._index = None
            self._rows_moved()

    def clear(self) -> None:
        self._keys = []
        self._index = {}
        self._cells.clear()
        self._widths.clear()
        self._segments.clear()
        self._forget_all_lines()
        self._rows_moved()

    @property
    def row_count(self) -> int:
        return len(self._keys)

    @property
    def row_keys(self) -> list[str]:
        return list(self._keys)

    def get_row(self, row_key: str) -> list[Any]:
        return list(self._cells[row_key])

    def get_row_at(self, row_index: int) -> list[Any]:
        return self.get_row(self._keys[row_index])

    def get_row_index(self, row_key: str) -> int:
        if self._index is None:
            self._index = {key: i for i, key in enumerate(self._keys)}
        return self._index[row_key]

    # -- the cursor ------------------------------------------------------------------

    @property
    def cursor_key(self) -> str | None:
        """The key of the row under the cursor (None: the table is empty)."""
        return self._cursor_key

    def move_cursor(self, *, row: int, animate: bool = False) -> None:
        """Put the cursor on row `row` (counted from the top; clamped to the rows)."""
        if not self._keys:
            return
        row = max(0, min(row, len(self._keys) - 1))
        if row != self.cursor_row:
            self._redraw_row(self.cursor_row)
            self._redraw_row(row)
        self.cursor_row = row
        self._scroll_to_cursor(animate)
        key = self._keys[row]
        if key != self._cursor_key:
            self._cursor_key = key
            self.post_message(self.RowHighlighted(self, row, key))

    def action_move(self, rows: int) -> None:
        self.move_cursor(row=self.cursor_row + rows)

    def action_page(self, pages: int) -> None:
        self.move_cursor(row=self.cursor_row + pages * max(1, self.size.height - 1))

    def action_move_to(self, row: int) -> None:
        self.move_cursor(row=row if row >= 0 else len(self._keys) - 1)

    def action_select(self) -> None:
        if self._cursor_key is not None:
            self.post_message(self.RowSelected(self, self.cursor_row, self._cursor_key))

    def on_click(self, event: events.Click) -> None:
        row = event.y - 1 + self.scroll_offset.y  # line 0 is the header
        if event.y >= 1 and 0 <= row < len(self._keys):
            event.stop()
            self.move_cursor(row=row)
            self.action_select()

    def _rows_moved(self) -> None:
        """After rows went in, out or moved: the cursor stays on its row (or, its row gone,
        where it was), and the lines in view are drawn again from the rows' kept lines."""
        if self._keys:
            if self._cursor_key in self._cells:
                self.cursor_row = self.get_row_index(self._cursor_key)
            self.move_cursor(row=self.cursor_row)
        else:
            self._cursor_key = None
            self.cursor_row = 0
        self.refresh()
        self._ask_fit()

    def _scroll_to_cursor(self, animate: bool) -> None:
        in_view = max(1, self.scrollable_content_region.height - 1)  # below the header
        top = self.scroll_offset.y
        if self.cursor_row < top:
            self.scroll_to(y=self.cursor_row, animate=animate, immediate=not animate)
        elif self.cursor_row >= top + in_view:
            y = self.cursor_row - in_view + 1
            self.scroll_to(y=y, animate=animate, immediate=not animate)

    # -- fitting ---------------------------------------------------------------------

    def on_resize(self, event: events.Resize) -> None:
        self.fit()

    def _ask_fit(self) -> None:
        if not self._fit_asked:
            self._fit_asked = True
            self.call_later(self.fit)

    def fit(self) -> None:
        """Size the columns to their text, the flexible ones shrunk to fit the width."""
        self._fit_asked = False
        padding = 2 * self.cell_padding * len(self.columns)
        room = self.scrollable_content_region.width
        if self.columns and room > 0:
            labels = {key: column.label for key, column in self.columns.items()}
            natural = {
                key: max(self._widths.widest(key), cell_len(label)) for key, label in labels.items()
            }
            widths = fit_widths(natural, labels, self.flexible, room - padding)
            if any(c.auto_width or c.width != widths[k] for k, c in self.columns.items()):
                for key, column in self.columns.items():
                    column.width = widths[key]
                    column.auto_width = False
                self._segments.clear()
                self._forget_all_lines()
                self.refresh()
        total = sum(column.width for column in self.columns.values()) + padding
        self.virtual_size = Size(total, len(self._keys) + 1)

    # -- drawing ---------------------------------------------------------------------

    def notify_style_update(self) -> None:
        """The theme or the focus changed: every line is drawn again in the new styles."""
        super().notify_style_update()
        self._styles.clear()
        self._forget_all_lines()

    def on_focus(self, event: events.Focus) -> None:
        self.notify_style_update()

    def on_blur(self, event: events.Blur) -> None:
        self.notify_style_update()

    def render_lines(self, crop: Region) -> list[Strip]:
        """The lines in `crop`, each row's as drawn before wherever it now is: Textual keeps
        a widget's lines by their place, so a row going in at the top would have every line
        in view styled, filtered and cut for the screen again. The lines not drawn yet go
        through Textual's own drawing (`Widget.render_lines`), a stretch at a time."""
        self._width = self.size.width  # asked once for all the lines
        if any(self.styles.gutter):  # lines are not rows one to one: drawn by place
            return super().render_lines(crop)
        drawn_for = (
            self.size,
            self.scroll_offset.x,
            crop.column_span,
            self.background_colors,
            tuple(self.get_line_filters()),
            self.styles.tint,
            self.opacity,
            self.styles.text_opacity,
        )
        if drawn_for != self._drawn_for:
            self._drawn.clear()
            self._drawn_for = drawn_for
        keys = self._line_keys(crop)
        lines = [self._drawn.get(key) for key in keys]
        y = 0
        while y < len(lines):
            if lines[y] is not None:
                y += 1
                continue
            end = y + 1
            while end < len(lines) and lines[end] is None:
                end += 1
            region = Region(crop.x, crop.y + y, crop.width, end - y)
            for key, line in zip(keys[y:end], super().render_lines(region), strict=True):
                lines[y] = self._drawn[key] = line
                y += 1
        return [line for line in lines if line is not None]

    def _line_keys(self, crop: Region) -> list[tuple[str, str]]:
        """What each line of `crop` shows: a row's key and its look, the header, or none."""
        first = self.scroll_offset.y - 1  # the row on line y (line 0: the header)
        keys = []
        for y in crop.line_range:
            row = y + first
            if y == 0:
                keys.append(("", HEADER))
            elif row < len(self._keys):
                keys.append((self._keys[row], self._look(row)))
            else:
                keys.append(("", BASE))
        return keys

    def render_line(self, y: int) -> Strip:
        width = self._width
        scroll_x, scroll_y = self.scroll_offset
        if y == 0:
            look, line = HEADER, self._header()
        else:
            row = y - 1 + scroll_y
            if row >= len(self._keys):
                return Strip.blank(width, self._style(BASE))
            look = self._look(row)
            line = self._line(self._keys[row], look)
        return line.crop_extend(scroll_x, scroll_x + width, self._style(look))

    def _look(self, row: int) -> str:
        if row == self.cursor_row:
            return CURSOR
        if self.zebra_stripes:
            return ODD if row % 2 else EVEN
        return PLAIN

    def _style(self, look: str) -> Style:
        """The widget's style, with a look's over it (`BASE`: none)."""
        style = self._styles.get(look)
        if style is None:
            style = self.rich_style
            if look != BASE:
                style += self.get_component_styles(look).rich_style
            self._styles[look] = style
        return style

    def _header(self) -> Strip:
        line = self._lines.get(("", HEADER))
        if line is None:
            cells = [self._render_cell(c.label, c.width) for c in self.columns.values()]
            segments = Segment.apply_style((s for cell in cells for s in cell), self._style(HEADER))
            line = self._lines[("", HEADER)] = Strip(list(segments))
        return line

    def _line(self, key: str, look: str) -> Strip:
        line = self._lines.get((key, look))
        if line is None:
            widths = [column.width for column in self.columns.values()]
            rendered = self._segments.setdefault(key, [None] * len(widths))
            for i, (cell, width) in enumerate(zip(self._cells[key], widths, strict=True)):
                if rendered[i] is None:
                    rendered[i] = self._render_cell(cell, width)
            cells = (s for cell in rendered for s in cell or ())
            style = self._style(look)
            # Under the cursor, its text colour over the cell's own (a cell's background,
            # a state's badge, stays).
            over = Style.from_color(style.color) if look == CURSOR else None
            segments = Segment.apply_style(cells, style, over)
            line = self._lines[(key, look)] = Strip(list(segments))
        return line

    def _render_cell(self, cell: object, width: int) -> list[Segment]:
        text = cell.copy() if isinstance(cell, Text) else Text(str(cell))
        if "\n" in text.plain:
            text = text.split("\n")[0]
        text.truncate(width, overflow="ellipsis")
        pad = " " * self.cell_padding
        fill = " " * (width - text.cell_len)  # unstyled, as the padding
        return list(Text.assemble(pad, text, fill, pad).render(self.app.console))

    def _forget_lines(self, key: str) -> None:
        for look in (PLAIN, CURSOR, EVEN, ODD):
            self._lines.pop((key, look), None)
            self._drawn.pop((key, look), None)

    def _forget_all_lines(self) -> None:
        self._lines.clear()
        self._drawn.clear()

    def _redraw_row(self, row: int) -> None:
        self.refresh_line(row + 1)
