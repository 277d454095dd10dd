"""Triggers: declaring them, the debounce logic with injected times, then a real daemon.

The pure tests pass times to `Debouncer`; the tick tests use a fake `launch`; the process
tests start `python -m orchlite.cli daemon` in a temporary project, write real files and
run real flows, and wait for what they need instead of sleeping a fixed time.
"""

from __future__ import annotations

import datetime as dt
import json
import time
from pathlib import Path
from typing import Any

import pytest

import orchlite
from orchlite.daemon import Daemon
from orchlite.errors import UsageError
from orchlite.project import load_triggers
from orchlite.states import StateName
from orchlite.store import Store
from orchlite.triggers import (
    Debouncer,
    FileTrigger,
    FlowTrigger,
    flow_trigger_run_id,
    glob_match,
    is_ignored,
    on_files,
    on_flow,
)
from tests.helpers import orch, start_daemon, stop_daemon, wait_for
from tests.helpers import write as _write
from tests.helpers.daemon import FakeLaunch, daemon_log, runs

T0 = dt.datetime(2026, 3, 1, 12, 0, 0, tzinfo=dt.timezone.utc)


# -- declaring -----------------------------------------------------------------------------


def test_triggers_are_read_from_decorators_and_orch_toml_without_running_code(
    tmp_path: Path,
) -> None:
    _write(
        tmp_path,
        "etl.py",
        """
        import sys
        from pathlib import Path
        from orchlite import flow, on_files, on_flow as after

        sys.exit("the daemon must not import this file")

        @flow(triggers=[on_files("data/incoming/*.csv", debounce_seconds=2)])
        def ingest(paths: list[Path] = []):
            pass

        @flow(name="load", triggers=[after("extract"), after("extract", states=["failed"])])
        def load_it(upstream_run_id: str = ""):
            pass

        @flow(triggers=[on_files(GLOB)])
        def dynamic():
            pass

        @flow(triggers=[on_flow("x", states=["RUNNING"])])
        def bad_state():
            pass

        @flow
        def cleanup():
            pass
        """,
    )
    _write(
        tmp_path,
        "orch.toml",
        """
        [[trigger]]
        target = "etl.py:cleanup"
        after = "extract"
        states = ["FAILED", "CRASHED"]

        [[trigger]]
        name = "reports"
        target = "etl.py:ingest"
        watch = ["reports/**/*.json"]
        debounce = 0.5

        [[trigger]]
        name = "both"
        target = "etl.py:cleanup"
        watch = "x/*"
        after = "extract"

        [[trigger]]
        target = "etl.py:nope"
        after = "extract"

        [[trigger]]
        target = "etl.py:cleanup"
        after = "extract"
        states = ["FAILED", "CRASHED"]
        """,
    )
    entries, problems = load_triggers(tmp_path)
    got = {(e.source, e.target, e.trigger) for e in entries}
    assert got == {
        ("code", "etl.py:ingest", FileTrigger(("data/incoming/*.csv",), 2.0)),
        ("code", "etl.py:load_it", FlowTrigger("extract", ("COMPLETED",))),
        ("code", "etl.py:load_it", FlowTrigger("extract", ("FAILED",))),
        ("orch.toml", "etl.py:cleanup", FlowTrigger("extract", ("FAILED", "CRASHED"))),
        ("orch.toml", "etl.py:ingest", FileTrigger(("reports/**/*.json",), 0.5)),
    }
    by_target = {e.target: e for e in entries}
    assert by_target["etl.py:ingest"].wants_paths and not by_target["etl.py:ingest"].wants_upstream
    assert by_target["etl.py:load_it"].wants_upstream
    assert by_target["etl.py:load_it"].flow_name == "load"
    assert not by_target["etl.py:cleanup"].wants_paths
    text = "\n".join(str(p) for p in problems)
    assert "etl.py:dynamic" in text and "literal arguments only" in text
    assert "etl.py:bad_state" in text and "RUNNING" in text
    assert "orch.toml trigger #3 ('both'): give exactly one of watch" in text
    assert "orch.toml trigger #4" in text and "no flow 'nope'" in text
    assert "orch.toml trigger #5: duplicate of orch.toml trigger #1" in text
    assert len(problems) == 5


