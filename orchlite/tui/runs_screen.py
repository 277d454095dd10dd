"""The start screen: the newest runs, live, with filters, a text search, per-flow trends,
older runs a page at a time, and a selection of runs to cancel or retry together."""

from __future__ import annotations

from dataclasses import replace
from typing import Any, ClassVar

from rich.text import Text
from textual import events, on
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.widgets import Input, Static

from ..states import TERMINAL
from ..store import FlowRun
from ..views import printable
from .filter_bar import FilterBar
from .format import badge, clock_time, run_count, run_duration, task_counts
from .header import Header
from .keyed_table import KeyedTable
from .keys import APP_KEYS, HEALTH_KEY, compact_footer
from .poller import Poller
from .polling import PollingScreen
from .reader import RunsFollower, RunsPage, RunsQuery, run_key
from .selection import Selection, mark_cell
from .trends import TrendsStrip

EMPTY_STORE = "No runs yet — start one with `orch run FILE.py:FLOW` (`orch flows` lists them)"
NO_MATCH = "No runs match these filters (escape clears them)"
COLUMNS = {
    "mark": "",
    "state": "State",
    "flow": "Flow",
    "run": "Run",
    "trigger": "Trigger",
    "started": "Started",
    "duration": "Duration",
    "tasks": "Tasks",
}
"""Each column's key and label; the first shows the selection mark, and the short run id
where there is room (`ID_WIDTH`)."""
KEYS = tuple(COLUMNS)
DURATION_CELL = KEYS.index("duration")
ID_WIDTH = 100
"""Columns of terminal from which the runs' short ids are shown."""


