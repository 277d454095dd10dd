"""The screens' header: Textual's, with a title that redraws in place.

Textual's header lays the whole screen out again whenever its title or subtitle changes,
and the runs screen's subtitle counts the runs, so beside a daemon starting a run a second
every line of the screen was composed again each second. The title is one line wide as the
header whatever it says, so a new subtitle only needs that line redrawn.
"""

from __future__ import annotations

from textual.app import ComposeResult
from textual.visual import VisualType
from textual.widgets import Header as TextualHeader
from textual.widgets._header import HeaderTitle


class _Title(HeaderTitle):
    def update(self, content: VisualType = "", *, layout: bool = False) -> None:
        super().update(content, layout=False)  # its size never depends on its text


class Header(TextualHeader):
    def compose(self) -> ComposeResult:
        for widget in super().compose():
            yield _Title() if isinstance(widget, HeaderTitle) else widget