def test_the_flow_option_and_the_helpers() -> None:
    assert orchlite.on_files is on_files and orchlite.on_flow is on_flow

    @orchlite.flow(triggers=[on_files("a/*.csv"), on_flow("extract", states=("FAILED",))])
    def downstream(paths: list[Path] | None = None) -> None:
        pass

    assert [t.kind for t in downstream.triggers] == ["file", "flow"]
    assert downstream.with_options(retries=1).triggers == downstream.triggers
    with pytest.raises(TypeError, match="on_files"):
        orchlite.flow(triggers=["a/*.csv"])(lambda: None)
    with pytest.raises(UsageError, match="relative"):
        on_files("/abs/*.csv")
    with pytest.raises(UsageError, match="debounce"):
        on_files("a", debounce_seconds=-1)
    with pytest.raises(UsageError, match="PENDING"):
        on_flow("x", states=["PENDING"])
    assert on_flow("x", states="failed").states == ("FAILED",)
    assert flow_trigger_run_id("k", "up") == flow_trigger_run_id("k", "up")
    assert flow_trigger_run_id("k", "up") != flow_trigger_run_id("k", "up2")


def test_globs_and_ignored_files() -> None:
    assert glob_match("data/incoming/*.csv", "data/incoming/a.csv")
    assert not glob_match("data/incoming/*.csv", "data/incoming/sub/a.csv")
    assert not glob_match("data/incoming/*.csv", "data/incoming/a.csv.bak")
    assert glob_match("reports/**/*.json", "reports/x.json")
    assert glob_match("reports/**/*.json", "reports/2026/03/x.json")
    assert glob_match("**/*.csv", "a/b/c.csv") and glob_match("**/*.csv", "c.csv")
    for rel in (
        ".orch/orch.db-wal",
        "data/.git/index",
        "data/.a.csv.swp",
        "data/a.csv~",
        "data/.#a.csv",
        "data/a.tmp",
        "data/4913",
        "data/__pycache__/x.pyc",
    ):
        assert is_ignored(rel), rel
    assert not is_ignored("data/incoming/a.csv")


# -- debounce and coalescing, with injected times ------------------------------------------


def test_a_burst_fires_once_after_the_window_of_quiet() -> None:
    deb = Debouncer()
    window = {"k": 1.0}.__getitem__
    for i in range(50):
        deb.add("k", [f"/p/{i:02}.csv"], at=10.0 + i * 0.01)  # 10.00 .. 10.49
    assert deb.ready(10.9, window) == []  # still within 1 s of the last change
    deb.add("k", ["/p/00.csv"], at=11.2)  # a new change restarts the window
    assert deb.ready(12.1, window) == []
    fired = deb.ready(12.2, window)
    assert fired == [("k", [f"/p/{i:02}.csv" for i in range(50)])]
    assert deb.ready(20.0, window) == []  # fired once, nothing pending


def test_changes_during_a_run_coalesce_into_one_follow_up() -> None:
    deb = Debouncer()
    window = {"a": 0.5, "b": 0.0}.__getitem__
    running = {"a"}
    deb.add("a", ["/x/1"], at=0.0)
    deb.add("b", ["/y/1"], at=0.0)
    assert deb.ready(0.1, window, running.__contains__) == [("b", ["/y/1"])]
    for i in range(2, 30):  # keep changing while the previous run of "a" is running
        deb.add("a", [f"/x/{i}"], at=float(i))
        assert deb.ready(float(i) + 5, window, running.__contains__) == []
    running.clear()
    fired = deb.ready(100.0, window, running.__contains__)
    assert len(fired) == 1 and fired[0][0] == "a" and len(fired[0][1]) == 29
    deb.add("gone", ["/z"], at=0.0)
    deb.forget(["a", "b"])
    assert deb.ready(100.0, lambda key: 0.0) == []


# -- flow triggers in the tick (fake launch) --------------------------------------------


def _finished_run(store: Store, run_id: str, flow_name: str, state: StateName, at: float) -> None:
    store.create_flow_run(run_id=run_id, flow_name=flow_name, name=run_id, parameters="{}", now=at)
    store.set_flow_run_state(run_id, StateName.RUNNING, None, now=at)
    store.set_flow_run_state(run_id, state, None, now=at)


