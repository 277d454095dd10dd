"""The runs screen's table (`KeyedTable`): rows by key, a cursor that stays on its row, cells
rendered once until they change, columns fitted to the terminal, scrolling."""

from __future__ import annotations

from rich.segment import Segment
from rich.text import Text
from test_tui import in_event_loop, wait_for
from test_tui_session import drawn
from textual.app import App, ComposeResult
from textual.pilot import Pilot

from orchlite.tui.keyed_table import KeyedTable

COLUMNS = ("name", "state", "note")


class CountingTable(KeyedTable):
    """Counts the cells it renders."""

    rendered = 0

    def _render_cell(self, cell: object, width: int) -> list[Segment]:
        self.rendered += 1
        return super()._render_cell(cell, width)


class TableApp(App[None]):
    def __init__(self, rows: int) -> None:
        super().__init__()
        self.rows = rows
        self.events: list[KeyedTable.RowHighlighted] = []

    def compose(self) -> ComposeResult:
        yield CountingTable(id="table", zebra_stripes=True, flexible=("note",))

    def on_mount(self) -> None:
        table = self.table
        for label in COLUMNS:
            table.add_column(label.title(), key=label)
        for i in range(self.rows):
            table.add_row(f"run-{i}", Text("COMPLETED", style="green"), "fine", key=f"k{i}")
        table.focus()

    @property
    def table(self) -> CountingTable:
        return self.query_one(CountingTable)

    def on_keyed_table_row_highlighted(self, event: KeyedTable.RowHighlighted) -> None:
        self.events.append(event)

    def on_keyed_table_row_selected(self, event: KeyedTable.RowSelected) -> None:
        self.events.append(event)


async def painted(pilot: Pilot[None]) -> CountingTable:
    table = pilot.app.table  # type: ignore[attr-defined]
    await wait_for(pilot, lambda: not table.columns["name"].auto_width, "fitted columns")
    await pilot.pause()
    return table  # type: ignore[no-any-return]


@in_event_loop
async def test_a_row_added_at_the_top_keeps_the_cursor_on_its_row() -> None:
    app = TableApp(rows=5)
    async with app.run_test(size=(60, 12)) as pilot:
        table = await painted(pilot)
        await pilot.press("down", "down")
        assert (table.cursor_row, table.cursor_key) == (2, "k2")
        highlighted = len(app.events)
        table.add_row("run-new", "RUNNING", "", key="new")
        table.order(["new", *[f"k{i}" for i in range(5)]])
        await pilot.pause()
        assert (table.cursor_row, table.cursor_key) == (3, "k2")
        assert len(app.events) == highlighted  # the same row: nothing to tell
        assert table.row_keys[0] == "new" and "run-new" in drawn(app)
        table.remove_row("k2")  # the row under the cursor goes: the next one is picked
        await pilot.pause()
        assert (table.cursor_row, table.cursor_key) == (3, "k3")
        assert app.events[-1].row_key == "k3"


@in_event_loop
async def test_a_row_going_in_or_a_cell_changing_renders_only_its_cells() -> None:
    app = TableApp(rows=8)
    async with app.run_test(size=(60, 12)) as pilot:
        table = await painted(pilot)
        before = table.rendered
        table.update_cell("k3", "note", "okay")  # as wide: the columns stay
        await wait_for(pilot, lambda: "okay" in drawn(app), "the new cell")
        assert table.rendered == before + 1
        assert table.get_row("k3")[2] == "okay"
        before = table.rendered
        table.add_row("run-x", "RUNNING", "", key="new")  # no wider: the columns stay
        table.order(["new", *[f"k{i}" for i in range(8)]])
        await wait_for(pilot, lambda: "run-x" in drawn(app), "the new row")
        assert table.rendered == before + len(COLUMNS)  # the rows below moved, not rendered


@in_event_loop
async def test_columns_fit_the_terminal_on_every_resize() -> None:
    app = TableApp(rows=3)
    async with app.run_test(size=(120, 12)) as pilot:
        table = await painted(pilot)
        long_note = "a note far too long for a narrow terminal " * 2
        table.update_cell("k1", "note", long_note)
        await wait_for(pilot, lambda: table.columns["note"].width == len(long_note), "full")
        await pilot.resize_terminal(50, 12)
        await wait_for(pilot, lambda: table.columns["note"].width < len(long_note), "a fit")
        padding = 2 * len(COLUMNS)
        widths = sum(column.width for column in table.columns.values())
        assert widths + padding <= 50
        assert table.columns["state"].width == len("COMPLETED")  # not flexible: kept whole
        assert "…" in drawn(app)
        table.update_cell("k1", "note", "short")  # the long cell goes: the column narrows
        await wait_for(pilot, lambda: table.columns["note"].width == len("short"), "narrower")


@in_event_loop
async def test_many_rows_scroll_with_the_cursor_and_enter_or_a_click_selects() -> None:
    app = TableApp(rows=500)
    async with app.run_test(size=(60, 12)) as pilot:
        table = await painted(pilot)
        await pilot.press("end")
        assert table.cursor_key == "k499"
        await wait_for(pilot, lambda: "run-499" in drawn(app), "the last row in view")
        assert table.scroll_offset.y > 0 and "run-0 " not in drawn(app)
        await pilot.press("home", "pagedown")
        assert table.cursor_row == 11  # a page: the 11 rows in view below the header
        await pilot.press("enter")
        assert isinstance(app.events[-1], KeyedTable.RowSelected)
        assert app.events[-1].row_key == table.cursor_key
        await pilot.press("home")
        await pilot.click(CountingTable, offset=(2, 3))  # the header, then rows 0 and 1
        assert isinstance(app.events[-1], KeyedTable.RowSelected)
        assert app.events[-1].row_key == "k2" == table.cursor_key
