"""The `S` screen: every schedule and trigger, their next fire times and last runs, the daemon.

On the highlighted schedule, `p` pauses or resumes it and `r` runs it now (after a yes),
through the functions behind `orch schedule pause|resume NAME` and `orch run --schedule
NAME`, so the TUI does what those commands do and says it with their messages.
"""

from __future__ import annotations

import datetime as dt
from typing import Any, ClassVar

from rich.text import Text
from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import VerticalScroll
from textual.widgets import DataTable, Footer, Static

from ..errors import OrchError
from ..operations import (
    Outcome,
    ScheduleRun,
    pause_schedule,
    resume_schedule,
    schedule_run,
)
from ..views import printable
from .board import Board, BoardWatcher
from .columns import FittedTable
from .confirm import ConfirmScreen
from .format import badge, parameters_text
from .header import Header
from .polling import PollingScreen

SCHEDULE_COLUMNS = ("Target", "Schedule", "Next", "Then", "Last run", "Source")
TRIGGER_COLUMNS = ("Target", "Trigger", "Last run", "Source")
SHRINK_FIRST = ("source", "schedule", "trigger", "target")
"""The columns that give up room when the terminal is narrow: never Next, Then, Last run."""
TABLE_OPTIONS: dict[str, Any] = {"cursor_type": "row", "zebra_stripes": True}
NO_SCHEDULES = "No schedules: add one to orch.toml or a @flow decorator (see `orch schedules`)"
PICK_A_SCHEDULE = "No schedule highlighted: p and r act on schedules, not triggers"


def _next(times: list[str], index: int) -> str:
    """The fire time `index` in full; a later one only as far as it differs from the one
    before (`10:00` on the same day), so that Next, Then and Last run fit 80 columns."""
    if len(times) <= index:
        return "—"
    when = dt.datetime.fromisoformat(times[index])
    if index == 0:
        return when.strftime("%Y-%m-%d %H:%M %Z").strip()
    before = dt.datetime.fromisoformat(times[index - 1])
    if when.date() == before.date():
        return when.strftime("%H:%M")
    return when.strftime("%m-%d %H:%M" if when.year == before.year else "%Y-%m-%d %H:%M")


def _last(run: dict[str, Any] | None) -> Text | str:
    if run is None:
        return "never"
    return badge(run["state"]) + Text(f" {run['id'][:8]}")


def _uptime(seconds: float | None) -> str:
    if seconds is None:
        return "?"
    minutes, secs = divmod(int(seconds), 60)
    hours, minutes = divmod(minutes, 60)
    days, hours = divmod(hours, 24)
    if days:
        return f"{days}d {hours}h"
    return f"{hours}h {minutes:02d}m" if hours else f"{minutes}m {secs:02d}s"


def _highlighted_key(table: DataTable[Any]) -> str | None:
    if not table.row_count:
        return None
    return table.coordinate_to_cell_key(table.cursor_coordinate).row_key.value


def _highlight(table: DataTable[Any], key: str | None) -> None:
    """Put the cursor back on the row `key` after a reload (it goes to the top otherwise),
    so that a key pressed next acts on the row the user picked."""
    if key is not None and key in table.rows:
        table.move_cursor(row=table.get_row_index(key), animate=False)


def daemon_line(info: dict[str, Any]) -> Text:
    if not info.get("running"):
        line = Text("Daemon: not running", style="bold yellow")
        line.append("  (start it with `orch daemon`)", style="dim")
        return line
    flying = len(info.get("runs_in_flight") or [])
    line = Text("Daemon: running", style="bold green")
    line.append(
        f"  pid {info.get('pid') or '?'} · up {_uptime(info.get('uptime_seconds'))}"
        f" · {flying} run{'s' if flying != 1 else ''} in flight"
    )
    return line


