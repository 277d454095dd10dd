"""The start screen: the newest runs, live, with filters, a text search, per-flow trends and
older runs a page at a time."""

from __future__ import annotations

from dataclasses import replace
from typing import Any, ClassVar

from rich.text import Text
from textual import on
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Horizontal
from textual.widgets import Header, Input, Select, Static

from ..states import TERMINAL, StateName
from ..store import FlowRun
from ..views import printable
from .format import badge, clock_time, run_duration, task_counts
from .keyed_table import KeyedTable
from .keys import APP_KEYS, HEALTH_KEY, compact_footer
from .poller import Poller
from .polling import PollingScreen
from .reader import RunsFollower, RunsPage, RunsQuery, run_key
from .trends import Trends

EMPTY_STORE = "No runs yet — start one with `orch run FILE.py:FLOW` (`orch flows` lists them)"
NO_MATCH = "No runs match these filters (escape clears them)"
COLUMNS = ("State", "Flow", "Run", "Trigger", "Started", "Duration", "Tasks")


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
        Binding("m", "more", "More", show=False),  # the subtitle offers it
        Binding("t", "toggle_trends", "Trends"),
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
        self._offered_finished = False
        self._trend_lines = -1
        """Lines in the trends strip: the screen's layout changes only when they do."""

    def compose(self) -> ComposeResult:
        yield Header()
        with Horizontal(id="filters"):
            yield Input(placeholder="f flow", id="flow")
            yield Select([(s.value, s.value) for s in StateName], prompt="s any state", id="state")
            yield Input(placeholder="/ search", id="search")
        yield Static(id="trends")
        yield KeyedTable(id="runs", zebra_stripes=True, flexible=("run", "flow", "trigger"))
        yield Static(EMPTY_STORE, id="empty")
        yield compact_footer()

    def on_mount(self) -> None:
        table = self.query_one("#runs", KeyedTable)
        for label in COLUMNS:
            table.add_column(label, key=label.lower())
        self.query_one("#empty").display = False
        table.focus()
        self.set_interval(1.0, self.tick)
        super().on_mount()

    def make_poller(self) -> Poller[Any]:
        return Poller(
            self.app.home,  # type: ignore[attr-defined]
            RunsFollower(lambda: self.query_filter),
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
        lines = sum(1 for runs in page.trends if runs)  # a line per flow
        trends = self.query_one("#trends", Static)
        trends.update(Trends(page.trends, now), layout=lines != self._trend_lines)
        self._trend_lines = lines
        shown = f"{len(page.runs):,} runs" + (" (filtered)" if page.query.filtered else "")
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
            for column, before, after in zip(COLUMNS, old, cells, strict=True):
                if before != after:
                    table.update_cell(run_id, column.lower(), after)
            self.rows[run_id] = tuple(a if b != a else b for b, a in zip(old, cells, strict=True))
        if list(self.rows) != list(rows):  # new runs went in below the older ones
            self.rows = {run_id: self.rows[run_id] for run_id in rows}
            table.order(list(rows))

    @staticmethod
    def _cells(run: FlowRun, counts: dict[str, int], now: float) -> tuple[Any, ...]:
        return (
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
                if cells[5] != shown:  # redraws that cell only
                    table.update_cell(run.id, "duration", shown)
                    self.rows[run.id] = (*cells[:5], shown, *cells[6:])

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        """`c` is offered only while the selected run has not finished."""
        return not (action == "cancel" and self._selected_finished)

    @property
    def _selected_finished(self) -> bool:
        if not self.runs:
            return False
        run = self.runs.get(self.selected_run_id or "")
        return run is not None and run.state in TERMINAL

    def _offer_actions(self) -> None:
        """Redraw the footer's keys when what the selected run allows changed."""
        finished = self._selected_finished
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

    def _set_filter(self, **changes: Any) -> None:
        values = {
            "flow": self.query_filter.flow,
            "state": self.query_filter.state,
            "text": self.query_filter.text,
            **changes,
        }
        self.query_filter = RunsQuery(**values)
        self.repoll()

    @on(Input.Changed, "#flow")
    def _flow_changed(self, event: Input.Changed) -> None:
        self._set_filter(flow=event.value.strip() or None)

    @on(Input.Changed, "#search")
    def _search_changed(self, event: Input.Changed) -> None:
        self._set_filter(text=event.value.strip())

    @on(Select.Changed, "#state")
    def _state_changed(self, event: Select.Changed) -> None:
        value = event.value
        self._set_filter(state=value if isinstance(value, str) else None)

    @on(Input.Submitted)
    def _submitted(self) -> None:
        self.query_one("#runs", KeyedTable).focus()

    def show_flow(self, flow: str) -> None:
        """Show the runs of `flow` (its name in the flow filter, the other filters cleared)."""
        self.query_one("#flow", Input).value = flow
        self.query_one("#search", Input).value = ""
        self.query_one("#state", Select).clear()
        self._set_filter(flow=flow, state=None, text="")
        self.query_one("#runs", KeyedTable).focus()

    async def action_focus(self, widget_id: str) -> None:
        self.query_one(f"#{widget_id}").focus()

    def action_escape(self) -> None:
        table = self.query_one("#runs", KeyedTable)
        if not table.has_focus:
            table.focus()
            return
        if self.query_filter.anchor is not None:
            self._set_filter()  # back to the newest runs, filters kept
            table.move_cursor(row=0, animate=False)
            return
        self.query_one("#flow", Input).value = ""
        self.query_one("#search", Input).value = ""
        self.query_one("#state", Select).clear()
        self._set_filter(flow=None, state=None, text="")

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
        if run_id := self.selected_run_id:
            self.app.confirm_cancel(run_id)  # type: ignore[attr-defined]

    def action_retry(self) -> None:
        if run_id := self.selected_run_id:
            self.app.confirm_retry(run_id)  # type: ignore[attr-defined]