class RunsScreen(PollingScreen):
    AUTO_FOCUS = "#runs"
    """Back from a dialog, the table (never a filter box, which would swallow `n`, `S`, `q`)."""

    BINDINGS: ClassVar[list[BindingType]] = [
        *APP_KEYS,
        HEALTH_KEY,
        Binding("enter", "open_run", "Open", show=False),
        Binding("l", "logs", "Logs"),
        Binding("c", "cancel", "Cancel"),
        Binding("r", "retry", "Retry"),
        Binding("slash", "focus('search')", "Search", show=False),  # the boxes name their keys
        Binding("f", "focus('flow')", "Flow", show=False),
        Binding("s", "focus('state')", "State", show=False),
        Binding("w", "focus('time')", "Time", show=False),
        Binding("number_sign", "focus('tags')", "Tags", show=False, key_display="#"),
        Binding("m", "more", "More", show=False),  # the subtitle offers it
        Binding("t", "toggle_trends", "Trends"),
        Binding("space", "toggle_selected", "Select", show=False),
        Binding("a", "select_all", "Select all", show=False),
        Binding("escape", "escape", "Clear", show=False),
    ]

    def __init__(self) -> None:
        super().__init__()
        self.query_filter = RunsQuery()
        self.page: RunsPage | None = None
        self.runs: dict[str, FlowRun] = {}
        self.counts: dict[str, dict[str, int]] = {}
        """The task counts shown, by run id."""
        self.rows: dict[str, tuple[Any, ...]] = {}
        """The cells shown, by run id."""
        self.selection = Selection()
        self.show_ids = False
        """The first column shows the runs' short ids (the terminal is wide enough)."""
        self._offered_finished = False

    def compose(self) -> ComposeResult:
        yield Header()
        yield FilterBar(id="filters")
        yield TrendsStrip(id="trends")
        yield KeyedTable(id="runs", zebra_stripes=True, flexible=("run", "flow", "trigger"))
        yield Static(EMPTY_STORE, id="empty")
        yield compact_footer()

    def on_mount(self) -> None:
        table = self.query_one("#runs", KeyedTable)
        for key, label in COLUMNS.items():
            table.add_column(label, key=key)
        self.query_one("#empty").display = False
        table.focus()
        self.set_interval(1.0, self.tick)
        super().on_mount()

    def make_poller(self) -> Poller[Any]:
        return Poller(
            self.app.home,  # type: ignore[attr-defined]
            RunsFollower(lambda: self.query_filter, self.app.clock),  # type: ignore[attr-defined]
            missing=lambda: RunsPage(self.query_filter, [], {}, store_exists=False),
        )

    # -- showing -------------------------------------------------------------------

    def show(self, page: RunsPage) -> None:
        if page.query != self.query_filter:
            self.repoll()  # the filters changed while this page loaded
        elif page.top != page.query.top:
            self.query_filter = replace(page.query, top=page.top)  # deep: newest runs left out
        self.page = page
        table = self.query_one("#runs", KeyedTable)
        now = self.app.clock()  # type: ignore[attr-defined]
        self.selection.keep({run.id for run in page.runs})
        rows = {}
        for run in page.runs:  # the cells of the runs that did not change are kept
            counts = page.counts.get(run.id, {})
            old = self.runs.get(run.id)  # the same object when the poller kept it
            same = (old is run or old == run) and self.counts.get(run.id) == counts
            rows[run.id] = self.rows[run.id] if same else self._cells(run, counts, now)
        self._apply(table, rows)
        self.runs = {run.id: run for run in page.runs}
        self.counts = page.counts
        self._offer_actions()
        empty = self.query_one("#empty", Static)
        empty.display = not page.runs
        table.display = bool(page.runs)
        if not page.runs:
            empty.update(NO_MATCH if page.query.filtered else EMPTY_STORE)
        self.query_one("#trends", TrendsStrip).show(page.trends, now)
        self._show_counts()

    def _show_counts(self) -> None:
        """`37 runs match, 20 shown, 3 selected` in the header (`m loads older ones`...)."""
        page = self.page
        if page is None:
            return
        matching = max(page.matching, len(page.runs))
        shown = run_count(matching)
        shown += " match" + ("es" if matching == 1 else "") if page.query.filtered else ""
        if len(page.runs) < matching:
            shown += f", {len(page.runs):,} shown"
        if self.selection:
            shown += f", {len(self.selection):,} selected"
        if page.top is not None:
            shown += ", older ones (escape: the newest)"
        self.sub_title = shown + (", m loads older ones" if page.more else "")

    def _apply(self, table: KeyedTable, rows: dict[str, tuple[Any, ...]]) -> None:
        """Bring the table to `rows`, in their order: remove the rows gone, add the new ones
        and update the cells that changed. Never cleared, so a new run costs one row; the
        cursor stays on its run."""
        gone = self.rows.keys() - rows.keys()
        if len(gone) > len(self.rows) // 2:  # other filters: start over (cheaper)
            table.clear()
            self.rows = {}
        for run_id in gone & self.rows.keys():
            table.remove_row(run_id)
            del self.rows[run_id]
        for run_id, cells in rows.items():
            old = self.rows.get(run_id)
            if old is cells:  # the run did not change
                continue
            if old is None:
                table.add_row(*cells, key=run_id)
                self.rows[run_id] = cells
                continue
            for column, before, after in zip(KEYS, old, cells, strict=True):
                if before != after:
                    table.update_cell(run_id, column, after)
            self.rows[run_id] = tuple(a if b != a else b for b, a in zip(old, cells, strict=True))
        if list(self.rows) != list(rows):  # new runs went in below the older ones
            self.rows = {run_id: self.rows[run_id] for run_id in rows}
            table.order(list(rows))

    def _cells(self, run: FlowRun, counts: dict[str, int], now: float) -> tuple[Any, ...]:
        return (
            self._mark(run.id),
            badge(run.state),
            Text(printable(run.flow_name)),
            Text(printable(run.name)),
            Text(printable(run.trigger)),
            clock_time(run.started or run.created, now),
            run_duration(run.started, run.ended, now),
            task_counts(counts),
        )

    def tick(self) -> None:
        """Count up the durations of the runs still going."""
        table = self.query_one("#runs", KeyedTable)
        now = self.app.clock()  # type: ignore[attr-defined]
        for run in self.runs.values():
            if run.started is not None and run.ended is None:
                shown = run_duration(run.started, None, now)
                cells = self.rows[run.id]
                if cells[DURATION_CELL] != shown:  # redraws that cell only
                    table.update_cell(run.id, "duration", shown)
                    self.rows[run.id] = (
                        *cells[:DURATION_CELL],
                        shown,
                        *cells[DURATION_CELL + 1 :],
                    )

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        """`c` is offered only while a run it would cancel has not finished."""
        return not (action == "cancel" and self._all_finished)

    @property
    def _all_finished(self) -> bool:
        """The runs `c` and `r` act on (the selection, or else the highlighted run) have all
        finished."""
        targets = list(self.selection) or [self.selected_run_id or ""]
        runs = [self.runs[run_id] for run_id in targets if run_id in self.runs]
        return bool(runs) and all(run.state in TERMINAL for run in runs)

    def _offer_actions(self) -> None:
        """Redraw the footer's keys when what the selected runs allow changed."""
        finished = self._all_finished
        if finished != self._offered_finished:
            self._offered_finished = finished
            self.refresh_bindings()

    @property
    def selected_run_id(self) -> str | None:
        table = self.query_one("#runs", KeyedTable)
        return table.cursor_key if self.runs else None

    # -- older runs, trends --------------------------------------------------------

    def action_more(self) -> None:
        """Load the next page of older runs (keyset paging below the oldest one shown)."""
        page = self.page
        if page is None or not page.more or not page.runs:
            return
        self.query_filter = replace(self.query_filter, anchor=run_key(page.runs[-1]))
        self.repoll()

    @on(KeyedTable.RowHighlighted, "#runs")
    def _highlighted(self, event: KeyedTable.RowHighlighted) -> None:
        self._offer_actions()
        if event.cursor_row == event.table.row_count - 1:
            self.action_more()  # reaching the end loads more

    def action_toggle_trends(self) -> None:
        trends = self.query_one("#trends")
        trends.display = not trends.display

    # -- filters -------------------------------------------------------------------

    def _set_filter(self, filters: RunsQuery) -> None:
        """Show the runs matching `filters`, from the newest."""
        if filters != self.query_filter:
            self.query_filter = filters
            self.repoll()

    @on(FilterBar.Changed)
    def _filters_changed(self, event: FilterBar.Changed) -> None:
        self._set_filter(event.filters)

    @on(Input.Submitted)
    def _submitted(self) -> None:
        self.query_one("#runs", KeyedTable).focus()

    def show_flow(self, flow: str) -> None:
        """Show the runs of `flow` (its name in the flow filter, the other filters cleared)."""
        self._set_filter(self.query_one(FilterBar).clear(flow))
        self.query_one("#runs", KeyedTable).focus()

    async def action_focus(self, widget_id: str) -> None:
        # At once, not after the keys already queued (as `focus()` would): the letters typed
        # right after the key go to the box it names.
        self.set_focus(self.query_one(f"#{widget_id}"))

    def action_escape(self) -> None:
        """Back to the table; there, clear the selection, else go back to the newest runs,
        else clear the filters."""
        table = self.query_one("#runs", KeyedTable)
        if not table.has_focus:
            table.focus()
        elif self.selection:
            self.unselect_all()
        elif self.query_filter.anchor is not None:
            self._set_filter(replace(self.query_filter, anchor=None, top=None))
            table.move_cursor(row=0, animate=False)
        else:
            self._set_filter(self.query_one(FilterBar).clear())

    # -- the selection ---------------------------------------------------------------

    def action_toggle_selected(self) -> None:
        if run_id := self.selected_run_id:
            self.selection.toggle(run_id)
            self._remark([run_id])

    def action_select_all(self) -> None:
        """Select every run shown (those matching the filters, as far as loaded)."""
        self._remark(self.selection.add(self.runs))

    def unselect_all(self) -> None:
        self._remark(self.selection.clear())

    def _mark(self, run_id: str) -> Any:
        return mark_cell(run_id in self.selection, run_id[:8] if self.show_ids else "")

    def _remark(self, run_ids: list[str]) -> None:
        """Redraw the first cell of these runs' rows, and the counts."""
        table = self.query_one("#runs", KeyedTable)
        for run_id in run_ids:
            if (cells := self.rows.get(run_id)) is not None:
                mark = self._mark(run_id)
                table.update_cell(run_id, "mark", mark)
                self.rows[run_id] = (mark, *cells[1:])
        self._show_counts()
        self._offer_actions()

    def on_resize(self, event: events.Resize) -> None:
        """Show the short ids where they fit."""
        show = event.size.width >= ID_WIDTH
        if show != self.show_ids:
            self.show_ids = show
            self._remark(list(self.rows))

    # -- actions on the selected run -----------------------------------------------

    @on(KeyedTable.RowSelected, "#runs")
    def _row_selected(self, event: KeyedTable.RowSelected) -> None:
        if event.row_key:
            self.app.open_run(event.row_key)  # type: ignore[attr-defined]

    def action_open_run(self) -> None:
        if run_id := self.selected_run_id:
            self.app.open_run(run_id)  # type: ignore[attr-defined]

    def action_logs(self) -> None:
        if run_id := self.selected_run_id:
            self.app.open_logs(run_id)  # type: ignore[attr-defined]

    def action_cancel(self) -> None:
        if self.selection:
            self._act_on_selection("cancel")
        elif run_id := self.selected_run_id:
            self.app.confirm_cancel(run_id)  # type: ignore[attr-defined]

    def action_retry(self) -> None:
        if self.selection:
            self._act_on_selection("retry")
        elif run_id := self.selected_run_id:
            self.app.confirm_retry(run_id)  # type: ignore[attr-defined]

    def _act_on_selection(self, action: str) -> None:
        """Cancel or retry the selected runs, after one question (`bulk_actions`); the
        selection clears once it is answered yes."""
        runs = [self.runs[run_id] for run_id in self.selection if run_id in self.runs]
        self.app.confirm_bulk(action, runs, self.unselect_all)  # type: ignore[attr-defined]
