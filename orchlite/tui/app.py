"""The Textual app behind `orch tui`, built by `make_app()` for the CLI and the tests alike."""

from __future__ import annotations

import gc
import time
import traceback
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, ClassVar

from textual import work
from textual._context import active_message_pump
from textual.app import App
from textual.binding import Binding, BindingType
from textual.markup import escape
from textual.screen import ModalScreen
from textual.worker import Worker, WorkerState

from ..config import find_home, project_root
from ..errors import OrchError, RunNotFoundError
from ..views import printable
from .commands import OrchCommands
from .confirm import ConfirmScreen, retry_question
from .error_screen import ErrorScreen
from .format import parameters_text
from .keys import APP_KEYS, HEALTH_KEY
from .runs_screen import RunsScreen

if TYPE_CHECKING:
    from .. import operations
    from ..flow_source import FlowInfo
    from ..operations import RunRequest, ScheduleRun
    from ..store import FlowRun
    from .bulk_actions import Action, BulkPlan

# Only the runs screen is imported up front, so that it is drawn at once; the other screens
# and what acts on runs (`operations`, and behind it the executor, the project model and the
# daemon's modules) are imported when first used.

STOP_SECONDS = 5.0
"""Quitting waits this long at most for the runs started here to stop (their supervisors
send SIGTERM to the child's process group, then SIGKILL 1.5 s later)."""


