"""The `e` form: a run's recorded parameters, to edit and start again as a retry of the run
or as a fresh run of its target.

Each field is prefilled with the value as one would type it after `-p name=`. A field left
as it was sends the recorded value itself (what `orch retry` re-sends); an edited one sends
the text, as `-p` does. On submit the values are checked in a worker thread by
`operations.rerun_request`, as `orch retry -p` and `orch run -p` check them; an error about
a parameter shows under its field, and nothing starts until every value is accepted.
"""

from __future__ import annotations

import json
from typing import Any, ClassVar

from rich.text import Text
from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.screen import ModalScreen
from textual.widgets import Button, Input, Label, Static
from textual.worker import Worker

from ..errors import OrchError, ParameterError
from ..operations import RetryPlan, rerun_request
from ..redaction import MASK, holds_mask
from ..views import printable

HOW = "enter/Retry: retry this run · Fresh run: a new run of its target"
REDACTED_HINT = f"recorded as {MASK} (a secret): type its value again"


def typed_text(value: Any) -> str:
    """A recorded (JSON) value as one would type it after `-p name=`: strings without their
    quotes, true/false, numbers, JSON for lists and objects, nothing for null."""
    if value is None:
        return ""
    if isinstance(value, str):
        return value
    return json.dumps(value, ensure_ascii=False)


class RerunScreen(ModalScreen[RetryPlan | None]):
    """Dismisses with the checked plan (a retry's request has `resume_from` set), or None."""

    BINDINGS: ClassVar[list[BindingType]] = [Binding("escape", "close", "Close")]

    def __init__(self, run_id: str, target: str, recorded: dict[str, Any]) -> None:
        super().__init__()
        self.run_id = run_id
        self.target = target
        self.recorded = recorded
        self.names = list(recorded)
        self.redacted = {i for i, name in enumerate(self.names) if holds_mask(recorded[name])}
        """The fields whose recorded value was redacted: they say so until typed again."""
        self.checks = 0
        """Validations finished (tests wait on it)."""

    def compose(self) -> ComposeResult:
        with Vertical(id="rerun-box", classes="dialog"):
            title = Text.assemble(f"Re-run {self.run_id[:8]}  ", (printable(self.target), "dim"))
            yield Static(title, classes="section")
            yield Static(HOW, id="rerun-how")
            with VerticalScroll(id="rerun-fields"):
                if not self.names:
                    yield Static("This run has no parameters.")
                for i, name in enumerate(self.names):
                    value = self.recorded[name]
                    with Horizontal(classes="rerun-field"):
                        yield Label(Text(printable(name)))
                        none = "None" if value is None else ""
                        yield Input(
                            typed_text(value), placeholder=none, id=f"param-{i}", compact=True
                        )
                    yield Static(REDACTED_HINT, id=f"error-{i}", classes="field-error")
            yield Static(id="params-error")
            with Horizontal(classes="dialog-buttons"):
                yield Button("Retry", variant="primary", id="retry")
                yield Button("Fresh run", id="fresh")
                yield Button("Cancel", id="close")

    def on_mount(self) -> None:
        self.query_one("#params-error").display = False
        for i in range(len(self.names)):
            self.query_one(f"#error-{i}").display = i in self.redacted
        inputs = self.query(Input)
        (inputs.first() if inputs else self.query_one("#retry")).focus()

    def values(self) -> dict[str, Any]:
        """Each parameter's recorded value, or the text typed in its place."""
        out = {}
        for i, name in enumerate(self.names):
            text = self.query_one(f"#param-{i}", Input).value
            recorded = self.recorded[name]
            out[name] = recorded if text == typed_text(recorded) else text
        return out

    @on(Input.Submitted)
    def _submitted(self) -> None:
        self._check(self.values(), retry=True)

    @on(Button.Pressed)
    def _pressed(self, event: Button.Pressed) -> None:
        if event.button.id == "close":
            self.dismiss(None)
        else:
            self._check(self.values(), retry=event.button.id == "retry")

    @work(thread=True, exclusive=True, group="check-params", exit_on_error=False)
    def _check(self, values: dict[str, Any], *, retry: bool) -> None:
        home = self.app.home  # type: ignore[attr-defined]
        try:
            plan = rerun_request(home, self.run_id, values, retry=retry)
        except OrchError as exc:
            names = exc.names if isinstance(exc, ParameterError) else ()
            self.app.call_from_thread(self._invalid, str(exc), names)
            return
        self.app.call_from_thread(self._valid, plan)

    def on_worker_state_changed(self, event: Worker.StateChanged) -> None:
        self.app.worker_changed(event)  # type: ignore[attr-defined]

    def _invalid(self, message: str, names: tuple[str, ...]) -> None:
        """The message under the fields it is about, else under the form."""
        shown = Text(printable(message))
        beside = [self.names.index(name) for name in names if name in self.names]
        for i in range(len(self.names)):
            error = self.query_one(f"#error-{i}", Static)
            error.update(shown if i in beside else REDACTED_HINT)
            still = i in self.redacted and MASK in self.query_one(f"#param-{i}", Input).value
            error.display = i in beside or still
        general = self.query_one("#params-error", Static)
        general.update(shown)
        general.display = not beside
        if beside:
            self.query_one(f"#param-{beside[0]}", Input).focus()
        self.checks += 1

    def _valid(self, plan: RetryPlan) -> None:
        self.checks += 1
        self.dismiss(plan)

    def action_close(self) -> None:
        self.dismiss(None)
