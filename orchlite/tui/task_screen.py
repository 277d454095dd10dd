"""One task run: its attempts, inputs, cache key and entry, the task runs it waited for and
those that waited for it, its result preview and its error. Nothing is unpickled: results
show as the redacted previews recorded when they were stored."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, ClassVar

from rich.console import Group
from rich.text import Text
from textual import on
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import VerticalScroll
from textual.widgets import OptionList, Static
from textual.widgets.option_list import Option

from ..store import CacheEntry, TaskRun, TaskRunDetail
from ..views import iso, printable
from .format import badge, clock_time, coloured, run_duration
from .header import Header
from .keys import APP_KEYS, compact_footer
from .poller import Poller
from .polling import PollingScreen
from .reader import TaskSnapshot, load_task

PREVIEW_CELLS = 60
"""How much of an upstream task run's result preview its line shows."""


class TaskRunScreen(PollingScreen):
    AUTO_FOCUS = "#task-detail"
    BINDINGS: ClassVar[list[BindingType]] = [
        *APP_KEYS,
        Binding("escape", "app.pop_screen", "Back"),
        Binding("l", "logs", "Logs"),
    ]

    def __init__(self, run_id: str, position: int) -> None:
        super().__init__()
        self.run_id = run_id
        self.position = position
        self.detail: TaskRunDetail | None = None

    def compose(self) -> ComposeResult:
        yield Header()
        with VerticalScroll(id="task-detail"):
            yield Static(id="task-summary")
            yield Static("Attempts", classes="section")
            yield Static(id="attempts")
            yield Static("Inputs and upstream", classes="section")
            yield Static(id="inputs")
            yield OptionList(id="upstream", classes="links")
            yield Static("Cache", classes="section")
            yield Static(id="cache")
            yield Static("Result", classes="section")
            yield Static(id="task-result")
            yield Static("Downstream", classes="section")
            yield OptionList(id="downstream", classes="links")
            yield Static("Error", classes="section", id="task-error-title")
            yield Static(id="task-error")
        yield compact_footer()

    def on_mount(self) -> None:
        self.title = f"task run {self.position} of run {self.run_id[:8]}"
        super().on_mount()

    def make_poller(self) -> Poller[Any]:
        run_id, position = self.run_id, self.position
        return Poller(
            self.app.home,  # type: ignore[attr-defined]
            lambda store: load_task(store, run_id, position),
        )

    def show(self, snapshot: TaskSnapshot) -> None:
        run, detail = snapshot.run, snapshot.detail
        self.sub_title = printable(f"{run.flow_name} / {run.name}")
        self.detail = detail
        summary = self.query_one("#task-summary", Static)
        if detail is None:
            summary.update(Text(f"run {run.id[:8]} has no task run {self.position}", "dim"))
            return
        now = self.app.clock()  # type: ignore[attr-defined]
        task = detail.task
        summary.update(_summary(task, now))
        self.query_one("#attempts", Static).update(_attempts(detail, now))
        self.query_one("#inputs", Static).update(_inputs(detail))
        _links(self.query_one("#upstream", OptionList), detail.upstream, detail.upstream_count)
        self.query_one("#cache", Static).update(_cache(task, detail.cache_entry, now))
        preview = task.result_preview
        shown = Text(printable(preview)) if preview else Text("no result stored", "dim")
        self.query_one("#task-result", Static).update(shown)
        _links(
            self.query_one("#downstream", OptionList),
            detail.downstream,
            detail.downstream_count,
            "none",
        )
        error = task.traceback or (
            f"{task.error_type}: {task.error_message}" if task.error_type else None
        )
        self.query_one("#task-error-title").display = bool(error)
        self.query_one("#task-error", Static).display = bool(error)
        self.query_one("#task-error", Static).update(Text(printable(error or ""), style="red"))

    @on(OptionList.OptionSelected, ".links")
    def _open_link(self, event: OptionList.OptionSelected) -> None:
        if event.option.id is not None:
            self.app.open_task(self.run_id, int(event.option.id))  # type: ignore[attr-defined]

    def action_logs(self) -> None:
        task_id = self.detail.task.id if self.detail else None
        self.app.open_logs(self.run_id, task_id)  # type: ignore[attr-defined]


