"""The command palette's entries (ctrl+p) for every action of `orch tui`.

Textual's own entries stay beside them, among them "Theme" to switch light and dark themes.
"""

from __future__ import annotations

from collections.abc import Callable

from textual.command import DiscoveryHit, Hit, Hits, Provider

COMMANDS: tuple[tuple[str, str, str], ...] = (
    ("Run a flow now", "Pick a flow, fill in its parameters and run it", "run_now"),
    ("Cancel the selected run", "Ask, then cancel the run under the cursor", "cancel_selected"),
    ("Retry the selected run", "Ask, then resume the run under the cursor", "retry_selected"),
    (
        "Edit & re-run the selected run",
        "Its parameters in a form, then a retry of it or a fresh run",
        "rerun_selected",
    ),
    ("Schedules", "Schedules, triggers and the daemon's status", "schedules"),
    ("Flow health", "Per flow: failure rate, durations, late and skipped runs", "health"),
    ("Logs of the selected run", "The log records of the run under the cursor", "logs_selected"),
    ("Help", "Every key, by screen", "help"),
)


class OrchCommands(Provider):
    def _commands(self) -> list[tuple[str, str, Callable[[], object]]]:
        app = self.app
        return [
            (name, help_text, getattr(app, f"action_{action}"))
            for name, help_text, action in COMMANDS
        ]

    async def discover(self) -> Hits:
        for name, help_text, run in self._commands():
            yield DiscoveryHit(name, run, help=help_text)

    async def search(self, query: str) -> Hits:
        matcher = self.matcher(query)
        for name, help_text, run in self._commands():
            score = matcher.match(name)
            if score > 0:
                yield Hit(score, matcher.highlight(name), run, help=help_text)
