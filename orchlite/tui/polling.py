"""A screen that keeps what it shows in step with the store, polled in a thread worker."""

from __future__ import annotations

from typing import Any

from textual import work
from textual.message import Message
from textual.reactive import Reactive
from textual.screen import Screen
from textual.worker import Worker, get_current_worker

from .poller import LoadError, Poller, Wakeup
from .watchers import drop_closed_watchers

POLL_SECONDS = 0.5


class PollingScreen(Screen[None]):
    """Subclasses build a `Poller` and `show()` its snapshots; `repoll()` reloads now.

    The worker thread owns the poller and its store connection, and posts each snapshot
    back as a message, so the UI thread never waits on SQLite.
    """

    class Loaded(Message):
        def __init__(self, data: Any) -> None:
            super().__init__()
            self.data = data

    loads = 0
    """Snapshots shown so far (tests wait on it)."""

    title: Reactive[str | None] = Reactive(None, compute=False, repaint=False)
    sub_title: Reactive[str | None] = Reactive(None, compute=False, repaint=False)
    """Textual's screen repaints all of itself when these change, though only the header
    shows them (and redraws its title line alone, `header`): the runs screen's counts change
    with every run a daemon starts."""

    def make_poller(self) -> Poller[Any]:
        raise NotImplementedError

    def show(self, data: Any) -> None:
        raise NotImplementedError

    def on_mount(self) -> None:
        self._wakeup = Wakeup()
        # After the screen's first frame: reading the store takes the GIL from the paint.
        self.call_after_refresh(self._poll)

    def on_unmount(self) -> None:
        self._wakeup.stop()

    def on_screen_resume(self) -> None:
        """Back on top (a screen above closed): release what closed widgets still hold."""
        drop_closed_watchers(self.app, *self.walk_children(with_self=True))

    def repoll(self) -> None:
        self._wakeup.poke()

    @work(thread=True, exclusive=True, group="poll", exit_on_error=False)
    def _poll(self) -> None:
        worker = get_current_worker()
        poller = self.make_poller()
        force = True
        try:
            while not worker.is_cancelled and not self._wakeup.stopped:
                result = poller.tick(force)
                if result is not None:
                    self.post_message(self.Loaded(result))
                force = self._wakeup.wait(POLL_SECONDS)
        finally:
            poller.close()

    def on_worker_state_changed(self, event: Worker.StateChanged) -> None:
        self.app.worker_changed(event)  # type: ignore[attr-defined]

    def on_polling_screen_loaded(self, message: Loaded) -> None:
        message.stop()
        if isinstance(message.data, LoadError):
            self.notify(message.data.message, severity="error", title="Cannot read the store")
            return
        self.show(message.data)
        self.loads += 1