class OrchApp(App[None]):
    """Reads the store at `home` (never writes it itself); `clock` gives "now" for durations."""

    CSS_PATH = "orch.tcss"
    TITLE = "orch"
    COMMANDS = App.COMMANDS | {OrchCommands}
    BINDINGS: ClassVar[list[BindingType]] = [
        *APP_KEYS,
        replace(HEALTH_KEY, show=False),
        Binding("e", "rerun_selected", "Edit & re-run", show=False),
    ]

    def __init__(self, home: Path, clock: Callable[[], float] = time.time) -> None:
        super().__init__()
        self.home = home
        self.clock = clock
        self.outcomes: list[operations.Outcome] = []
        """Every action's result, newest last (also shown as a notification)."""
        self.supervising: set[str] = set()
        """Runs started here (run now, retry) whose child process this app still supervises."""
        self.quitting = False
        """Quit was confirmed: the app closes once the runs started here have stopped."""

    def on_mount(self) -> None:
        self.sub_title = str(self.home)
        self.push_screen(RunsScreen())
        # What the start built (modules, styles, widgets) lives as long as the app: kept out
        # of the collector's full passes, which beside a busy daemon came every few seconds
        # and walked all of it (~40 ms each). Given back when the app ends.
        self.call_after_refresh(gc.freeze)

    def on_unmount(self) -> None:
        gc.unfreeze()

    # -- navigation ----------------------------------------------------------------

    def open_run(self, run_id: str) -> None:
        from .detail_screen import RunDetailScreen

        if isinstance(self.screen, RunDetailScreen):
            self.switch_screen(RunDetailScreen(run_id))  # related runs do not pile up
        else:
            self.push_screen(RunDetailScreen(run_id))

    def open_logs(self, run_id: str, task_run_id: str | None = None) -> None:
        """The run's logs; with `task_run_id`, only that task run's lines."""
        from .logs_screen import LogsScreen
        from .reader import LogFilter

        self.push_screen(LogsScreen(run_id, LogFilter(task=task_run_id)))

    def open_graph(self, run_id: str) -> None:
        from .graph_screen import RunGraphScreen

        self.push_screen(RunGraphScreen(run_id))

    def open_task(self, run_id: str, position: int) -> None:
        """Task run `position` of run `run_id` in full."""
        from .task_screen import TaskRunScreen

        if isinstance(self.screen, TaskRunScreen):
            self.switch_screen(TaskRunScreen(run_id, position))  # up and downstream: no pile
        else:
            self.push_screen(TaskRunScreen(run_id, position))

    def action_help(self) -> None:
        from .help import HelpScreen

        if not isinstance(self.screen, HelpScreen):
            self.push_screen(HelpScreen())

    def action_schedules(self) -> None:
        from .schedules_screen import SchedulesScreen

        if not isinstance(self.screen, SchedulesScreen | ModalScreen):
            self.push_screen(SchedulesScreen())

    def action_health(self) -> None:
        """Open the flow health screen, or close it (`h` on it)."""
        from .health_screen import HealthScreen

        if isinstance(self.screen, HealthScreen):
            self.pop_screen()
        elif not isinstance(self.screen, ModalScreen):
            self.push_screen(HealthScreen())

    def show_flow_runs(self, flow: str) -> None:
        """Back to the runs screen, showing the runs of `flow`."""
        while not isinstance(self.screen, RunsScreen) and len(self.screen_stack) > 1:
            self.pop_screen()
        if isinstance(self.screen, RunsScreen):
            self.screen.show_flow(flow)

    @property
    def selected_run_id(self) -> str | None:
        """The run under the cursor (runs screen) or shown (detail and logs screens)."""
        screen = self.screen
        if isinstance(screen, RunsScreen):
            return screen.selected_run_id
        run_id = getattr(screen, "run_id", None)
        return run_id if isinstance(run_id, str) else None

    def _with_selected(self, then: Callable[[str], None]) -> None:
        if run_id := self.selected_run_id:
            then(run_id)
        else:
            self.notify("Select a run first (on the runs screen)", severity="warning")

    def action_cancel_selected(self) -> None:
        self._with_selected(self.confirm_cancel)

    def action_retry_selected(self) -> None:
        self._with_selected(self.confirm_retry)

    def action_logs_selected(self) -> None:
        self._with_selected(self.open_logs)

    def action_rerun_selected(self) -> None:
        if not isinstance(self.screen, ModalScreen):
            self._with_selected(self.rerun_form)

    # -- actions (confirmed, run in worker threads) ----------------------------------

    def confirm_cancel(self, run_id: str) -> None:
        from .. import operations

        try:
            operations.check_cancellable(self.home, run_id)
        except OrchError as exc:
            self._report(operations.Outcome(str(exc), ok=False))
            return

        def answered(yes: bool | None) -> None:
            if yes:
                self.notify(f"Cancelling run {run_id[:8]}…")
                self._cancel(run_id)

        self.push_screen(ConfirmScreen(f"Cancel run {run_id[:8]}?"), answered)

    def confirm_retry(self, run_id: str) -> None:
        from .. import operations

        try:
            plan = operations.retry_plan(self.home, run_id)
        except OrchError as exc:
            self._report(operations.Outcome(str(exc), ok=False))
            return
        request = plan.request

        def answered(yes: bool | None) -> None:
            if yes:
                self.notify(f"Retrying run {run_id[:8]} as run {request.run_id[:8]}…")
                self.supervising.add(request.run_id)
                self._launch(request, None)

        self.push_screen(retry_question(run_id, request.run_id, plan.completed), answered)

    def rerun_form(self, run_id: str) -> None:
        """Edit the run's recorded parameters, then start it again: as a retry of it (asking
        for the word first if it completed) or as a fresh run of its target."""
        from .. import operations
        from .rerun_form import RerunScreen

        try:
            plan = operations.retry_plan(self.home, run_id, redacted_ok=True)
        except OrchError as exc:
            self._report(operations.Outcome(str(exc), ok=False))
            return

        def given(checked: operations.RetryPlan | None) -> None:
            if checked is None:
                return
            request = checked.request
            if request.resume_from is None:
                target = escape(printable(request.target))
                notice = f"Starting run {request.run_id[:8]} of {target}…"
            else:
                notice = f"Retrying run {run_id[:8]} as run {request.run_id[:8]}…"

            def start(yes: bool | None = True) -> None:
                if yes:
                    self.notify(notice)
                    self.supervising.add(request.run_id)
                    self._launch(request, None)

            if checked.completed:
                self.push_screen(retry_question(run_id, request.run_id, completed=True), start)
            else:
                start()

        self.push_screen(RerunScreen(run_id, plan.request.target, plan.request.params), given)

    def confirm_bulk(
        self, action: Action, runs: list[FlowRun], confirmed: Callable[[], None]
    ) -> None:
        """Cancel or retry `runs` together after one question naming how many; those that
        cannot be are skipped and counted (`bulk_actions`). `confirmed()` once answered yes."""
        self._plan_bulk(action, runs, confirmed)

    @work(thread=True, group="actions", exit_on_error=False)
    def _plan_bulk(
        self, action: Action, runs: list[FlowRun], confirmed: Callable[[], None]
    ) -> None:
        from . import bulk_actions

        plan = (bulk_actions.plan_cancel if action == "cancel" else bulk_actions.plan_retry)(
            self.home, runs
        )
        self.call_from_thread(self._ask_bulk, plan, confirmed)

    def _ask_bulk(self, plan: BulkPlan, confirmed: Callable[[], None]) -> None:
        from .. import operations
        from .format import run_count

        if not plan.run_ids:
            self._report(operations.Outcome(plan.nothing, ok=False))
            return

        def answered(yes: bool | None) -> None:
            if not yes:
                return
            confirmed()
            doing = "Cancelling" if plan.action == "cancel" else "Retrying"
            self.notify(f"{doing} {run_count(len(plan.run_ids))}…")
            self.supervising.update(request.run_id for request in plan.requests)
            self._act_bulk(plan)

        typed = "retry" if plan.completed else None
        self.push_screen(ConfirmScreen(plan.question, typed=typed), answered)

    @work(thread=True, group="actions", exit_on_error=False)
    def _act_bulk(self, plan: BulkPlan) -> None:
        from . import bulk_actions

        if plan.action == "cancel":
            self._attempt(lambda: bulk_actions.cancel_all(self.home, plan))
            return
        self._attempt(
            lambda: bulk_actions.retry_all(
                self.home,
                plan,
                quitting=lambda: self.quitting,
                ended=lambda run_id: self.call_from_thread(self._supervised_done, run_id),
            )
        )

    def resume_form(self, run_id: str) -> None:
        """Ask for the input a paused run waits for, then resume it."""
        from .. import operations
        from .resume_form import ResumeScreen

        try:
            fields = operations.resume_fields(self.home, run_id)
        except OrchError as exc:
            self._report(operations.Outcome(str(exc), ok=False))
            return

        def given(values: dict[str, str] | None) -> None:
            if values is not None:
                self._resume(run_id, values)

        self.push_screen(ResumeScreen(run_id, fields), given)

    @work(thread=True, group="actions", exit_on_error=False)
    def _resume(self, run_id: str, values: dict[str, str]) -> None:
        from .. import operations

        def resumed() -> operations.Outcome:
            outcome = operations.resume(self.home, run_id, values)
            outcome.message = outcome.message[:1].upper() + outcome.message[1:]
            return outcome

        self._attempt(resumed)

    def action_run_now(self) -> None:
        """Pick a flow, fill in its parameters, confirm, run it in a child process."""
        if isinstance(self.screen, ModalScreen):
            return  # not on top of a question, a form or an error
        self._find_flows()

    @work(thread=True, exclusive=True, group="find-flows", exit_on_error=False)
    def _find_flows(self) -> None:
        from ..project_model import Project
        from .run_now import FlowPickerScreen

        flows = Project(project_root(self.home)).flows
        self.call_from_thread(self.push_screen, FlowPickerScreen(flows), self._flow_picked)

    def _flow_picked(self, flow: FlowInfo | None) -> None:
        from .run_now import ParamsScreen

        if flow is not None:
            self.push_screen(ParamsScreen(flow), self._params_given)

    def _params_given(self, request: RunRequest | None) -> None:
        if request is None:
            return
        shown = parameters_text(request.params)
        question = f"Run {request.target} now ({shown})? The new run is {request.run_id[:8]}."

        def answered(yes: bool | None) -> None:
            if yes:
                self.start_run(request)

        self.push_screen(ConfirmScreen(question), answered)

    def start_run(self, request: RunRequest, started_by: ScheduleRun | None = None) -> None:
        """Run a confirmed request in a child process this app supervises (`started_by`:
        the schedule it is recorded as started by)."""
        target = escape(printable(request.target))
        self.notify(f"Starting run {request.run_id[:8]} of {target}…")
        self.supervising.add(request.run_id)
        self._launch(request, started_by)

    @work(thread=True, group="actions", exit_on_error=False)
    def _cancel(self, run_id: str) -> None:
        from .. import operations

        self._attempt(lambda: operations.cancel(self.home, run_id))

    @work(thread=True, group="actions", exit_on_error=False)
    def _launch(self, request: RunRequest, started_by: ScheduleRun | None) -> None:
        from .. import operations

        try:
            self._attempt(lambda: operations.launch(self.home, request, started_by))
        finally:
            self.call_from_thread(self._supervised_done, request.run_id)

    async def action_quit(self) -> None:
        """Quit; first ask if runs started here are still going, since quitting cancels them.

        A run's child process is supervised by a thread of this app, so the app cannot end
        before it does: quitting asks each such run to cancel (as `orch cancel` does; the
        child records CANCELLED, as it does for Ctrl-C in `orch run`), and the app closes
        as soon as their children are gone (`STOP_SECONDS` at most).
        """
        if not self.supervising or self.quitting:
            self.exit()  # asked again while the runs stop: do not wait for them
            return
        ids = ", ".join(run_id[:8] for run_id in sorted(self.supervising))
        question = (
            f"Still running, started here: {ids}. Quitting cancels them (they end CANCELLED). Quit?"
        )

        def answered(yes: bool | None) -> None:
            if yes:
                self.quitting = True
                self.notify(f"Cancelling {ids} before quitting…")
                self.set_timer(STOP_SECONDS, self.exit)
                self._stop_supervised(sorted(self.supervising))

        if not isinstance(self.screen, ConfirmScreen):
            self.push_screen(ConfirmScreen(question), answered)

    @work(thread=True, group="quit", exit_on_error=False)
    def _stop_supervised(self, run_ids: list[str]) -> None:
        """Ask each run to cancel; a run whose child has not recorded it yet is asked again
        until it has (its supervising thread then stops the child's process group)."""
        from .. import operations

        deadline = time.monotonic() + STOP_SECONDS
        waiting = list(run_ids)
        while waiting and time.monotonic() < deadline:
            for run_id in list(waiting):
                try:
                    operations.cancel(self.home, run_id, wait_seconds=0)
                except RunNotFoundError:
                    continue  # not recorded yet
                except OrchError:
                    pass  # it ended meanwhile
                waiting.remove(run_id)
            if waiting:
                time.sleep(0.05)

    def _supervised_done(self, run_id: str) -> None:
        self.supervising.discard(run_id)
        if self.quitting and not self.supervising:
            self.exit()

    def _attempt(self, action: Callable[[], operations.Outcome]) -> None:
        """Report the outcome; anything but an OrchError fails the worker (an error modal)."""
        from .. import operations

        try:
            outcome = action()
        except OrchError as exc:
            outcome = operations.Outcome(str(exc), ok=False)
        self.call_from_thread(self._report, outcome)

    def on_worker_state_changed(self, event: Worker.StateChanged) -> None:
        self.worker_changed(event)

    def worker_changed(self, event: Worker.StateChanged) -> None:
        """A worker that failed shows what happened in a modal; the app keeps running.

        Screens forward their workers' changes here (the message does not bubble).
        """
        if event.state == WorkerState.ERROR and event.worker.error is not None:
            self.show_error(f"Something failed in {event.worker.name}", event.worker.error)

    def show_error(self, title: str, error: BaseException) -> None:
        """The error dialog (one at a time: a later error while it is up is only recorded)."""
        from .. import operations

        message = f"{type(error).__name__}: {error}"
        self.outcomes.append(operations.Outcome(message, ok=False))
        if isinstance(self.screen, ErrorScreen):
            return
        details = "".join(traceback.format_exception(error))
        self.push_screen(ErrorScreen(title, message, details))

    def _handle_exception(self, error: Exception) -> None:
        """An error raised in any screen (a handler, a timer, a watcher) opens the error dialog.

        Textual ends the app on such an error; an app kept open all day should survive one.
        The widget that raised stops (Textual ends its message loop), so a screen that raised
        is closed first. Textual's way still applies before the first screen is up, while
        quitting, and to an error in the error dialog itself.
        """
        failed = active_message_pump.get(None)
        node = failed
        while node is not None and not isinstance(node, ErrorScreen):
            node = getattr(node, "parent", None)
        in_dialog = node is not None
        if not self.is_running or self._exit or len(self.screen_stack) < 2 or in_dialog:
            super()._handle_exception(error)
            return
        self.call_later(self._recover, f"Something failed in {type(failed).__name__}", error)

    def _recover(self, title: str, error: BaseException) -> None:
        """Close the screen that raised, if it did (the runs screen starts anew); then say so."""
        screen = self.screen
        if not screen.is_running:
            if isinstance(screen, RunsScreen):
                self.switch_screen(RunsScreen())
            else:
                self.pop_screen()
        self.show_error(title, error)

    def _report(self, outcome: operations.Outcome) -> None:

        self.outcomes.append(outcome)
        shown = escape(printable(outcome.message))
        self.notify(shown, severity="information" if outcome.ok else "error")


def make_app(home: Path | None = None, *, clock: Callable[[], float] = time.time) -> OrchApp:
    """The app for the project whose store is `home` (default: found as the CLI finds it)."""
    return OrchApp(find_home(home) if home is not None else find_home(), clock)
