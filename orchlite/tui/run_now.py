"""The `n` dialogs: pick a flow of the project, then fill in its parameters.

The form is prefilled with each parameter's default; on submit the values are checked in a
worker thread exactly as `orch run -p name=value` checks them (the flow is imported for its
type hints), and the dialog closes with the `RunRequest` to confirm and launch.
"""

from __future__ import annotations

import ast
from typing import ClassVar

from rich.text import Text
from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.screen import ModalScreen
from textual.widgets import Button, Input, Label, OptionList, Static
from textual.widgets.option_list import Option
from textual.worker import Worker

from ..discovery import FlowInfo, ParamInfo
from ..errors import OrchError
from ..operations import RunRequest, run_now_request
from ..views import printable

NO_FLOWS = "No flows found under the project folder (decorate a function with @flow)."


def default_text(param: ParamInfo) -> str:
    """The default as one would type it after `-p name=` (strings without their quotes)."""
    if param.default is None:
        return ""
    try:
        value = ast.literal_eval(param.default)
    except (ValueError, SyntaxError):
        return param.default
    if value is None:
        return ""
    return value if isinstance(value, str) else param.default


class FlowPickerScreen(ModalScreen[FlowInfo | None]):
    BINDINGS: ClassVar[list[BindingType]] = [Binding("escape", "close", "Close")]

    def __init__(self, flows: list[FlowInfo]) -> None:
        super().__init__()
        self.flows = flows

    def compose(self) -> ComposeResult:
        with Vertical(id="picker-box", classes="dialog"):
            yield Static("Run a flow now — pick one (enter), escape closes", classes="section")
            options = [
                Option(
                    Text.assemble(printable(f.name), "  ", (printable(f.target), "dim")), id=str(i)
                )
                for i, f in enumerate(self.flows)
            ]
            yield OptionList(*options, id="flows")
            if not self.flows:
                yield Static(NO_FLOWS, id="no-flows")

    @on(OptionList.OptionSelected, "#flows")
    def _picked(self, event: OptionList.OptionSelected) -> None:
        self.dismiss(self.flows[int(event.option.id or 0)])

    def action_close(self) -> None:
        self.dismiss(None)


class ParamsScreen(ModalScreen[RunRequest | None]):
    BINDINGS: ClassVar[list[BindingType]] = [Binding("escape", "close", "Close")]

    def __init__(self, flow: FlowInfo) -> None:
        super().__init__()
        self.flow = flow
        self.checks = 0
        """Validations finished (tests wait on it)."""

    def compose(self) -> ComposeResult:
        with Vertical(id="params-box", classes="dialog"):
            yield Static(f"Run {self.flow.name} ({self.flow.target})", classes="section")
            with VerticalScroll(id="params"):
                if not self.flow.parameters:
                    yield Static("This flow takes no parameters.")
                for param in self.flow.parameters:
                    kind = f": {param.annotation}" if param.annotation else ""
                    need = " (required)" if param.required else ""
                    yield Label(f"{param.name}{kind}{need}")
                    yield Input(default_text(param), id=f"param-{param.name}")
            yield Static(id="params-error")
            with Horizontal(classes="dialog-buttons"):
                yield Button("Run", variant="primary", id="run")
                yield Button("Cancel", id="close")

    def on_mount(self) -> None:
        self.query_one("#params-error").display = False
        inputs = self.query(Input)
        (inputs.first() if inputs else self.query_one("#run")).focus()

    def values(self) -> dict[str, str]:
        """What was typed, leaving out parameters still at their prefilled default."""
        out = {}
        for param in self.flow.parameters:
            text = self.query_one(f"#param-{param.name}", Input).value
            changed = param.required or text != default_text(param)
            if changed and (text or param.default is not None):
                out[param.name] = text
        return out

    @on(Input.Submitted)
    def _submitted(self) -> None:
        self._check(self.values())

    @on(Button.Pressed)
    def _pressed(self, event: Button.Pressed) -> None:
        if event.button.id == "run":
            self._check(self.values())
        else:
            self.dismiss(None)

    @work(thread=True, exclusive=True, group="check-params", exit_on_error=False)
    def _check(self, values: dict[str, str]) -> None:
        try:
            request = run_now_request(self.app.home, self.flow, values)  # type: ignore[attr-defined]
        except OrchError as exc:
            self.app.call_from_thread(self._invalid, str(exc))
            return
        self.app.call_from_thread(self._valid, request)

    def on_worker_state_changed(self, event: Worker.StateChanged) -> None:
        self.app.worker_changed(event)  # type: ignore[attr-defined]

    def _invalid(self, message: str) -> None:
        error = self.query_one("#params-error", Static)
        error.update(Text(printable(message)))
        error.display = True
        self.checks += 1

    def _valid(self, request: RunRequest) -> None:
        self.checks += 1
        self.dismiss(request)

    def action_close(self) -> None:
        self.dismiss(None)