class SchedulesScreen(PollingScreen):
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("escape,S", "app.pop_screen", "Back"),
        Binding("enter", "open_last", "Last run", show=False),
        Binding("p", "toggle_pause", "Pause/resume"),
        Binding("r", "run_schedule", "Run it now"),
    ]

    def __init__(self) -> None:
        super().__init__()
        self.board: Board | None = None

    def compose(self) -> ComposeResult:
        yield Header()
        with VerticalScroll(id="board"):
            yield Static(id="daemon")
            yield Static("Schedules", classes="section")
            yield FittedTable(id="schedules", flexible=SHRINK_FIRST, **TABLE_OPTIONS)
            yield Static(NO_SCHEDULES, id="no-schedules")
            yield Static("Triggers", classes="section", id="triggers-title")
            yield FittedTable(id="triggers", flexible=SHRINK_FIRST, **TABLE_OPTIONS)
            yield Static("Problems", classes="section", id="errors-title")
            yield Static(id="errors")
        yield Footer()

    def on_mount(self) -> None:
        for table_id, columns in (("#schedules", SCHEDULE_COLUMNS), ("#triggers", TRIGGER_COLUMNS)):
            table = self.query_one(table_id, DataTable)
            for label in columns:
                table.add_column(label, key=label.lower())
        self.title = "schedules"
        self.query_one("#schedules").focus()
        super().on_mount()

    def make_poller(self) -> BoardWatcher:  # type: ignore[override]
        return BoardWatcher(self.app.home, self.app.clock)  # type: ignore[attr-defined]

    def show(self, board: Board) -> None:
        self.board = board
        self.query_one("#daemon", Static).update(daemon_line(board.daemon))
        table = self.query_one("#schedules", DataTable)
        highlighted = _highlighted_key(table)
        table.clear()
        for row in board.schedules:
            name = f" ({row['name']})" if row.get("name") else ""
            state = "" if row["state"] == "active" else f" [{row['state']}]"
            schedule = row["schedule"] + name + state
            table.add_row(
                printable(row["target"]),
                printable(schedule),
                _next(row["next"], 0),
                _next(row["next"], 1),
                _last(row["last_run"]),
                printable(row["where"]),
                key=row["key"],
            )
        _highlight(table, highlighted)
        table.display = bool(board.schedules)
        self.query_one("#no-schedules").display = not board.schedules
        triggers = self.query_one("#triggers", DataTable)
        highlighted = _highlighted_key(triggers)
        triggers.clear()
        for row in board.triggers:
            triggers.add_row(
                printable(row["target"]),
                printable(row["trigger"]),
                _last(row["last_run"]),
                printable(row["where"]),
                key=row["key"],
            )
        _highlight(triggers, highlighted)
        for widget_id in ("#triggers", "#triggers-title"):
            self.query_one(widget_id).display = bool(board.triggers)
        errors = Text()
        for error in board.errors:
            if errors:
                errors.append("\n")
            errors.append(f"{error['where']}: ", style="bold red")
            errors.append(printable(str(error["message"])))
        self.query_one("#errors", Static).update(errors)
        for widget_id in ("#errors", "#errors-title"):
            self.query_one(widget_id).display = bool(board.errors)
        self.sub_title = f"{len(board.schedules)} schedules, {len(board.triggers)} triggers"

    @on(DataTable.RowSelected)
    def _row_selected(self, event: DataTable.RowSelected) -> None:
        self._open_last(event.row_key.value)

    def action_open_last(self) -> None:
        """Open the last run of the highlighted schedule or trigger."""
        focused = self.focused
        if isinstance(focused, DataTable) and focused.row_count:
            self._open_last(_highlighted_key(focused))

    def _open_last(self, key: str | None) -> None:
        if self.board is None:
            return
        for row in [*self.board.schedules, *self.board.triggers]:
            if row["key"] == key and row["last_run"]:
                self.app.open_run(row["last_run"]["id"])  # type: ignore[attr-defined]

    def _highlighted_schedule(self) -> dict[str, Any] | None:
        """The schedule under the cursor of the schedules table, as last shown; None (and
        a warning) when the triggers table has the focus or there is no schedule."""
        table = self.query_one("#schedules", DataTable)
        if self.board is None or not table.row_count or self.focused is self.query_one("#triggers"):
            self.notify(PICK_A_SCHEDULE, severity="warning")
            return None
        key = _highlighted_key(table)
        return next((row for row in self.board.schedules if row["key"] == key), None)

    def action_toggle_pause(self) -> None:
        """Pause the highlighted schedule, or resume it if it is paused."""
        row = self._highlighted_schedule()
        if row is not None:
            self._toggle_pause(row["schedule_name"], row["state"] == "paused")

    @work(thread=True, group="schedule-actions", exit_on_error=False)
    def _toggle_pause(self, name: str, paused: bool) -> None:
        act = resume_schedule if paused else pause_schedule
        try:
            outcome = act(self.app.home, name)  # type: ignore[attr-defined]
        except OrchError as exc:
            outcome = Outcome(str(exc), ok=False)
        self.repoll()
        self.app.call_from_thread(self._report, outcome)

    def action_run_schedule(self) -> None:
        """Ask, then run the highlighted schedule's target now, as `orch run --schedule`."""
        row = self._highlighted_schedule()
        if row is not None:
            self._plan_run(row["schedule_name"])

    @work(thread=True, exclusive=True, group="schedule-run", exit_on_error=False)
    def _plan_run(self, name: str) -> None:
        try:
            scheduled = schedule_run(self.app.home, name)  # type: ignore[attr-defined]
        except OrchError as exc:
            self.app.call_from_thread(self._report, Outcome(str(exc), ok=False))
            return
        self.app.call_from_thread(self._confirm_run, scheduled)

    def _confirm_run(self, scheduled: ScheduleRun) -> None:
        request = scheduled.request
        question = (
            f"Run schedule {scheduled.name!r} now: {request.target}"
            f" ({parameters_text(request.params)})? The new run is {request.run_id[:8]}."
        )

        def answered(yes: bool | None) -> None:
            if yes:
                self.app.start_run(request, scheduled)  # type: ignore[attr-defined]

        self.app.push_screen(ConfirmScreen(question), answered)

    def _report(self, outcome: Outcome) -> None:
        """As the app reports every action, with the CLI's message capitalised."""
        outcome.message = outcome.message[:1].upper() + outcome.message[1:]
        self.app._report(outcome)  # type: ignore[attr-defined]
