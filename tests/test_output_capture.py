"""What a flow run in this process writes to sys.stdout and sys.stderr is stored as its logs,
and still written where it was going; a child whose parent stores its output stores none."""

from __future__ import annotations

import contextlib
import io
import sys
import threading
from pathlib import Path

import pytest

from orchlite import flow, task
from orchlite.context import open_store
from orchlite.executor import RunRequest
from orchlite.logging import setup_logging
from orchlite.store import Store
from orchlite.supervisor import run_in_subprocess


@pytest.fixture(autouse=True)
def _no_console_logging() -> None:
    """Run log lines are not echoed to a stream some earlier test captured and closed."""
    setup_logging(console=False)


def _lines(run_id: str, store: Store | None = None) -> list[tuple[str, str, str | None, str]]:
    """(logger, level, task, message) of the run's stdout and stderr records."""
    store = store or open_store()[0]
    return [
        (r.logger, {20: "INFO", 30: "WARNING"}[r.level], r.task_name, r.message)
        for r in store.logs(run_id)
        if r.logger in ("orchlite.stdout", "orchlite.stderr")
    ]


def _last_run_id() -> str:
    return open_store()[0].resolve_run_id("last")


@task
def shout(part: int) -> None:
    print(f"part {part}")


@flow
def noisy() -> None:
    print("to stdout")
    print("to", "stderr", file=sys.stderr)
    shout.map([1, 2]).wait()
    sys.stdout.write("no newline at the end")


def test_prints_are_stored_and_still_written(capsys: pytest.CaptureFixture[str]) -> None:
    before = sys.stdout, sys.stderr
    noisy()
    assert (sys.stdout, sys.stderr) == before
    out, err = capsys.readouterr()
    assert out.startswith("to stdout\n") and out.endswith("no newline at the end")
    assert "part 1\n" in out and "part 2\n" in out
    assert "to stderr\n" in err
    lines = _lines(_last_run_id())
    assert lines[:2] == [
        ("orchlite.stdout", "INFO", None, "to stdout"),
        ("orchlite.stderr", "WARNING", None, "to stderr"),
    ]
    assert sorted(lines[2:4]) == [
        ("orchlite.stdout", "INFO", None, "part 1"),
        ("orchlite.stdout", "INFO", None, "part 2"),
    ]
    assert lines[4:] == [("orchlite.stdout", "INFO", None, "no newline at the end")]


@flow
def inner() -> None:
    print("from the subflow")


@flow
def outer() -> None:
    print("before")
    inner()
    print("after")


def test_a_subflows_lines_are_its_own() -> None:
    outer()
    parent = _last_run_id()
    (child,) = open_store()[0].child_flow_runs(parent)
    assert [m for *_, m in _lines(parent)] == ["before", "after"]
    assert [m for *_, m in _lines(child.id)] == ["from the subflow"]


@task
def chatter(name: str) -> None:
    for i in range(200):
        sys.stdout.write(f"{name}-")
        sys.stdout.write(f"{i}")
        sys.stdout.write("\n")


@flow
def chatty() -> None:
    chatter.map(["a", "b", "c"]).wait()


def test_lines_written_in_pieces_by_parallel_tasks_do_not_mix() -> None:
    chatty()
    messages = [m for *_, m in _lines(_last_run_id())]
    assert sorted(messages) == sorted(f"{n}-{i}" for n in "abc" for i in range(200))


def test_writes_outside_the_run_pass_through_unrecorded() -> None:
    outside = io.StringIO()
    started, done = threading.Event(), threading.Event()

    def elsewhere() -> None:  # a thread that is no part of the run
        assert started.wait(10)
        sys.stdout.write("not the run's\n")
        done.set()

    @flow
    def waits() -> None:
        started.set()
        assert done.wait(10)
        print("the run's")

    thread = threading.Thread(target=elsewhere)
    thread.start()
    with contextlib.redirect_stdout(outside):
        waits()
    thread.join()
    assert outside.getvalue() == "not the run's\nthe run's\n"
    assert [m for *_, m in _lines(_last_run_id())] == ["the run's"]


def test_the_streams_are_restored_when_the_run_fails() -> None:
    @flow
    def fails() -> None:
        print("going down")
        raise ValueError("boom")

    before = sys.stdout, sys.stderr
    with pytest.raises(ValueError):
        fails()
    assert (sys.stdout, sys.stderr) == before
    assert [m for *_, m in _lines(_last_run_id())] == ["going down"]


def test_a_stream_replaced_during_the_run_is_left_and_nothing_is_stored_twice() -> None:
    replaced = io.StringIO()

    @flow
    def replaces() -> None:
        sys.stdout = replaced  # and never put back
        print("into the replacement")

    @flow
    def prints() -> None:
        print("once")

    saved = sys.stdout
    try:
        replaces()
        assert sys.stdout is replaced
        sys.stdout = saved
        prints()
    finally:
        sys.stdout = saved
    assert [m for *_, m in _lines(_last_run_id())] == ["once"]


def test_log_prints_are_stored_once() -> None:
    @flow(log_prints=True)
    def logged() -> None:
        print("logged line")

    logged()
    records = [r for r in open_store()[0].logs(_last_run_id()) if r.message == "logged line"]
    assert [r.logger for r in records] == ["orchlite.flow_runs"]


def test_a_child_whose_output_the_parent_stores_stores_none_itself(tmp_path: Path) -> None:
    (tmp_path / "flows.py").write_text(
        "import sys\nfrom orchlite import flow\n\n@flow\ndef noisy():\n"
        "    print('out line')\n    print('err line', file=sys.stderr)\n"
    )
    run_id, code = run_in_subprocess(RunRequest("flows.py:noisy"), capture_output=True)
    assert code == 0
    with Store(tmp_path / ".orch") as store:
        assert sorted(_lines(str(run_id), store)) == [
            ("orchlite.stderr", "WARNING", None, "err line"),
            ("orchlite.stdout", "INFO", None, "out line"),
        ]
