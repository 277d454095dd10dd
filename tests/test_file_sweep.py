"""The file trigger's sweep: files whose events were lost still reach a run, once."""

from __future__ import annotations

import os
from pathlib import Path

from orchlite.file_sweep import SLACK_NS, FileSweep
from orchlite.triggers import IGNORED_DIRS, glob_match, is_ignored

GLOBS = ("data/incoming/*.csv",)


class Clock:
    def __init__(self, now: int) -> None:
        self.now = now

    def __call__(self) -> int:
        return self.now


def _matches(rel: str) -> bool:
    return not is_ignored(rel) and any(glob_match(g, rel) for g in GLOBS)


def _touch(path: Path, mtime_ns: int) -> str:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("a,b\n")
    os.utime(path, ns=(mtime_ns, mtime_ns))
    return str(path)


def test_files_changed_since_the_last_fire_are_added_to_what_the_watcher_reported(
    tmp_path: Path,
) -> None:
    start = 1_800_000_000 * 10**9
    clock = Clock(start)
    sweep = FileSweep(tmp_path, IGNORED_DIRS, clock)
    sweep.watch(["k"])
    old = _touch(tmp_path / "data/incoming/old.csv", start - SLACK_NS - 1)
    reported = _touch(tmp_path / "data/incoming/a.csv", start + 10)
    lost = _touch(tmp_path / "data/incoming/b.csv", start + 20)
    _touch(tmp_path / "data/incoming/notes.txt", start + 30)
    _touch(tmp_path / "data/incoming/deeper/c.csv", start + 40)
    _touch(tmp_path / "data/incoming/.orch/d.csv", start + 50)
    clock.now = start + 100

    assert sweep.collect("k", GLOBS, _matches, [reported]) == sorted([reported, lost])
    assert old not in sweep.collect("k", GLOBS, _matches, [])


def test_a_path_is_handed_out_once_unless_it_changes_again(tmp_path: Path) -> None:
    start = 1_800_000_000 * 10**9
    clock = Clock(start)
    sweep = FileSweep(tmp_path, IGNORED_DIRS, clock)
    sweep.watch(["k"])
    early = _touch(tmp_path / "data/incoming/early.csv", start + 10)
    clock.now = start + 100
    first = _touch(tmp_path / "data/incoming/first.csv", start + 90)

    assert sweep.collect("k", GLOBS, _matches, [first]) == sorted([early, first])

    # Within the slack of the last fire, but unchanged: not again, even when its late
    # event arrives now.
    clock.now = start + 200
    assert sweep.collect("k", GLOBS, _matches, [early]) == []

    # Written again: handed out again.
    _touch(tmp_path / "data/incoming/early.csv", start + 150)
    assert sweep.collect("k", GLOBS, _matches, []) == [early]


def test_a_forgotten_trigger_starts_over_and_missing_folders_are_fine(tmp_path: Path) -> None:
    start = 1_800_000_000 * 10**9
    clock = Clock(start)
    sweep = FileSweep(tmp_path, IGNORED_DIRS, clock)
    sweep.watch(["k"])
    assert sweep.collect("k", GLOBS, _matches, []) == []  # no data/incoming yet

    before = _touch(tmp_path / "data/incoming/before.csv", start + 10)
    sweep.watch([])
    clock.now = start + 10 * SLACK_NS
    sweep.watch(["k"])
    assert before not in sweep.collect("k", GLOBS, _matches, [])


def test_double_star_globs_walk_every_level_and_skip_ignored_folders(tmp_path: Path) -> None:
    start = 1_800_000_000 * 10**9
    clock = Clock(start)
    sweep = FileSweep(tmp_path, IGNORED_DIRS, clock)
    sweep.watch(["k"])
    globs = ("**/*.csv",)
    deep = _touch(tmp_path / "a/b/c/deep.csv", start + 1)
    top = _touch(tmp_path / "top.csv", start + 2)
    _touch(tmp_path / ".git/x.csv", start + 3)
    _touch(tmp_path / "a/__pycache__/y.csv", start + 4)
    link = tmp_path / "linked"
    link.symlink_to(tmp_path / "a", target_is_directory=True)

    def matches(rel: str) -> bool:
        return not is_ignored(rel) and glob_match(globs[0], rel)

    assert sweep.collect("k", globs, matches, []) == sorted([deep, top])