def test_a_flow_trigger_fires_once_per_upstream_run_across_restarts(tmp_path: Path) -> None:
    _write(
        tmp_path,
        "flows.py",
        """
        from orchlite import flow, on_flow

        @flow
        def extract():
            pass

        @flow(triggers=[on_flow("extract")])
        def load(upstream_run_id: str = ""):
            pass

        @flow(triggers=[on_flow("extract", states=["FAILED"])])
        def cleanup():
            pass
        """,
    )
    home = tmp_path / ".orch"
    launch = FakeLaunch()
    calls = launch.calls

    def daemon() -> Daemon:
        return Daemon(Store(home), tmp_path, launch=launch, log=lambda _: None)

    first = daemon()
    t = T0.timestamp()
    _finished_run(first.store, "old", "extract", StateName.COMPLETED, t - 5)
    first.tick(T0)  # first sight of the triggers: runs that ended before are ignored
    assert calls == []
    _finished_run(first.store, "up1", "extract", StateName.COMPLETED, t + 1)
    _finished_run(first.store, "up2", "extract", StateName.FAILED, t + 2)
    report = first.tick(T0 + dt.timedelta(seconds=3))
    assert sorted((target, json.dumps(p)) for _, target, p in calls) == [
        ("flows.py:cleanup", "{}"),
        ("flows.py:load", '{"upstream_run_id": "up1"}'),
    ]
    assert len(report.fired) == 2
    load = next(r for r in first.store.list_flow_runs() if r.flow_name == "load")
    assert load.trigger == "flow"
    history = first.store.history(load.id)
    assert history[0].message == "after extract run up1 COMPLETED"

    again = daemon()  # a restart, within the slack window: same upstream runs seen again
    assert again.tick(T0 + dt.timedelta(seconds=4), start=False).fired == []
    assert again.tick(T0 + dt.timedelta(seconds=60), start=False).fired == []
    assert sum(1 for r in again.store.list_flow_runs(limit=100) if r.trigger == "flow") == 2


# -- a real daemon ----------------------------------------------------------------------


def _runs(root: Path, trigger: str | None = None) -> list[Any]:
    return [r for r in runs(root) if trigger is None or r.trigger == trigger]


def _log_has(root: Path, text: str) -> bool:
    path = root / "daemon.log"
    return path.exists() and text in path.read_text()


def test_a_burst_of_files_starts_one_run_that_receives_the_paths(tmp_path: Path) -> None:
    _write(
        tmp_path,
        "flows.py",
        """
        from pathlib import Path
        from orchlite import flow, on_files

        @flow(triggers=[on_files("data/incoming/*.csv", debounce_seconds=0.5)])
        def ingest(paths: list[Path]) -> int:
            assert all(isinstance(p, Path) and p.exists() for p in paths)
            return len(paths)
        """,
    )
    incoming = tmp_path / "data" / "incoming"
    incoming.mkdir(parents=True)
    proc = start_daemon(tmp_path, tick=0.1, grace=None)
    try:
        wait_for(
            lambda: _log_has(tmp_path, "watching"),
            what="the watcher",
            detail=lambda: daemon_log(tmp_path),
        )
        time.sleep(0.5)  # let inotify register the directories
        (incoming / ".x.csv.swp").write_text("swap")
        (incoming / "notes.txt").write_text("not a csv")
        for i in range(50):
            (incoming / f"f{i:02}.csv").write_text(f"a,b\n{i},{i}\n")
        done = wait_for(
            lambda: [r for r in _runs(tmp_path, "file") if r.state == "COMPLETED"],
            what="a completed file run",
            detail=lambda: daemon_log(tmp_path),
        )
        time.sleep(1.5)  # nothing more may fire
        runs = _runs(tmp_path, "file")
        assert 1 <= len(runs) <= 2, runs
        assert all(r.state == "COMPLETED" for r in runs), runs
        assert done[0].target == "flows.py:ingest"
        seen: set[str] = set()
        for run in runs:
            seen.update(json.loads(run.parameters)["paths"])
        assert {Path(p).name for p in seen} == {f"f{i:02}.csv" for i in range(50)}
        assert all(Path(p).is_absolute() for p in seen)
    finally:
        stop_daemon(proc, timeout=20)


