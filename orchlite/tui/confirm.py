"""A yes/no question in a modal: every action that changes a run asks first."""

from __future__ import annotations

from typing import ClassVar

from textual import on
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Horizontal, Vertical
from textual.screen import ModalScreen
from textual.widgets import Button, Input, Static

from ..views import printable


class ConfirmScreen(ModalScreen[bool]):
    """Dismisses with True (`y`, Enter on "Yes") or False (`n`, Escape).

    With `typed`, the stronger form: the answer is yes only once that word is typed in the
    box (and Enter pressed, or "Yes" clicked); `y` and `n` are then just letters.
    """

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("y", "answer(True)", "Yes"),
        Binding("n,escape", "answer(False)", "No"),
    ]

    def __init__(self, question: str, *, typed: str | None = None) -> None:
        super().__init__()
        self.question = question
        self.typed = typed

    def compose(self) -> ComposeResult:
        with Vertical(id="confirm-box", classes="strong" if self.typed else ""):
            yield Static(printable(self.question), id="confirm-question")
            if self.typed:
                yield Static(f"Type [b]{self.typed}[/b] to confirm:", id="confirm-hint")
                yield Input(placeholder=self.typed, id="confirm-typed")
            with Horizontal(id="confirm-buttons"):
                yield Button("Yes (y)" if not self.typed else "Yes", variant="primary", id="yes")
                yield Button("No (n)" if not self.typed else "No (escape)", id="no")

    def on_mount(self) -> None:
        if self.typed:
            self.query_one("#yes", Button).disabled = True
            self.query_one("#confirm-typed", Input).focus()

    @on(Input.Changed, "#confirm-typed")
    def _typed(self, event: Input.Changed) -> None:
        self.query_one("#yes", Button).disabled = event.value.strip() != self.typed

    @on(Input.Submitted, "#confirm-typed")
    def _submitted(self, event: Input.Submitted) -> None:
        if event.value.strip() == self.typed:
            self.dismiss(True)

    def on_button_pressed(self, event: Button.Pressed) -> None:
        self.dismiss(event.button.id == "yes")

    def action_answer(self, answer: bool) -> None:
        if self.typed and answer:
            return  # only the typed word says yes here
        self.dismiss(answer)


def retry_question(run_id: str, new_run_id: str, completed: bool) -> ConfirmScreen:
    """The question before retrying a run; one that completed asks for the word `retry`
    typed (`orch retry --force`)."""
    if completed:
        question = (
            f"Run {run_id[:8]} COMPLETED. Run it again anyway (like `orch retry --force`)? "
            f"The new run is {new_run_id[:8]}."
        )
        return ConfirmScreen(question, typed="retry")
    question = (
        f"Retry run {run_id[:8]}? Tasks that completed in it are not executed again; "
        f"the new run is {new_run_id[:8]}."
    )
    return ConfirmScreen(question)
