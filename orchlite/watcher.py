"""The daemon's watch on the project folder: one thread, inotify through watchfiles.

`ProjectWatcher(root, on_changes, log)` runs `watchfiles.watch` on the project root in a
background thread and calls `on_changes(changes)` with each batch of changes, as
(kind, absolute path) pairs, kind "added", "modified" or "deleted". Changes inside folders no
one acts on (`triggers.IGNORED_DIRS`: `.orch/`, `.git/`, `__pycache__/`...) are dropped by
the filter. The daemon reads each batch twice: a change to a flow file or to orch.toml
(`is_declaration_file`) makes it read its declarations again, and file triggers match the
paths against their globs. Nothing is polled: between changes the thread sleeps in the
kernel. If the folder cannot be watched (a filesystem without inotify, the kernel's
`fs.inotify.max_user_watches` reached) one error line says so and the daemon goes on;
SIGHUP still reloads.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from pathlib import Path, PurePosixPath

from .flow_source import SKIP_DIRS
from .settings import PROJECT_FILE
from .triggers import IGNORED_DIRS

Changes = Sequence[tuple[str, str]]
"""(kind, absolute path) pairs; kind is "added", "modified" or "deleted"."""

DEBOUNCE_MS = 50
"""Changes arriving within this many milliseconds of each other come as one batch."""
STEP_MS = 20
"""How often the watch loop looks for changes and for the stop request."""
QUIET_MS = 200
"""After this long without a change the watch loop comes back empty: the watch is in place."""


class ProjectWatcher:
    """Watches `root` in a background thread; `start()`, then `stop()` at the end."""

    def __init__(
        self, root: Path, on_changes: Callable[[Changes], None], log: Callable[[str], None]
    ) -> None:
        self.root = Path(root).resolve()
        self.on_changes = on_changes
        self.log = log
        self.watching = threading.Event()
        """Set once the kernel watches the folder: changes from then on are reported."""
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self, wait: float = 2.0) -> None:
        """Start watching; return once the watch is in place (or after `wait` seconds)."""
        self._thread = threading.Thread(target=self._run, name="orch-watcher", daemon=True)
        self._thread.start()
        self.watching.wait(timeout=wait)

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=10)

    def _run(self) -> None:
        try:
            import watchfiles
        except ImportError:  # pragma: no cover - a dependency of orchlite
            self.log("error: watching files needs the watchfiles package; reload with SIGHUP")
            return
        root = str(self.root)

        def keep(_change: object, path: str) -> bool:
            # Called for each change once the watch is in place: a first sign it is.
            self._ready()
            return not _in_ignored_dir(root, path)

        try:
            for batch in watchfiles.watch(
                self.root,
                watch_filter=keep,
                debounce=DEBOUNCE_MS,
                step=STEP_MS,
                rust_timeout=QUIET_MS,
                yield_on_timeout=True,  # the other sign: an empty batch after QUIET_MS
                stop_event=self._stop,
                raise_interrupt=False,
            ):
                self._ready()
                if batch:
                    self.on_changes([(change.name, path) for change, path in batch])
        except Exception as exc:  # the daemon goes on without it
            self.log(f"error: cannot watch {root} for changes ({exc}); reload with SIGHUP")
        finally:
            self.watching.set()  # nobody waits for a watch that will not come

    def _ready(self) -> None:
        if not self.watching.is_set():
            self.watching.set()
            self.log(f"watching {self.root} for changes")


def _in_ignored_dir(root: str, path: str) -> bool:
    rel = path[len(root) + 1 :] if path.startswith(root + "/") else path
    return any(part in IGNORED_DIRS for part in PurePosixPath(rel).parts[:-1]) or (
        rel in IGNORED_DIRS
    )


def is_declaration_file(root: Path, path: str) -> bool:
    """Whether a change at `path` can change what the project declares: orch.toml, a flow
    file where discovery looks for flows, or a folder (added, moved or removed)."""
    try:
        rel = PurePosixPath(Path(path).relative_to(root).as_posix())
    except ValueError:
        return False
    if rel.as_posix() == PROJECT_FILE:
        return True
    if any(part.startswith(".") or part in SKIP_DIRS for part in rel.parts[:-1]):
        return False
    if rel.suffix == ".py":
        return True
    return rel.suffix == "" and not Path(path).is_file()
