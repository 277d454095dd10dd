"""The `h` screen: a row per flow with its runs, failure rate, median and 95th percentile
durations (and their change against the window before), late and skipped runs, and the last
failure's message, over the last 24 hours, 7 days or 30 days (`orchlite.health`)."""

from __future__ import annotations

from typing import Any, ClassVar

from rich.text import Text
from textual import on
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.widgets import DataTable, Static

from ..health import (
    LATE_AFTER,
    WINDOW_LABELS,
    WINDOWS,
    FlowHealth,
    change_label,
    failure_label,
    rate_label,
)
from ..views import format_duration, printable
from .columns import FittedTable
from .header import Header
from .health_reader import HealthSnapshot, HealthWatcher
from .keys import APP_KEYS, compact_footer
from .polling import PollingScreen

COLUMNS = ("Flow", "Runs", "Failed", "p50", "p95", "Late", "Skipped", "Last failure")
SHRINK_FIRST = ("last failure", "flow")
"""The columns that give up room when the terminal is narrow."""
WINDOW_KEYS = dict(zip("123", WINDOWS, strict=True))
"""`1`, `2`, `3`: the last 24 hours, 7 days, 30 days."""
NO_RUNS = "No runs in the last {window} (w: another window)"
NOTE = f"↑↓ vs the {{window}} before · late: >{LATE_AFTER:.0f} s after its slot · enter: its runs"


def duration_cell(seconds: float | None, change: float | None) -> Text:
    """The duration, and its change coloured: slower red, faster green."""
    text = Text(format_duration(seconds), style="" if seconds is not None else "dim")
    label = change_label(change)
    if label:
        style = "dim" if label == "=" else ("red" if label.startswith("↑") else "green")
        text.append(" " + label, style=style)
    return text


def count_cell(n: int, style: str) -> Text:
    return Text(str(n), style=style if n else "dim")


def failed_cell(health: FlowHealth) -> Text:
    if health.failure_rate is None:
        return Text("-", style="dim")
    return Text(rate_label(health), style="red" if health.failed else "green")


def failure_cell(health: FlowHealth) -> Text:
    """The last failure's message on one line, control characters shown escaped."""
    return Text(printable(failure_label(health)), style="red" if health.last_failure else "dim")


def cells(health: FlowHealth) -> tuple[Any, ...]:
    return (
        Text(printable(health.flow), style="bold"),
        str(health.runs),
        failed_cell(health),
        duration_cell(health.p50, health.p50_change),
        duration_cell(health.p95, health.p95_change),
        count_cell(health.late, "dark_orange"),
        count_cell(health.skipped, "yellow"),
        failure_cell(health),
    )


class HealthScreen(PollingScreen):
    AUTO_FOCUS = "#health"

    BINDINGS: ClassVar[list[BindingType]] = [
        *APP_KEYS,
        Binding("escape", "app.pop_screen", "Back"),
        Binding("w", "next_window", "Window"),
        *(Binding(key, f"window('{name}')", name, show=False) for key, name in WINDOW_KEYS.items()),
        Binding("enter", "open_flow", "Runs", show=False),
    ]

    def __init__(self, window: str = "24h") -> None:
        super().__init__()
        self.window = window
        self.flows: dict[str, FlowHealth] = {}

    def compose(self) -> ComposeResult:
        yield Header()
        yield FittedTable(id="health", cursor_type="row", zebra_stripes=True, flexible=SHRINK_FIRST)
        yield Static(id="health-empty")
        yield Static(id="health-note")
        yield compact_footer()

    def on_mount(self) -> None:
        table = self.query_one("#health", DataTable)
        for label in COLUMNS:
            table.add_column(label, key=label.lower())
        self.title = "flow health"
        self.sub_title = f"last {WINDOW_LABELS[self.window]}"
        self.query_one("#health-empty").display = False
        super().on_mount()

    def make_poller(self) -> HealthWatcher:  # type: ignore[override]
        return HealthWatcher(
            self.app.home,  # type: ignore[attr-defined]
            lambda: self.window,
            self.app.clock,  # type: ignore[attr-defined]
        )

    def show(self, snapshot: HealthSnapshot) -> None:
        if snapshot.window != self.window:
            return  # read before the window changed: the next one is on its way
        table = self.query_one("#health", DataTable)
        selected = self.selected_flow
        table.clear()
        self.flows = {health.flow: health for health in snapshot.flows}
        for health in snapshot.flows:
            table.add_row(*cells(health), key=health.flow)
        if selected in self.flows:
            table.move_cursor(row=table.get_row_index(selected), animate=False)
        empty = self.query_one("#health-empty", Static)
        empty.update(NO_RUNS.format(window=WINDOW_LABELS[self.window]))
        empty.display = not snapshot.flows
        table.display = bool(snapshot.flows)
        runs = sum(health.runs for health in snapshot.flows)
        self.sub_title = (
            f"last {WINDOW_LABELS[self.window]} · {len(snapshot.flows)} flows, {runs:,} runs"
        )
        self.query_one("#health-note", Static).update(
            NOTE.format(window=WINDOW_LABELS[self.window])
        )

    @property
    def selected_flow(self) -> str | None:
        table = self.query_one("#health", DataTable)
        if not self.flows or table.row_count == 0:
            return None
        return table.coordinate_to_cell_key(table.cursor_coordinate).row_key.value

    def action_window(self, name: str) -> None:
        if name != self.window:
            self.window = name
            self.sub_title = f"last {WINDOW_LABELS[name]} · loading…"
            self.repoll()

    def action_next_window(self) -> None:
        names = list(WINDOWS)
        self.action_window(names[(names.index(self.window) + 1) % len(names)])

    @on(DataTable.RowSelected, "#health")
    def _row_selected(self, event: DataTable.RowSelected) -> None:
        if event.row_key.value:
            self.app.show_flow_runs(event.row_key.value)  # type: ignore[attr-defined]

    def action_open_flow(self) -> None:
        if flow := self.selected_flow:
            self.app.show_flow_runs(flow)  # type: ignore[attr-defined]
