"""The keys every main screen offers, listed first so that the footer shows them however
narrow the terminal (it cuts what does not fit from the end)."""

from __future__ import annotations

from textual.binding import Binding
from textual.widgets import Footer

APP_KEYS = [
    Binding("q", "app.quit", "Quit"),
    Binding("question_mark", "app.help", "Help", key_display="?"),
    Binding("n", "app.run_now", "Run now"),
    Binding("S", "app.schedules", "Schedules", key_display="S"),
]
HEALTH_KEY = Binding("h", "app.health", "Health")
"""In the runs screen's footer; the app takes it on every screen without showing it, so
that the other screens' own keys keep their room at 80 columns."""


def compact_footer() -> Footer:
    """The footer of the main screens, compact so that more keys fit (set as the reactive
    rather than passed to the constructor, which takes it only in newer Textual)."""
    footer = Footer()
    footer.compact = True
    return footer