def _summary(task: TaskRun, now: float) -> Group:
    head = Text.assemble(badge(task.state), " ", (printable(task.name), "bold"))
    head.append(f"  #{task.position}", style="dim")
    lines = [
        head,
        Text(printable(f"id {task.id}   task {task.task_key}")),
        Text(
            f"started {clock_time(task.started, now)}   "
            f"duration {run_duration(task.started, task.ended, now)}   "
            f"attempts {task.attempts}"
        ),
    ]
    tags = task.tags if task.tags != "[]" else ""
    if tags:
        lines.append(Text("tags ", "dim").append(printable(tags), ""))
    if task.state_message:
        lines.append(Text(printable(task.state_message), style="italic"))
    return Group(*lines)


def _attempts(detail: TaskRunDetail, now: float) -> Text:
    """A line per attempt: its number, how it ended, how long it took, and its message."""
    if not detail.attempts:
        how = detail.task.state_message or "it did not run"
        return Text(printable(f"none: {how}"), style="dim")
    text = Text(no_wrap=True, overflow="ellipsis")
    for attempt in detail.attempts:
        if text:
            text.append("\n")
        text.append(f"{attempt.number:>3}  ")
        text.append_text(coloured(attempt.state, f"{attempt.state:<10}"))
        text.append(f" {run_duration(attempt.started, attempt.ended, now):>7}  ")
        text.append(printable(" ".join((attempt.message or "").split())))
    return text


def _inputs(detail: TaskRunDetail) -> Text:
    task = detail.task
    text = Text("inputs hash ", style="dim").append(task.inputs_hash or "-", style="")
    source = "the task runs below" if detail.upstream_count else "no task run"
    text.append(f"\nfrom {source}; other argument values are not recorded", style="dim")
    return text


def _links(
    options: OptionList, tasks: Sequence[TaskRun], count: int, empty: str | None = None
) -> None:
    """The task runs as options (enter opens one), each with its result preview."""
    shown = [Option(_link(task), id=str(task.position)) for task in tasks]
    if count > len(tasks):
        shown.append(Option(Text(f"and {count - len(tasks)} more", "dim"), disabled=True))
    if not shown and empty:
        shown.append(Option(Text(empty, "dim"), disabled=True))
    highlighted = options.highlighted
    options.set_options(shown)
    if shown and not shown[0].disabled:
        options.highlighted = min(highlighted or 0, len(tasks) - 1)
    options.display = bool(shown)


def _link(task: TaskRun) -> Text:
    text = Text.assemble(
        badge(task.state), " ", printable(task.name), (f"  #{task.position}", "dim")
    )
    if task.result_preview:
        preview = printable(" ".join(task.result_preview.split()))
        text.append("  = ", style="dim").append(preview[:PREVIEW_CELLS])
    text.no_wrap, text.overflow = True, "ellipsis"
    return text


def _cache(task: TaskRun, entry: CacheEntry | None, now: float) -> Text:
    """Its cache key, and the entry kept under it: who wrote it, until when."""
    if task.cache_key is None:
        return Text("no cache key: its task does not cache", style="dim")
    text = Text("key ", style="dim").append(task.cache_key, style="")
    if entry is None:
        return text.append("\nno entry kept under it (expired and pruned, or cleared)", "dim")
    who = "this task run" if entry.task_run_id == task.id else f"task run {entry.task_run_id}"
    text.append(f"\nentry written by {who} at {clock_time(entry.created, now)}", style="dim")
    if entry.expires is None:
        text.append(", never expires", style="dim")
    else:
        expired = entry.expires <= now
        when = iso(entry.expires)
        text.append(f", {'expired' if expired else 'expires'} {when}", style="dim")
    return text
