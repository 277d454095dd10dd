"""A file trigger's second look: the matching files changed since it last fired.

The kernel's event queue is bounded (`fs.inotify.max_queued_events`, 16,384 by default);
a burst of a few thousand new files can overflow it, and the events past the overflow are
lost without a word. So when a file trigger fires, `FileSweep.collect` walks its globs and
adds every matching file whose modification time is newer than the trigger's previous fire
(less `SLACK_NS`, for the coarse clock filesystems stamp files with) to the paths the watcher
reported. A file it found ahead of its own event is not handed out twice: `collect`
remembers what it delivered with its modification time, and a path whose time has not
changed since is left out of the next fire. Files changed before the trigger was first seen
are never swept up, as the watcher does not replay them either.

The walk starts at each glob's literal prefix (`data/incoming` for `data/incoming/*.csv`),
goes no deeper than the glob reaches unless it holds `**`, skips the folders in
`skip_dirs`, and does not follow symbolic links.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Collection, Iterable, Iterator
from pathlib import Path, PurePosixPath

SLACK_NS = 2_000_000_000
_MAGIC = frozenset("*?[")


class FileSweep:
    """Per trigger key: when it last fired, and what it delivered then."""

    def __init__(
        self,
        root: Path,
        skip_dirs: Collection[str],
        clock: Callable[[], int] = time.time_ns,
    ) -> None:
        self.root = Path(root).resolve()
        self.skip_dirs = skip_dirs
        self.clock = clock
        self._marks: dict[str, int] = {}
        self._delivered: dict[str, dict[str, int]] = {}
        self._ahead: dict[str, dict[str, int]] = {}

    def watch(self, keys: Iterable[str]) -> None:
        """Start sweeping for `keys` from now; forget the keys not among them."""
        keys = set(keys)
        now = self.clock()
        for key in keys - set(self._marks):
            self._marks[key] = now
        for table in (self._marks, self._delivered, self._ahead):
            for key in set(table) - keys:
                del table[key]

    def collect(
        self,
        key: str,
        globs: Iterable[str],
        matches: Callable[[str], bool],
        reported: Iterable[str],
    ) -> list[str]:
        """The paths a fire of `key` hands out: `reported` plus the swept ones, sorted."""
        now = self.clock()
        since = self._marks.get(key, now) - SLACK_NS
        found = {
            path: mtime
            for path, mtime in _walk(self.root, globs, matches, self.skip_dirs)
            if mtime > since
        }
        told = set(reported)
        ahead = self._ahead.get(key, {})
        paths = {p for p in told if p not in ahead or _mtime(p) != ahead[p]}
        delivered = self._delivered.get(key, {})
        swept = {p: m for p, m in found.items() if p not in paths and delivered.get(p) != m}
        result = paths | set(swept)
        # What the next sweep can still find (newer than its `since`) must be remembered.
        still = now - SLACK_NS
        delivered = {p: m for p, m in delivered.items() if m > still and p not in result}
        delivered.update((p, found[p] if p in found else _mtime(p)) for p in result)
        self._delivered[key] = delivered
        ahead = {p: m for p, m in ahead.items() if m > still and p not in told}
        self._ahead[key] = {**ahead, **swept}
        self._marks[key] = now
        return sorted(result)


def _walk(
    root: Path,
    globs: Iterable[str],
    matches: Callable[[str], bool],
    skip_dirs: Collection[str],
) -> Iterator[tuple[str, int]]:
    seen: set[str] = set()
    for glob in globs:
        parts = PurePosixPath(glob).parts
        fixed = 0
        while fixed < len(parts) - 1 and not _MAGIC & set(parts[fixed]):
            fixed += 1
        depth = None if "**" in parts else len(parts) - fixed
        start = root.joinpath(*parts[:fixed])
        for path, mtime in _files_under(start, depth, skip_dirs):
            rel = Path(path).relative_to(root).as_posix()
            if path not in seen and matches(rel):
                seen.add(path)
                yield path, mtime


def _files_under(
    folder: Path, depth: int | None, skip_dirs: Collection[str]
) -> Iterator[tuple[str, int]]:
    if depth is not None and depth < 1:
        return
    try:
        entries = list(os.scandir(folder))
    except OSError:  # gone, or not a folder, or not ours to read
        return
    for entry in entries:
        try:
            if entry.is_dir(follow_symlinks=False):
                if entry.name not in skip_dirs:
                    below = None if depth is None else depth - 1
                    yield from _files_under(Path(entry.path), below, skip_dirs)
            elif entry.is_file(follow_symlinks=False):
                yield entry.path, entry.stat(follow_symlinks=False).st_mtime_ns
        except OSError:  # removed while we looked
            continue


def _mtime(path: str) -> int:
    try:
        return os.stat(path, follow_symlinks=False).st_mtime_ns
    except OSError:
        return -1
