"""A modal that shows what went wrong in a worker, instead of taking the app down."""

from __future__ import annotations

from typing import ClassVar

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Vertical, VerticalScroll
from textual.screen import ModalScreen
from textual.widgets import Button, Static

from ..views import printable


class ErrorScreen(ModalScreen[None]):
    BINDINGS: ClassVar[list[BindingType]] = [Binding("escape,enter", "close", "Close")]

    def __init__(self, title: str, message: str, details: str = "") -> None:
        super().__init__()
        self.error_title = title
        self.message = message
        self.details = details

    def compose(self) -> ComposeResult:
        with Vertical(id="error-box"):
            yield Static(Text(printable(self.error_title), style="bold red"), id="error-title")
            yield Static(Text(printable(self.message)), id="error-message")
            if self.details:
                with VerticalScroll(id="error-details"):
                    yield Static(Text(printable(self.details), style="dim"))
            yield Button("Close (escape)", variant="error", id="error-close")

    def on_button_pressed(self) -> None:
        self.dismiss(None)

    def action_close(self) -> None:
        self.dismiss(None)
