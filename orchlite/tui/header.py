"""The screens' header: Textual's, with a title that redraws in place, in the same frame.

Textual's header lays the whole screen out again whenever its title or subtitle changes,
and draws the new one a frame later (its watchers are coroutines); the runs screen's
subtitle counts the runs, so beside a daemon starting a run a second every line of the
screen was composed again each second, and then the header once more. The title is one line
wide as the header whatever it says, so a new subtitle only needs that line redrawn, and it
is drawn at once, with the rest of the change.
"""

from __future__ import annotations

from textual.app import ComposeResult
from textual.visual import VisualType
from textual.widgets import Header as TextualHeader
from textual.widgets._header import HeaderTitle


class _Title(HeaderTitle):
    def update(self, content: VisualType = "", *, layout: bool = False) -> None:
        if content != self.content:  # Textual's own watchers come later with the same
            super().update(content, layout=False)  # its size never depends on its text


class Header(TextualHeader):
    def compose(self) -> ComposeResult:
        for widget in super().compose():
            yield _Title() if isinstance(widget, HeaderTitle) else widget

    def on_mount(self) -> None:
        for screen_title in ("title", "sub_title"):
            self.watch(self.screen, screen_title, self._show_title, init=False)

    def _show_title(self) -> None:
        for title in self.query(_Title):  # none yet while the header's own parts mount
            title.update(self.format_title())