def test_a_file_trigger_over_5000_files_hands_them_all_to_its_runs(tmp_path: Path) -> None:
    """Their paths (about 450 kB of JSON here) reach the child through a pipe: on a command
    line they exceeded the kernel's 128 kB limit for one argument and the run crashed."""
    _write(
        tmp_path,
        "flows.py",
        """
        from pathlib import Path
        from orchlite import flow, on_files

        @flow(triggers=[on_files("data/incoming/*.csv", debounce_seconds=0.5)])
        def ingest(paths: list[Path]) -> int:
            return len(paths)
        """,
    )
    incoming = tmp_path / "data" / "incoming"
    incoming.mkdir(parents=True)
    names = {f"delivery-{i:05}-of-the-nightly-export.csv" for i in range(5000)}
    proc = start_daemon(tmp_path, tick=0.1, grace=None)
    try:
        wait_for(
            lambda: _log_has(tmp_path, "watching"),
            what="the watcher",
            detail=lambda: daemon_log(tmp_path),
        )
        time.sleep(0.5)  # let inotify register the directories
        for name in names:
            (incoming / name).write_text("a,b\n")

        def all_delivered() -> bool:
            runs = _runs(tmp_path, "file")
            if not runs or any(r.state != "COMPLETED" for r in runs):
                assert all(r.state not in ("CRASHED", "FAILED") for r in runs), runs
                return False
            seen = {Path(p).name for r in runs for p in json.loads(r.parameters)["paths"]}
            return seen == names

        wait_for(
            all_delivered,
            timeout=60,
            what="completed runs over every file",
            detail=lambda: daemon_log(tmp_path),
        )
    finally:
        stop_daemon(proc, timeout=20)


def test_flow_triggers_chain_on_completion_and_failure_once_across_restarts(
    tmp_path: Path,
) -> None:
    _write(
        tmp_path,
        "flows.py",
        """
        from orchlite import flow, on_flow

        @flow
        def extract(fail: bool = False) -> str:
            if fail:
                raise RuntimeError("source down")
            return "ok"

        @flow(triggers=[on_flow("extract")])
        def load(upstream_run_id: str) -> str:
            return upstream_run_id

        @flow(triggers=[on_flow("extract", states=["FAILED"])])
        def cleanup() -> str:
            return "cleaned"
        """,
    )
    proc = start_daemon(tmp_path, tick=0.1, grace=None)
    try:
        wait_for(
            lambda: _log_has(tmp_path, "loaded"),
            what="the daemon",
            detail=lambda: daemon_log(tmp_path),
        )
        time.sleep(0.3)  # the triggers' first tick marks where they start
        ok = orch(tmp_path, "run", "flows.py:extract", "--json")
        assert ok.returncode == 0, ok.stderr
        loads = wait_for(
            lambda: [r for r in _runs(tmp_path, "flow") if r.state == "COMPLETED"],
            what="load after extract",
            detail=lambda: daemon_log(tmp_path),
        )
        extract_ok = next(r for r in _runs(tmp_path) if r.flow_name == "extract")
        assert [r.flow_name for r in loads] == ["load"]
        assert json.loads(loads[0].parameters) == {"upstream_run_id": extract_ok.id}

        bad = orch(tmp_path, "run", "flows.py:extract", "-p", "fail=true")
        assert bad.returncode != 0
        wait_for(
            lambda: [r for r in _runs(tmp_path, "flow") if r.flow_name == "cleanup"],
            what="cleanup after the failed extract",
            detail=lambda: daemon_log(tmp_path),
        )
        wait_for(
            lambda: all(r.state == "COMPLETED" for r in _runs(tmp_path, "flow")),
            what="all triggered runs to finish",
            detail=lambda: daemon_log(tmp_path),
        )
    finally:
        stop_daemon(proc, timeout=20)
    proc = start_daemon(
        tmp_path, tick=0.1, grace=None
    )  # a restart sees the same upstream runs again
    try:
        wait_for(
            lambda: (tmp_path / "daemon.log").read_text().count("loaded") >= 2,
            what="the restarted daemon",
            detail=lambda: daemon_log(tmp_path),
        )
        time.sleep(1.0)
    finally:
        stop_daemon(proc, timeout=20)
    triggered = sorted(r.flow_name for r in _runs(tmp_path, "flow"))
    assert triggered == ["cleanup", "load"]
