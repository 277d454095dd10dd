"""The runs screen's filter boxes: flow, states, time range, tags and text, each showing the
key that focuses it. What they hold is checked as it is typed (`run_filters`): a box whose
text is not a filter is marked invalid and keeps its last good filter, and `enter` there says
what it expects instead of leaving."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from textual import on
from textual.app import ComposeResult
from textual.containers import Horizontal
from textual.markup import escape
from textual.message import Message
from textual.suggester import Suggester
from textual.validation import ValidationResult, Validator
from textual.widgets import Input

from ..states import StateName
from ..views import printable
from .reader import RunsQuery
from .run_filters import FilterError, parse_states, parse_tags, parse_time_range

_PARSERS: dict[str, tuple[str, Callable[[str], Any]]] = {
    "flow": ("flow", lambda text: text.strip() or None),
    "state": ("states", parse_states),
    "time": ("window", parse_time_range),
    "tags": ("tags", parse_tags),
    "search": ("text", str.strip),
}
"""Each box's id: the `RunsQuery` field it sets, and how its text becomes that field."""


class StateSuggester(Suggester):
    """Completes the state being typed: `failed,cr` → `failed,crashed`."""

    async def get_suggestion(self, value: str) -> str | None:
        word = value.rpartition(",")[2].strip()
        if not word:
            return None
        for name in StateName:
            if name.value.lower().startswith(word):
                return value + name.value.lower()[len(word) :]
        return None


class FilterValidator(Validator):
    """Valid when the box's parser takes the text; the failure is the parser's message."""

    def __init__(self, parse: Callable[[str], object]) -> None:
        super().__init__()
        self.parse = parse

    def validate(self, value: str) -> ValidationResult:
        try:
            self.parse(value)
        except FilterError as exc:
            return self.failure(str(exc))
        return self.success()


class FilterBar(Horizontal):
    class Changed(Message):
        """The filters now in the boxes (an invalid box's last valid text counts)."""

        def __init__(self, filters: RunsQuery) -> None:
            super().__init__()
            self.filters = filters

    def __init__(self, **options: Any) -> None:
        super().__init__(**options)
        self.fields: dict[str, Any] = {}
        """The `RunsQuery` fields the boxes set, from their last valid text."""

    def compose(self) -> ComposeResult:
        yield Input(placeholder="f flow", id="flow")
        yield Input(
            placeholder="s states",
            id="state",
            suggester=StateSuggester(),
            validators=[FilterValidator(parse_states)],
        )
        yield Input(placeholder="w time", id="time", validators=[FilterValidator(parse_time_range)])
        yield Input(placeholder="# tags", id="tags")
        yield Input(placeholder="/ search", id="search")

    @property
    def filters(self) -> RunsQuery:
        return RunsQuery(**self.fields)

    def clear(self, flow: str = "") -> RunsQuery:
        """Empty every box but the flow box, which gets `flow`; returns the filters then."""
        for box in self.query(Input):
            box.value = flow if box.id == "flow" else ""
        self.fields = {"flow": flow or None}
        return self.filters

    @on(Input.Changed)
    def _changed(self, event: Input.Changed) -> None:
        event.stop()
        if event.validation_result is not None and not event.validation_result.is_valid:
            return
        field, parse = _PARSERS[event.input.id or ""]
        self.fields[field] = parse(event.value)
        self.post_message(self.Changed(self.filters))

    @on(Input.Submitted)
    def _submitted(self, event: Input.Submitted) -> None:
        """An invalid box says what it expects, and keeps the focus."""
        result = event.validation_result
        if result is not None and not result.is_valid:
            event.stop()
            self.notify(escape(printable(result.failure_descriptions[0])), severity="warning")
