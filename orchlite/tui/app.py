"""The Textual app behind `orch tui`, built by `make_app()` for the CLI and the tests alike."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import ClassVar

from textual import work
from textual.app import App
from textual.binding import Binding, BindingType

from ..config import find_home
from ..errors import OrchError
from . import actions
from .confirm import ConfirmScreen
from .detail_screen import RunDetailScreen
from .help import HelpScreen
from .logs_screen import LogsScreen
from .runs_screen import RunsScreen


class OrchApp(App[None]):
    """Reads the store at `home` (never writes it itself); `clock` gives "now" for durations."""

    CSS_PATH = "orch.tcss"
    TITLE = "orch"
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("q", "quit", "Quit"),
        Binding("question_mark", "help", "Help", key_display="?"),
    ]

    def __init__(self, home: Path, clock: Callable[[], float] = time.time) -> None:
        super().__init__()
        self.home = home
        self.clock = clock
        self.outcomes: list[actions.Outcome] = []
        """Every action's result, newest last (also shown as a notification)."""

    def on_mount(self) -> None:
        self.sub_title = str(self.home)
        self.push_screen(RunsScreen())

    # -- navigation ----------------------------------------------------------------

    def open_run(self, run_id: str) -> None:
        if isinstance(self.screen, RunDetailScreen):
            self.switch_screen(RunDetailScreen(run_id))  # related runs do not pile up
        else:
            self.push_screen(RunDetailScreen(run_id))

    def open_logs(self, run_id: str) -> None:
        self.push_screen(LogsScreen(run_id))

    def action_help(self) -> None:
        if not isinstance(self.screen, HelpScreen):
            self.push_screen(HelpScreen())

    # -- actions (confirmed, run in worker threads) ----------------------------------

    def confirm_cancel(self, run_id: str) -> None:
        def answered(yes: bool | None) -> None:
            if yes:
                self.notify(f"Cancelling run {run_id[:8]}…")
                self._cancel(run_id)

        self.push_screen(ConfirmScreen(f"Cancel run {run_id[:8]}?"), answered)

    def confirm_retry(self, run_id: str) -> None:
        try:
            request = actions.retry_request(self.home, run_id)
        except OrchError as exc:
            self._report(actions.Outcome(str(exc), ok=False))
            return

        def answered(yes: bool | None) -> None:
            if yes:
                self.notify(f"Retrying run {run_id[:8]} as run {request.run_id[:8]}…")
                self._retry(request)

        question = (
            f"Retry run {run_id[:8]}? Tasks that completed in it are not executed again; "
            f"the new run is {request.run_id[:8]}."
        )
        self.push_screen(ConfirmScreen(question), answered)

    @work(thread=True, group="actions", exit_on_error=False)
    def _cancel(self, run_id: str) -> None:
        self._attempt(lambda: actions.cancel(self.home, run_id))

    @work(thread=True, group="actions", exit_on_error=False)
    def _retry(self, request: actions.RunRequest) -> None:
        self._attempt(lambda: actions.retry(self.home, request))

    def _attempt(self, action: Callable[[], actions.Outcome]) -> None:
        try:
            outcome = action()
        except OrchError as exc:
            outcome = actions.Outcome(str(exc), ok=False)
        except Exception as exc:  # a worker must not take the app down: say what happened
            outcome = actions.Outcome(f"{type(exc).__name__}: {exc}", ok=False)
        self.call_from_thread(self._report, outcome)

    def _report(self, outcome: actions.Outcome) -> None:
        self.outcomes.append(outcome)
        self.notify(outcome.message, severity="information" if outcome.ok else "error")


def make_app(home: Path | None = None, *, clock: Callable[[], float] = time.time) -> OrchApp:
    """The app for the project whose store is `home` (default: found as the CLI finds it)."""
    return OrchApp(find_home(home) if home is not None else find_home(), clock)
