"""The form that resumes a paused run: one field per field of the input its flow waits for
(`pause_flow_run(wait_for_input=Model)`), checked by the paused run itself."""

from __future__ import annotations

from typing import ClassVar

from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Vertical
from textual.screen import ModalScreen
from textual.widgets import Button, Input, Label

from ..flow_runs import InputField


class ResumeScreen(ModalScreen[dict[str, str] | None]):
    """Dismisses with the typed values (empty fields left out), or None."""

    BINDINGS: ClassVar[list[BindingType]] = [Binding("escape", "cancel", "Cancel")]

    def __init__(self, run_id: str, fields: list[InputField]) -> None:
        super().__init__()
        self.run_id = run_id
        self.fields = fields

    def compose(self) -> ComposeResult:
        with Vertical(id="dialog"):
            yield Label(f"Resume run {self.run_id[:8]}", id="question")
            if not self.fields:
                yield Label("It waits for no input.")
            for field in self.fields:
                need = "required" if field.required else f"default {field.default}"
                yield Label(f"{field.name} ({field.kind}, {need})")
                yield Input(placeholder=field.default or "", id=f"field-{field.name}")
            yield Button("Resume", variant="primary", id="resume")

    def on_button_pressed(self, event: Button.Pressed) -> None:
        self._submit()

    def on_input_submitted(self, event: Input.Submitted) -> None:
        self._submit()

    def _submit(self) -> None:
        values = {}
        for field in self.fields:
            text = self.query_one(f"#field-{field.name}", Input).value
            if text:
                values[field.name] = text
        self.dismiss(values)

    def action_cancel(self) -> None:
        self.dismiss(None)
