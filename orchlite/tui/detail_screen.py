"""One run: parameters, state history, task runs, results, a timeline, the error and related
runs."""

from __future__ import annotations

import itertools
import json
from typing import Any, ClassVar

from rich.console import Group
from rich.text import Text
from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import VerticalScroll
from textual.markup import escape
from textual.widgets import DataTable, OptionList, Static
from textual.widgets.option_list import Option

from ..errors import OrchError
from ..results import check_owned
from ..states import TERMINAL
from ..store import FlowRun, TaskRun
from ..views import printable
from .artifact_view import render_artifacts
from .columns import MAX_CELL, FittedTable
from .confirm import ConfirmScreen
from .format import badge, clock_time, coloured, run_duration
from .header import Header
from .keys import APP_KEYS, compact_footer
from .poller import Poller
from .polling import PollingScreen
from .preview import ResultPreview, load_preview, load_results
from .run_reader import DetailFollower, RunDetail
from .timeline import Span, Timeline

ROWS_AT_ONCE = 500
"""Task-table rows added between two looks at the keyboard."""
TASK_COLUMNS = ("#", "Task", "State", "Tries", "Duration", "Cached", "Error / message")


class RunDetailScreen(PollingScreen):
    AUTO_FOCUS = "#tasks"
    """Up and down pick a task run, enter opens its lines; tab goes on to the related runs."""

    BINDINGS: ClassVar[list[BindingType]] = [
        *APP_KEYS,
        Binding("escape", "app.pop_screen", "Back"),
        Binding("l", "logs", "Logs"),
        Binding("c", "cancel", "Cancel"),
        Binding("r", "retry", "Retry"),
        Binding("p", "resume", "Resume"),
        Binding("u", "load_results", "Results"),
        Binding("g", "graph", "Graph"),
    ]

    def __init__(self, run_id: str) -> None:
        super().__init__()
        self.run_id = run_id
        self.detail: RunDetail | None = None
        self.task_rows: dict[str, tuple[Any, ...]] = {}
        """The cells shown, by row key (a task run's position)."""
        self.task_by_key: dict[str, TaskRun] = {}
        self.waiting: dict[str, TaskRun | tuple[Any, ...]] = {}
        """Task runs (or a subflow's cells) whose rows are still to be added
        (`_add_waiting`), by row key."""
        self.subflows: dict[str, str] = {}
        """The row keys of subflow runs, and their run ids."""
        self.last_position = -1
        self.running: set[str] = set()
        """The row keys of task runs whose duration counts up."""
        self.preview: ResultPreview | None = None
        self._previewed: tuple[object, ...] | None = None

    def compose(self) -> ComposeResult:
        yield Header()
        with VerticalScroll(id="detail"):
            yield Static(id="summary")
            yield Static("Tasks", classes="section")
            yield FittedTable(
                id="tasks",
                cursor_type="row",
                zebra_stripes=True,
                flexible=("error / message", "task"),
            )
            yield Static("Result", classes="section")
            yield Static(id="result")
            yield Static("Artifacts", classes="section", id="artifacts-title")
            yield Static(id="artifacts")
            yield Static("Timeline", classes="section")
            yield Timeline(id="timeline")
            yield Static("Related runs", classes="section", id="related-title")
            yield OptionList(id="related")
            yield Static("State history", classes="section")
            yield Static(id="history")
            yield Static("Error", classes="section", id="error-title")
            yield Static(id="error")
        yield compact_footer()

    def on_mount(self) -> None:
        table = self.query_one("#tasks", DataTable)
        for label in TASK_COLUMNS:
            table.add_column(label, key=label.lower())
        self.title = f"run {self.run_id[:8]}"
        self.set_interval(1.0, self._tick)
        super().on_mount()

    def make_poller(self) -> Poller[Any]:
        return Poller(self.app.home, DetailFollower(self.run_id))  # type: ignore[attr-defined]

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        """`c` is offered only while the run has not finished."""
        return not (action == "cancel" and self.finished)

    @property
    def finished(self) -> bool:
        return self.detail is not None and self.detail.run.state in TERMINAL

    def show(self, detail: RunDetail) -> None:
        finished = self.finished
        self.detail = detail
        if self.finished != finished:
            self.refresh_bindings()
        now = self.app.clock()  # type: ignore[attr-defined]
        run = detail.run
        self.sub_title = printable(f"{run.flow_name} / {run.name}")
        self.query_one("#summary", Static).update(self._summary(run, now))
        self._show_tasks(detail, now)
        self._show_subflows(detail.children, now)
        self._show_timeline(now)
        if detail.artifacts:
            names = {task.id: task.name for task in detail.tasks}
            self.query_one("#artifacts", Static).update(render_artifacts(detail.artifacts, names))
        for part in ("#artifacts", "#artifacts-title"):
            self.query_one(part).display = bool(detail.artifacts)
        self._preview_if_changed()
        self._show_related(detail)
        history = Text()
        for entry in detail.history:
            history.append(f"{clock_time(entry.ts, now)}  ")
            history.append_text(coloured(entry.state, f"{entry.state:<10}"))
            history.append(f"  {printable(entry.message or '')}\n")
        self.query_one("#history", Static).update(history)
        error = detail.error or (run.state_message if run.state in _BAD else None)
        self.query_one("#error-title").display = bool(error)
        self.query_one("#error", Static).display = bool(error)
        self.query_one("#error", Static).update(Text(printable(error or ""), style="red"))

    def _show_tasks(self, detail: RunDetail, now: float) -> None:
        """Update the cells that changed and add the rows of new task runs: never the whole
        table, which would cost a run of thousands of task runs its keyboard."""
        table = self.query_one("#tasks", DataTable)
        if detail.changed is None:  # a whole new list (the first)
            table.clear()
            self.task_rows.clear()
            self.waiting.clear()
            self.task_by_key.clear()
            self.subflows.clear()
            self.running.clear()
            self.last_position = -1
        for task in detail.tasks if detail.changed is None else detail.changed:
            key = str(task.position)
            self.task_by_key[key] = task
            if task.started is not None and task.ended is None:
                self.running.add(key)
            else:
                self.running.discard(key)
            old = self.task_rows.get(key)
            if old is None:
                self.waiting[key] = task
            else:
                self._update_cells(table, key, old, _task_cells(task, now))

    def _update_cells(
        self, table: DataTable[Any], key: str, old: tuple[Any, ...], cells: tuple[Any, ...]
    ) -> None:
        for column, before, after in zip(TASK_COLUMNS, old, cells, strict=True):
            if before != after:
                table.update_cell(key, column.lower(), after)
        self.task_rows[key] = cells

    def _show_subflows(self, children: list[FlowRun], now: float) -> None:
        """A row per subflow run, at its call position among the task runs (enter opens it)."""
        table = self.query_one("#tasks", DataTable)
        for child in children:
            if child.parent_position is None:
                continue
            key = str(child.parent_position)
            self.subflows[key] = child.id
            cells = _subflow_cells(child, now)
            old = self.task_rows.get(key)
            if old is None:
                self.waiting[key] = cells
            else:
                self._update_cells(table, key, old, cells)
        self._add_waiting()

    def _show_timeline(self, now: float) -> None:
        detail = self.detail
        if detail is None:
            return
        spans: list[Span] = list(detail.tasks)
        if detail.children:  # among the task runs, in call order (nearly sorted: cheap)
            spans += [c for c in detail.children if c.parent_position is not None]
            spans.sort(key=_call_position)
        self.query_one("#timeline", Timeline).show(spans, now, detail.retried)

    def _add_waiting(self) -> None:
        """Add up to `ROWS_AT_ONCE` waiting rows, and the next ones once the keys pressed
        meanwhile are answered: a run of thousands of task runs opens at once."""
        table = self.query_one("#tasks", DataTable)
        now = self.app.clock()  # type: ignore[attr-defined]
        out_of_order = False
        for key in list(itertools.islice(self.waiting, ROWS_AT_ONCE)):
            waiting = self.waiting.pop(key)
            cells = waiting if isinstance(waiting, tuple) else _task_cells(waiting, now)
            table.add_row(*cells, key=key)
            self.task_rows[key] = cells
            out_of_order = out_of_order or int(key) < self.last_position
            self.last_position = max(self.last_position, int(key))
        if out_of_order:  # task runs recorded out of call order: the table stays in it
            table.sort("#", key=int)
        if self.waiting:
            self.call_later(self._add_waiting)

    @property
    def _selected_key(self) -> str | None:
        table = self.query_one("#tasks", DataTable)
        if table.row_count == 0:
            return None
        return table.coordinate_to_cell_key(table.cursor_coordinate).row_key.value

    def _summary(self, run: FlowRun, now: float) -> Group:
        head = Text.assemble(
            badge(run.state), " ", (printable(run.flow_name), "bold"), f"  {printable(run.name)}"
        )
        lines = [
            head,
            Text(printable(f"id {run.id}   trigger {run.trigger}   target {run.target or '-'}")),
            Text(
                f"started {clock_time(run.started, now)}   "
                f"duration {run_duration(run.started, run.ended, now)}   "
                f"attempts {run.attempts}"
            ),
        ]
        if run.state_message:
            lines.append(Text(printable(run.state_message), style="italic"))
        params = json.loads(run.parameters or "{}")
        lines.append(
            Text("parameters ", style="dim").append(
                printable(", ".join(f"{k}={v!r}" for k, v in params.items())) or "none", style=""
            )
        )
        return Group(*lines)

    def _show_related(self, detail: RunDetail) -> None:
        options = []
        for label, run in (("parent", detail.parent), ("retry of", detail.retry_of)):
            if run is not None:
                options.append(self._option(label, run))
        options += [self._option("retried by", retry) for retry in detail.retried_by]
        options += [self._option("subflow", child) for child in detail.children]
        related = self.query_one("#related", OptionList)
        highlighted = related.highlighted
        related.clear_options()
        related.add_options(options)
        if options:  # one is always highlighted, so that enter opens it
            related.highlighted = min(highlighted or 0, len(options) - 1)
        related.display = bool(options)
        self.query_one("#related-title").display = bool(options)

    @staticmethod
    def _option(label: str, run: FlowRun) -> Option:
        names = printable(f" {run.flow_name}  {run.name}")
        text = Text.assemble(f"{label:<11}{run.id[:8]} ", badge(run.state), names)
        return Option(text, id=run.id)

    def _tick(self) -> None:
        """Count up the durations of the run and its task runs still going."""
        detail = self.detail
        if not (detail and detail.run.ended is None and detail.run.started is not None):
            return
        now = self.app.clock()  # type: ignore[attr-defined]
        self.query_one("#summary", Static).update(self._summary(detail.run, now))
        table = self.query_one("#tasks", DataTable)
        column = TASK_COLUMNS.index("Duration")
        for key in self.running & self.task_rows.keys():
            cells = self.task_rows[key]
            shown = run_duration(self.task_by_key[key].started, None, now)
            if cells[column] != shown:
                table.update_cell(key, "duration", shown)
                self.task_rows[key] = (*cells[:column], shown, *cells[column + 1 :])
        self._show_timeline(now)

    # -- results -------------------------------------------------------------------

    @property
    def highlighted_task(self) -> TaskRun | None:
        key = self._selected_key
        return None if key is None else self.task_by_key.get(key)

    @on(DataTable.RowHighlighted, "#tasks")
    def _task_highlighted(self) -> None:
        self._preview_if_changed()

    def _preview_if_changed(self) -> None:
        """Load the previews again when the highlighted task or a result may have changed."""
        if self.detail is None:
            return
        task = self.highlighted_task
        run = self.detail.run
        seen = (run.state, run.result_ref) + (
            (task.position, task.state, task.result_ref) if task else ()
        )
        if seen != self._previewed:
            self._previewed = seen
            self._load_preview(task.position if task else None)

    @work(thread=True, exclusive=True, group="preview", exit_on_error=False)
    def _load_preview(self, position: int | None) -> None:
        found = load_preview(self.app.home, self.run_id, position)  # type: ignore[attr-defined]
        self.app.call_from_thread(self._show_preview, found, position)

    def _show_preview(self, found: ResultPreview, position: int | None) -> None:
        if not self.is_running:
            return  # closed while the preview loaded
        self.preview = found
        text = Text()
        text.append("flow run  ", style="dim").append(printable(found.run))
        task = self.highlighted_task
        if found.task is not None and task is not None and task.position == position:
            name = printable(task.name)[:16]
            text.append(f"\n{name:<16}  ", style="dim").append(printable(found.task))
        if found.loaded:
            text.append("\n(loaded from the store; previews again on the next change)", "dim")
        self.query_one("#result", Static).update(text)

    def action_load_results(self) -> None:
        """Unpickle the flow run's result and the highlighted task's, once the user says so.

        A pickle runs code as whoever loads it, so this asks first, naming the run, and is
        refused outright for a store someone else owns.
        """
        home = self.app.home  # type: ignore[attr-defined]
        try:
            check_owned(home)
        except OrchError as exc:
            self.notify(f"Results not loaded: {exc}", severity="error")
            return
        task = self.highlighted_task
        position = task.position if task else None
        run = self.detail.run if self.detail else None
        named = f" ({run.flow_name} / {run.name})" if run else ""
        which = f"the flow run's result and task {task.name!r}'s" if task else "its result"
        question = (
            f"Load the stored results of run {self.run_id[:8]}{escape(named)}: {escape(which)}?"
            " Loading unpickles them, which runs any code they hold, as you."
        )

        def answered(yes: bool | None) -> None:
            if yes:
                self._load_results(position)

        self.app.push_screen(ConfirmScreen(question), answered)

    @work(thread=True, exclusive=True, group="preview", exit_on_error=False)
    def _load_results(self, position: int | None) -> None:
        found = load_results(self.app.home, self.run_id, position)  # type: ignore[attr-defined]
        self.app.call_from_thread(self._show_preview, found, position)

    @on(DataTable.RowSelected, "#tasks")
    def _task_selected(self) -> None:
        """Enter on a task run: its detail; on a subflow: its run."""
        if subflow := self.subflows.get(self._selected_key or ""):
            self.app.open_run(subflow)  # type: ignore[attr-defined]
        elif task := self.highlighted_task:
            self.app.open_task(self.run_id, task.position)  # type: ignore[attr-defined]

    @on(OptionList.OptionSelected, "#related")
    def _open_related(self, event: OptionList.OptionSelected) -> None:
        if event.option.id:
            self.app.open_run(event.option.id)  # type: ignore[attr-defined]

    def action_logs(self) -> None:
        self.app.open_logs(self.run_id)  # type: ignore[attr-defined]

    def action_graph(self) -> None:
        self.app.open_graph(self.run_id)  # type: ignore[attr-defined]

    def action_cancel(self) -> None:
        self.app.confirm_cancel(self.run_id)  # type: ignore[attr-defined]

    def action_retry(self) -> None:
        self.app.confirm_retry(self.run_id)  # type: ignore[attr-defined]

    def action_resume(self) -> None:
        self.app.resume_form(self.run_id)  # type: ignore[attr-defined]


_BAD = {"FAILED", "CRASHED", "TIMED_OUT", "CANCELLED"}


def _task_cells(task: TaskRun, now: float) -> tuple[Any, ...]:
    message = f"{task.error_type}: {task.error_message}" if task.error_type else task.state_message
    return (
        str(task.position),
        Text(printable(task.name)),
        badge(task.state),
        str(task.attempts),
        run_duration(task.started, task.ended, now),
        "yes" if task.state == "CACHED" else "",
        _short(message),
    )


def _subflow_cells(run: FlowRun, now: float) -> tuple[Any, ...]:
    return (
        str(run.parent_position),
        Text.assemble(("subflow ", "dim"), printable(run.name)),
        badge(run.state),
        str(run.attempts),
        run_duration(run.started, run.ended, now),
        "",
        _short(run.state_message),
    )


def _call_position(span: Span) -> int:
    if isinstance(span, TaskRun):
        return span.position
    return span.parent_position or 0 if isinstance(span, FlowRun) else 0


def _short(text: str | None) -> Text:
    """A message on one line (the table cuts it to the column's width)."""
    return Text(printable((text or "").replace("\n", " "))[:MAX_CELL])
