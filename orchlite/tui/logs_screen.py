"""A run's log lines, following live while it runs, filtered by level."""

from __future__ import annotations

from typing import Any, ClassVar

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.widgets import Footer, Header, RichLog

from ..store import LogRecord
from ..views import format_log
from .format import LEVEL_STYLES, LEVELS
from .polling import PollingScreen
from .reader import LogBatch, LogFollower, Poller

LEVEL_KEYS = {"1": 10, "2": 20, "3": 30, "4": 40, "5": 50}


class LogsScreen(PollingScreen):
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("escape", "app.pop_screen", "Back"),
        *(
            Binding(key, f"level({level})", LEVELS[level].lower(), show=key in "135")
            for key, level in LEVEL_KEYS.items()
        ),
        Binding("end", "follow", "Follow"),
    ]

    def __init__(self, run_id: str, min_level: int = 0) -> None:
        super().__init__()
        self.run_id = run_id
        self.follower = LogFollower(run_id, min_level)
        self.records: list[LogRecord] = []

    def compose(self) -> ComposeResult:
        yield Header()
        yield RichLog(id="log", wrap=True, markup=False, auto_scroll=True)
        yield Footer()

    def on_mount(self) -> None:
        self.title = f"logs of run {self.run_id[:8]}"
        self._describe()
        self.query_one("#log").focus()
        super().on_mount()

    def make_poller(self) -> Poller[Any]:
        return Poller(self.app.home, self.follower)  # type: ignore[attr-defined]

    def show(self, batch: LogBatch) -> None:
        log = self.query_one("#log", RichLog)
        if batch.reset or not self.records:
            log.clear()
            self.records = []
        self.records.extend(batch.records)
        for record in batch.records:
            log.write(Text(format_log(record), style=LEVEL_STYLES.get(record.level, "")))
        if not self.records:
            log.write(Text("no log lines at this level yet", style="dim"))

    def _describe(self) -> None:
        level = self.follower.min_level
        self.sub_title = f"{LEVELS.get(level, 'all')} and above" if level else "all levels"

    def action_level(self, level: int) -> None:
        self.follower.set_level(level)
        self._describe()
        self.repoll()

    def action_follow(self) -> None:
        log = self.query_one("#log", RichLog)
        log.auto_scroll = True
        log.scroll_end(animate=False)
