"""A run's log lines, following live while it runs, filtered by level, task and text."""

from __future__ import annotations

from typing import Any, ClassVar

from rich.text import Text
from textual import on
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Horizontal
from textual.widgets import Input, RichLog, Select

from ..store import LogRecord
from ..views import format_log, printable
from .format import LEVEL_STYLES, LEVELS
from .header import Header
from .keys import APP_KEYS, compact_footer
from .poller import Poller
from .polling import PollingScreen
from .reader import FLOW_ONLY, LogBatch, LogFilter, LogFollower

LEVEL_KEYS = {"1": 10, "2": 20, "3": 30, "4": 40, "5": 50}


class LogsScreen(PollingScreen):
    AUTO_FOCUS = "#log"
    BINDINGS: ClassVar[list[BindingType]] = [
        *APP_KEYS,
        Binding("escape", "back", "Back"),
        *(
            Binding(key, f"level({level})", LEVELS[level].lower(), show=key in "135")
            for key, level in LEVEL_KEYS.items()
        ),
        Binding("t", "focus('log-task')", "Task"),
        Binding("slash", "focus('log-search')", "Search"),
        Binding("end", "follow", "Follow"),
    ]

    def __init__(self, run_id: str, log_filter: LogFilter | None = None) -> None:
        super().__init__()
        self.run_id = run_id
        self.follower = LogFollower(run_id, log_filter)
        self.records: list[LogRecord] = []
        self.tasks: dict[str, str] = {}
        """The run's task runs: name by id (the task filter's choices)."""

    def compose(self) -> ComposeResult:
        yield Header()
        with Horizontal(id="log-filters"):
            yield Select[str]([], prompt="every task", id="log-task")
            yield Input(self.follower.filter.text, placeholder="/ search", id="log-search")
        yield RichLog(id="log", wrap=True, markup=False)
        yield compact_footer()

    def on_mount(self) -> None:
        self.title = f"logs of run {self.run_id[:8]}"
        self._describe()
        super().on_mount()

    def make_poller(self) -> Poller[Any]:
        return Poller(self.app.home, self.follower)  # type: ignore[attr-defined]

    def show(self, batch: LogBatch) -> None:
        if batch.tasks is not None:
            self._set_tasks(batch.tasks)
        log = self.query_one("#log", RichLog)
        # Scrolled back from the end, the lines stay put while new ones come (`end` follows).
        follow = batch.reset or not self.records or log.is_vertical_scroll_end
        if batch.reset or not self.records:
            log.clear()
            self.records = []
        self.records.extend(batch.records)
        text = self.follower.filter.text
        for record in batch.records:
            line = Text(format_log(record), style=LEVEL_STYLES.get(record.level, ""))
            if text:
                line.highlight_words([text], "reverse", case_sensitive=False)
            log.write(line, scroll_end=follow)
        if not self.records:
            log.write(Text("no log lines match these filters yet", style="dim"))

    def _set_tasks(self, tasks: list[tuple[str, str]]) -> None:
        self.tasks = dict(tasks)
        select = self.query_one("#log-task", Select)
        wanted = self.follower.filter.task
        with select.prevent(Select.Changed):
            named = ((printable(n), i) for i, n in tasks)
            select.set_options([("the flow run only", FLOW_ONLY), *named])
            if wanted is not None and (wanted == FLOW_ONLY or wanted in self.tasks):
                select.value = wanted
        self._describe()

    def _describe(self) -> None:
        shown = self.follower.filter
        level = shown.min_level
        parts = [f"{LEVELS.get(level, 'all')} and above" if level else "all levels"]
        if shown.task == FLOW_ONLY:
            parts.append("the flow run only")
        elif shown.task is not None:
            parts.append(f"task {self.tasks.get(shown.task, shown.task[:8])}")
        if shown.text:
            parts.append(f"containing {shown.text!r}")
        self.sub_title = printable(", ".join(parts))

    def _set_filter(self, **changes: Any) -> None:
        current = self.follower.filter
        values = {"min_level": current.min_level, "task": current.task, "text": current.text}
        self.follower.set_filter(LogFilter(**(values | changes)))
        self._describe()
        self.repoll()

    def action_level(self, level: int) -> None:
        self._set_filter(min_level=level)

    @on(Select.Changed, "#log-task")
    def _task_changed(self, event: Select.Changed) -> None:
        value = event.value
        self._set_filter(task=value if isinstance(value, str) else None)

    @on(Input.Changed, "#log-search")
    def _search_changed(self, event: Input.Changed) -> None:
        self._set_filter(text=event.value.strip())

    @on(Input.Submitted, "#log-search")
    def _submitted(self) -> None:
        self.query_one("#log").focus()

    async def action_focus(self, widget_id: str) -> None:
        # At once, not after the keys already queued (as `focus()` would): the letters typed
        # right after the key go to the box it names.
        self.set_focus(self.query_one(f"#{widget_id}"))

    def action_back(self) -> None:
        """From a filter, back to the lines; from the lines, back to the last screen."""
        if not self.query_one("#log").has_focus:
            self.query_one("#log").focus()
        else:
            self.app.pop_screen()

    def action_follow(self) -> None:
        """To the newest line; the lines that come next are followed again."""
        self.query_one("#log", RichLog).scroll_end(animate=False)
