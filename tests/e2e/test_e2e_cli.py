"""Every `orch` command and exit code, run as a child process in a temporary project."""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import time
from typing import Any

import pytest

import orchlite
from tests.helpers import (
    Project,
    assert_usage_error,
    child_env,
    finish,
    orch,
    wait_for,
)

FLOWS = """
from orchlite import flow, get_run_logger, task


@task
def add(a: int, b: int) -> int:
    get_run_logger().info("adding %d and %d", a, b)
    return a + b


@flow
def hello(n: int = 1) -> int:
    return add(n, 2)


@flow
def boom():
    raise ValueError("nope")


@flow
def leaf(i: int) -> int:
    return i


@flow
def fan(k: int = 17) -> int:
    return sum(leaf(i) for i in range(k))


def not_a_flow():
    return 1
"""

BROKEN = """
from orchlite import flow

@flow
def f(:
    pass
"""

RAISES_ON_IMPORT = """
from orchlite import flow

VALUE = 1 / 0

@flow
def f():
    pass
"""


# -- version and help ---------------------------------------------------------------------


def test_version(project: Project) -> None:
    proc = project.orch("--version")
    assert proc.stdout.strip() == f"orch {orchlite.__version__}"
    assert proc.stderr == ""


def test_help(project: Project) -> None:
    proc = project.orch("--help")
    for command in ("run", "runs", "show", "logs", "flows", "gc", "cache"):
        assert f"  {command} " in proc.stdout, proc.stdout
    assert proc.stderr == ""
    assert "--subprocess" in project.orch("run", "--help").stdout
    assert not project.home.exists(), "--help must not create .orch/"


# -- orch run -----------------------------------------------------------------------------


def test_run_completed(project: Project) -> None:
    project.write_flow("flows.py", FLOWS)
    proc = project.orch("run", "flows.py:hello", "-p", "n=3")
    assert proc.stdout == "", "without --json, data goes nowhere near stdout"
    assert "COMPLETED" in proc.stderr.splitlines()[-1]
    detail = project.show()
    assert detail["state"] == "COMPLETED"
    assert detail["flow"] == "hello"
    assert detail["parameters"] == {"n": 3}
    assert [(t["name"], t["state"], t["attempts"]) for t in detail["tasks"]] == [
        ("add-0", "COMPLETED", 1)
    ]

    as_json = json.loads(project.orch("run", "flows.py:hello", "--json").stdout)
    assert as_json["state"] == "COMPLETED"
    assert as_json["id"] != detail["id"]
    assert len(project.runs()) == 2


def test_run_failing_flow_exits_1(project: Project) -> None:
    project.write_flow("flows.py", FLOWS)
    proc = project.orch("run", "flows.py:boom", expect=1)
    assert "FAILED" in proc.stderr.splitlines()[-1]
    assert "ValueError: nope" in proc.stderr
    detail = project.show()
    assert detail["state"] == "FAILED"
    assert "ValueError: nope" in detail["message"]
    assert detail["ended"] is not None


def test_unpicklable_result_fails_the_task(project: Project) -> None:
    project.write_flow(
        "flows.py",
        """
        import threading

        from orchlite import flow, task


        @task
        def make_lock():
            return threading.Lock()


        @flow
        def locks():
            make_lock()
        """,
    )
    project.orch("run", "flows.py:locks", expect=1)
    detail = project.show()
    assert detail["state"] == "FAILED"
    [task] = detail["tasks"]
    assert task["state"] == "FAILED"
    assert "'lock'" in task["error"], task  # names the type that cannot be serialized
    assert "serialize" in task["error"]


@pytest.fixture(scope="module")
def recorded(tmp_path_factory: pytest.TempPathFactory) -> tuple[Project, list[dict[str, Any]]]:
    """A project with 18 recorded runs (a flow with 17 subflows) and some bad files.

    Shared by the bad-input tests, which all check that nothing more was recorded.
    """
    project = Project(tmp_path_factory.mktemp("recorded"))
    project.write_flow("flows.py", FLOWS)
    project.write("broken.py", BROKEN)
    project.write("raises.py", RAISES_ON_IMPORT)
    project.write("bad.json", '{"n": 1,,}')
    project.orch("run", "flows.py:fan")
    runs = project.runs()
    assert len(runs) == 18
    return project, runs


def _ambiguous_prefix(runs: list[dict[str, Any]]) -> str:
    """A one-character prefix shared by two run ids (18 ids, 16 hex digits)."""
    firsts = [r["id"][0] for r in runs]
    return next(c for c in firsts if firsts.count(c) > 1)


BAD_INPUT = [
    pytest.param(["run", "missing.py:hello"], 3, ["missing.py"], id="run-missing-file"),
    pytest.param(["run", "broken.py:f"], 3, ["broken.py:4"], id="run-syntax-error"),
    pytest.param(["run", "broken.py"], 3, ["broken.py:4"], id="run-syntax-error-whole-file"),
    pytest.param(
        ["run", "raises.py:f"], 3, ["raises.py:3", "ZeroDivisionError"], id="run-import-error"
    ),
    pytest.param(["run", "flows.py:helo"], 2, ["helo", "'hello'"], id="run-no-such-flow"),
    pytest.param(["run", "flows.py:not_a_flow"], 2, ["not a flow"], id="run-not-a-flow"),
    pytest.param(["run", "flows.py"], 2, ["flows.py"], id="run-file-with-several-flows"),
    pytest.param(
        ["run", "flows.py:hello", "-p", "m=1"], 2, ["'m'", "takes: n"], id="run-unknown-parameter"
    ),
    pytest.param(
        ["run", "flows.py:hello", "-p", "n=abc"], 2, ["'n'", "int", "abc"], id="run-bad-value"
    ),
    pytest.param(["run", "flows.py:leaf"], 2, ["'i'"], id="run-missing-parameter"),
    pytest.param(["run", "flows.py:hello", "-p", "n"], 2, ["key=value"], id="run-not-key-value"),
    pytest.param(
        ["run", "flows.py:hello", "--params-file", "nope.json"],
        2,
        ["nope.json"],
        id="run-missing-params-file",
    ),
    pytest.param(
        ["run", "flows.py:hello", "--params-file", "bad.json"],
        2,
        ["bad.json"],
        id="run-invalid-params-file",
    ),
    pytest.param(
        ["run", "--subprocess", "missing.py:hello"], 3, ["missing.py"], id="subprocess-missing"
    ),
    pytest.param(
        ["run", "--subprocess", "flows.py:hello", "-p", "n=abc"],
        2,
        ["'n'"],
        id="subprocess-bad-value",
    ),
    pytest.param(["frobnicate"], 2, ["frobnicate"], id="unknown-command"),
    pytest.param(["runs", "--bogus"], 2, ["--bogus"], id="unknown-option"),
    pytest.param(["runs", "--state", "bogus"], 2, ["bogus", "COMPLETED"], id="runs-bad-state"),
    pytest.param(["runs", "--limit", "0"], 2, ["--limit"], id="runs-bad-limit"),
    pytest.param(["show", "0123456789abcdef0123"], 2, ["0123456789abcdef0123"], id="show-unknown"),
    pytest.param(["show", "zzz"], 2, ["zzz"], id="show-not-an-id"),
    pytest.param(["show", "{ambiguous}"], 2, ["several"], id="show-ambiguous-prefix"),
    pytest.param(["logs", "fedcba98765432100"], 2, ["fedcba98765432100"], id="logs-unknown"),
    pytest.param(["logs", "last", "--level", "LOUD"], 2, ["LOUD"], id="logs-bad-level"),
    pytest.param(["gc", "--older-than", "soon"], 2, ["soon"], id="gc-bad-age"),
    pytest.param(["flows", "nowhere"], 2, ["nowhere"], id="flows-no-such-dir"),
]


@pytest.mark.parametrize(("args", "code", "needles"), BAD_INPUT)
def test_bad_input(
    recorded: tuple[Project, list[dict[str, Any]]], args: list[str], code: int, needles: list[str]
) -> None:
    project, before = recorded
    args = [a.format(ambiguous=_ambiguous_prefix(before)) for a in args]
    proc = project.orch(*args, expect=None)
    line = assert_usage_error(proc, code, *needles)
    assert line.startswith("error: "), line
    assert project.recorded() == before, "bad input must record nothing"


def test_bad_input_recorded_nothing(recorded: tuple[Project, list[dict[str, Any]]]) -> None:
    """After all the bad input above, `orch runs --json` shows the same runs as before."""
    project, before = recorded
    assert project.runs() == before


def test_bad_input_in_a_fresh_project_creates_nothing(project: Project) -> None:
    project.write_flow("flows.py", FLOWS)
    for args, code in (
        (["run", "missing.py:hello"], 3),
        (["run", "flows.py:hello", "-p", "n=abc"], 2),
        (["run", "flows.py:hello", "-p", "x=1"], 2),
        (["show", "last"], 2),
        (["logs", "last"], 2),
    ):
        assert_usage_error(project.orch(*args, expect=None), code)
    # Listing and maintenance commands succeed with nothing to show or delete.
    assert project.runs() == []
    assert project.json("cache", "ls", "--json") == []
    assert "no runs" in project.orch("runs").stderr
    project.orch("cache", "clear")
    project.orch("gc", "--older-than", "0s")
    assert not project.home.exists(), "nothing here may create .orch/"


def test_debug_shows_the_traceback(project: Project) -> None:
    project.write("broken.py", BROKEN)
    proc = project.orch("--debug", "run", "broken.py:f", expect=3)
    assert "Traceback" in proc.stderr
    assert proc.stderr.strip().splitlines()[-1].startswith("error: broken.py:4")


@pytest.mark.slow  # runs every store command once
def test_newer_schema_is_refused_by_every_store_command(project: Project) -> None:
    project.write_flow("flows.py", FLOWS)
    project.orch("run", "flows.py:hello")
    db = project.home / "orch.db"
    with sqlite3.connect(db) as conn:
        conn.execute("PRAGMA user_version = 999")
    conn.close()
    for args in (
        ["runs"],
        ["runs", "--json"],
        ["show", "last"],
        ["logs", "last"],
        ["run", "flows.py:hello"],
        ["run", "--subprocess", "flows.py:hello"],
        ["cache", "ls"],
        ["cache", "clear"],
        ["gc", "--older-than", "0s"],
    ):
        proc = project.orch(*args, expect=None)
        assert_usage_error(proc, 4, "newer")
    with sqlite3.connect(db) as conn:
        assert conn.execute("PRAGMA user_version").fetchone()[0] == 999
        assert conn.execute("SELECT COUNT(*) FROM flow_runs").fetchone()[0] == 1
    conn.close()


# -- orch runs / show ---------------------------------------------------------------------


def test_runs_table_json_and_filters(project: Project) -> None:
    project.write_flow("flows.py", FLOWS)
    project.orch("run", "flows.py:hello")
    project.orch("run", "flows.py:hello", "-p", "n=2")
    project.orch("run", "flows.py:boom", expect=1)

    table = project.orch("runs").stdout.splitlines()
    assert table[0].split() == ["ID", "FLOW", "STATE", "TRIGGER", "STARTED", "DURATION", "TASKS"]
    assert [line.split()[1:3] for line in table[1:]] == [
        ["boom", "FAILED"],
        ["hello", "COMPLETED"],
        ["hello", "COMPLETED"],
    ]

    runs = project.runs()
    assert [r["flow"] for r in runs] == ["boom", "hello", "hello"]  # newest first
    assert runs[1]["parameters"] == {"n": 2}
    assert runs[1]["task_counts"] == {"COMPLETED": 1}
    assert [r["flow"] for r in project.json("runs", "--json", "--flow", "hello")] == [
        "hello",
        "hello",
    ]
    failed = project.json("runs", "--json", "--state", "failed")
    assert [(r["flow"], r["state"]) for r in failed] == [("boom", "FAILED")]
    assert project.json("runs", "--json", "--flow", "boom", "--state", "COMPLETED") == []
    assert [r["id"] for r in project.json("runs", "--json", "--limit", "1")] == [runs[0]["id"]]
    assert [r["id"] for r in project.json("runs", "--json", "-n", "2")] == [
        r["id"] for r in runs[:2]
    ]


def test_show_by_id_prefix_and_last(project: Project) -> None:
    project.write_flow("flows.py", FLOWS)
    project.orch("run", "flows.py:hello", "-p", "n=5")
    detail = project.show("last")
    run_id = detail["id"]
    assert project.show(run_id) == detail
    assert project.show(run_id[:8]) == detail
    assert project.show(run_id[:8].upper())["id"] == run_id

    for field in ("id", "flow", "state", "parameters", "started", "ended", "tasks"):
        assert field in detail, field
    assert detail["flow"] == "hello"
    assert detail["parameters"] == {"n": 5}
    assert detail["started"] <= detail["ended"]
    [task] = detail["tasks"]
    assert {k: task[k] for k in ("name", "state", "attempts", "cached", "error")} == {
        "name": "add-0",
        "state": "COMPLETED",
        "attempts": 1,
        "cached": False,
        "error": None,
    }
    assert [h["state"] for h in detail["history"]] == ["PENDING", "RUNNING", "COMPLETED"]
    assert [h["state"] for h in task["history"]] == ["PENDING", "RUNNING", "COMPLETED"]

    text = project.orch("show", run_id[:8]).stdout
    assert run_id in text
    assert "add-0" in text
    assert "COMPLETED" in text
    assert "n=5" in text


def test_show_lists_subflows(project: Project) -> None:
    project.write_flow("flows.py", FLOWS)
    project.orch("run", "flows.py:fan", "-p", "k=3")
    detail = project.show("last")
    assert detail["flow"] == "fan"
    assert [(c["flow"], c["state"]) for c in detail["children"]] == [("leaf", "COMPLETED")] * 3
    child = project.show(detail["children"][0]["id"])
    assert child["parent"] == detail["id"]
    assert child["parameters"] == {"i": 0}


# -- orch logs ----------------------------------------------------------------------------

CHATTY = """
from orchlite import flow, get_run_logger, task


@task
def talk(i: int) -> int:
    log = get_run_logger()
    log.debug("debug from %d", i)
    log.info("info from %d", i)
    log.warning("warning from %d", i)
    return i


@flow(log_prints=True)
def chatty():
    print("printed line")
    talk(0)
    talk(1)
    get_run_logger().error("flow error line")
"""


def test_logs_with_level_and_task_filters(project: Project) -> None:
    project.write_flow("flows.py", CHATTY)
    project.orch("run", "flows.py:chatty")
    lines = project.orch("logs", "last").stdout.splitlines()
    messages = [line.split(" - ", 1)[1] for line in lines]
    assert "debug from 0" not in messages  # below the default level (ORCH_LOGGING_LEVEL)
    for expected in (
        "printed line",
        "info from 0",
        "warning from 1",
        "flow error line",
    ):
        assert expected in messages, lines
    assert messages.index("printed line") < messages.index("info from 0")
    assert messages.index("info from 1") < messages.index("flow error line")

    warnings = project.orch("logs", "last", "--level", "warning").stdout.splitlines()
    assert [w.split(" - ", 1)[1] for w in warnings] == [
        "warning from 0",
        "warning from 1",
        "flow error line",
    ]
    assert all(("WARNING" in w or "ERROR" in w) for w in warnings)

    only_talk_1 = project.orch("logs", "last", "--task", "talk-1").stdout.splitlines()
    assert [line.split(" - ", 1)[1] for line in only_talk_1] == [
        "info from 1",
        "warning from 1",
    ]
    assert all("'talk-1'" in line for line in only_talk_1)


def test_logs_follow_streams_a_run_in_progress(project: Project) -> None:
    project.write_flow(
        "flows.py",
        """
        import time
        from pathlib import Path

        from orchlite import flow, get_run_logger, task


        @task
        def step(i: int) -> int:
            get_run_logger().info("step %d", i)
            if i == 0:  # hold the run open until the test has seen this line
                deadline = time.monotonic() + 30
                while not Path("release").exists() and time.monotonic() < deadline:
                    time.sleep(0.02)
            time.sleep(0.1)
            return i


        @flow
        def slow(n: int = 5):
            for i in range(n):
                step(i)
            get_run_logger().info("all done")
        """,
    )
    runner = project.popen("run", "--subprocess", "flows.py:slow")
    follower = None
    try:
        store = wait_for(
            lambda: (project.home / "orch.db").exists() and project.store(), what="the store"
        )
        [run] = wait_for(lambda: store.list_flow_runs(), what="the run to be recorded")
        follower = project.popen("logs", run.id[:10], "--follow")
        first = follower.stdout.readline()  # type: ignore[union-attr]
        # The first line arrives while the run is still going.
        assert "step 0" in first, first
        assert store.get_flow_run(run.id).state == "RUNNING"
        (project.root / "release").write_text("go")
        rest, err = finish(follower, timeout=20)
        assert follower.returncode == 0, err
    finally:
        (project.root / "release").write_text("go")
        if follower is not None and follower.poll() is None:
            follower.kill()
            finish(follower)
        finish(runner, timeout=20)
    assert runner.returncode == 0
    # `logs --follow` returned by itself once the run was over, with every line.
    assert store.get_flow_run(run.id).state == "COMPLETED"
    followed = [line.split(" - ", 1)[1] for line in (first + rest).splitlines()]
    assert followed == [f"step {i}" for i in range(5)] + ["all done"]
    assert err == ""


# -- orch flows ---------------------------------------------------------------------------

FLOW_STUB = """
from orchlite import flow


@flow{options}
def {name}(a: int, b: str = "x"):
    return a
"""


def test_flows_lists_project_flows_and_skips_tests_venvs_and_state(project: Project) -> None:
    project.write("pipeline.py", FLOW_STUB.format(name="etl", options=""))
    project.write("sub/more.py", FLOW_STUB.format(name="more_fn", options='(name="more")'))
    project.write("tests/test_pipeline.py", FLOW_STUB.format(name="in_tests", options=""))
    project.write("env2/pyvenv.cfg", "home = /usr/bin\n")
    project.write("env2/lib/site.py", FLOW_STUB.format(name="in_venv", options=""))
    project.write(".venv/pyvenv.cfg", "home = /usr/bin\n")
    project.write(".venv/lib/x.py", FLOW_STUB.format(name="in_dot_venv", options=""))
    project.write(".orch/stray.py", FLOW_STUB.format(name="in_state", options=""))
    project.write("notes.py", "x = 1\n")

    rows = project.json("flows", "--json")
    assert [(r["name"], r["target"]) for r in rows] == [
        ("etl", "pipeline.py:etl"),
        ("more", "sub/more.py:more_fn"),
    ]
    assert rows[0]["parameters"] == [
        {"name": "a", "annotation": "int", "default": None},
        {"name": "b", "annotation": "str", "default": "'x'"},
    ]

    table = project.orch("flows").stdout.splitlines()
    assert table[0].split() == ["FLOW", "TARGET", "PARAMETERS"]
    assert "pipeline.py:etl" in table[1]

    only_sub = project.json("flows", "sub", "--json")
    assert [r["name"] for r in only_sub] == ["more"]
    # Every listed target can be run as listed, from the project root.
    for row in rows + only_sub:
        project.orch("run", row["target"], "-p", "a=1")
    assert {r["flow"] for r in project.runs()} == {"etl", "more"}


def test_flows_reports_unparsable_files_on_stderr(project: Project) -> None:
    project.write("pipeline.py", FLOW_STUB.format(name="etl", options=""))
    project.write("broken.py", BROKEN)
    proc = project.orch("flows", "--json")
    assert [r["name"] for r in json.loads(proc.stdout)] == ["etl"]
    assert "broken.py" in proc.stderr
    assert "Traceback" not in proc.stderr


# -- orch cache / gc ----------------------------------------------------------------------

CACHED = """
from orchlite import flow, task
from orchlite.cache_policies import INPUTS, NO_CACHE


@task(cache_policy=INPUTS, persist_result=True)
def cached_big(x: int) -> bytes:
    bump("cached.count")
    return bytes([x]) * 10_000


@task(cache_policy=NO_CACHE)
def plain_big(x: int) -> bytes:
    return bytes([x + 1]) * 20_000


@flow
def keep(x: int = 1) -> int:
    return len(cached_big(x)) + len(plain_big(x))


@flow
def boom():
    raise RuntimeError("boom")
"""


def test_cache_ls_and_clear(project: Project) -> None:
    project.write_flow("flows.py", CACHED)
    project.orch("run", "flows.py:keep", "-p", "x=1")
    project.orch("run", "flows.py:keep", "-p", "x=2")
    project.orch("run", "flows.py:keep", "-p", "x=1")
    assert project.count("cached.count") == 2

    entries = project.json("cache", "ls", "--json")
    assert len(entries) == 2
    assert {e["task"] for e in entries} == {"cached_big@flows.py"}
    assert all(e["in_blob"] and e["serializer"] == "cloudpickle" for e in entries)
    assert all(e["key"].startswith("v1:") for e in entries)
    table = project.orch("cache", "ls").stdout.splitlines()
    assert table[0].split() == ["TASK", "KEY", "CREATED", "EXPIRES"]
    assert len(table) == 3

    proc = project.orch("cache", "clear", "--task", "other@flows.py")
    assert "removed 0" in proc.stderr
    proc = project.orch("cache", "clear")
    assert "removed 2 cache entries" in proc.stderr
    assert project.json("cache", "ls", "--json") == []
    project.orch("run", "flows.py:keep", "-p", "x=1")
    assert project.count("cached.count") == 3


def test_gc_deletes_finished_runs_and_unreferenced_blobs(project: Project) -> None:
    project.write_flow("flows.py", CACHED)
    project.write_flow(
        "slow.py",
        """
        import time
        from pathlib import Path

        from orchlite import flow


        @flow
        def sleeper():
            Path("sleeping").write_text("1")
            time.sleep(3600)
        """,
    )
    project.orch("run", "flows.py:keep")
    project.orch("run", "flows.py:boom", expect=1)
    assert len(project.blob_files()) == 2

    # A run in progress is not finished: gc leaves it alone.
    sleeper = project.popen("run", "slow.py:sleeper")
    try:
        wait_for(lambda: (project.root / "sleeping").exists(), what="the sleeper")
        wait_for(
            lambda: any(r["flow"] == "sleeper" for r in project.runs()), what="sleeper recorded"
        )
        proc = project.orch("gc", "--older-than", "0s")
        assert "deleted 2 run(s)" in proc.stderr, proc.stderr
        assert [(r["flow"], r["state"]) for r in project.runs()] == [("sleeper", "RUNNING")]
    finally:
        sleeper.send_signal(signal.SIGINT)
        finish(sleeper)
    assert sleeper.returncode == 130

    # Blobs younger than gc's grace period are kept: a run may be about to reference them.
    assert len(project.blob_files()) == 2
    an_hour_ago = time.time() - 7200
    for blob in project.blob_files():
        os.utime(blob, (an_hour_ago, an_hour_ago))
    proc = project.orch("gc", "--older-than", "0s")
    assert "deleted 1 run(s) and 1 unreferenced blob(s)" in proc.stderr, proc.stderr
    assert project.runs() == []
    # The cached result's blob is still referenced by its cache entry.
    assert len(project.blob_files()) == 1
    [entry] = project.json("cache", "ls", "--json")
    assert entry["task"] == "cached_big@flows.py"
    project.orch("run", "flows.py:keep")
    assert project.count("cached.count") == 1

    project.orch("cache", "clear")
    for blob in project.blob_files():
        os.utime(blob, (an_hour_ago, an_hour_ago))
    project.orch("gc", "--older-than", "0s")
    assert project.blob_files() == []
    assert project.runs() == []
    assert project.store().integrity_check() == "ok"


def test_gc_keeps_runs_younger_than_the_age(project: Project) -> None:
    project.write_flow("flows.py", FLOWS)
    project.orch("run", "flows.py:hello")
    proc = project.orch("gc", "--older-than", "1h")
    assert "deleted 0 run(s)" in proc.stderr
    assert len(project.runs()) == 1
    project.orch("gc")  # the default age: 30 days
    assert len(project.runs()) == 1


# -- parameters ---------------------------------------------------------------------------

TYPED = """
import datetime as dt
import enum
import json
from pathlib import Path

from orchlite import flow


class Color(enum.Enum):
    RED = "red"
    BLUE = "blue"


@flow
def typed(
    n: int,
    flag: bool,
    day: dt.date,
    items: list[int],
    color: Color,
    where: Path,
    ratio: float = 0.5,
    note: str = "x",
):
    seen = {
        "n": [type(n).__name__, n],
        "flag": [type(flag).__name__, flag],
        "day": [type(day).__name__, day.isoformat()],
        "items": [type(items).__name__, [type(i).__name__ for i in items], items],
        "color": [type(color).__name__, color.name],
        "where": [isinstance(where, Path), str(where)],
        "ratio": [type(ratio).__name__, ratio],
        "note": [type(note).__name__, note],
    }
    Path("seen.json").write_text(json.dumps(seen))
"""


def test_typed_parameters_are_coerced_and_recorded(project: Project) -> None:
    project.write("flows.py", TYPED)
    project.orch(
        "run",
        "flows.py:typed",
        "-p",
        "n=5",
        "-p",
        "flag=yes",
        "-p",
        "day=2026-11-20",
        "-p",
        "items=[1, 2, 3]",
        "-p",
        "color=blue",
        "-p",
        "where=data/in.csv",
        "-p",
        "ratio=2",
    )
    seen = json.loads((project.root / "seen.json").read_text())
    assert seen == {
        "n": ["int", 5],
        "flag": ["bool", True],
        "day": ["date", "2026-11-20"],
        "items": ["list", ["int", "int", "int"], [1, 2, 3]],
        "color": ["Color", "BLUE"],
        "where": [True, "data/in.csv"],
        "ratio": ["float", 2.0],
        "note": ["str", "x"],
    }
    assert project.show()["parameters"] == {
        "n": 5,
        "flag": True,
        "day": "2026-11-20",
        "items": [1, 2, 3],
        "color": "blue",
        "where": "data/in.csv",
        "ratio": 2.0,
        "note": "x",
    }


def test_params_file_with_command_line_override(project: Project) -> None:
    project.write("flows.py", TYPED)
    project.write(
        "params.json",
        json.dumps(
            {
                "n": 7,
                "flag": False,
                "day": "2026-01-02",
                "items": [4],
                "color": "RED",
                "where": "a/b",
                "note": "from file",
            }
        ),
    )
    project.orch("run", "flows.py:typed", "--params-file", "params.json", "-p", "n=8")
    seen = json.loads((project.root / "seen.json").read_text())
    assert seen["n"] == ["int", 8]
    assert seen["flag"] == ["bool", False]
    assert seen["color"] == ["Color", "RED"]
    assert seen["note"] == ["str", "from file"]
    params = project.show()["parameters"]
    assert params["n"] == 8
    assert params["day"] == "2026-01-02"
    assert params["color"] == "red"


def test_orch_works_from_a_subdirectory(project: Project) -> None:
    """Without ORCH_HOME, `.orch/` is found by walking up from the working directory."""
    project.write_flow("flows.py", FLOWS)
    project.orch("run", "flows.py:hello")
    sub = project.root / "deep" / "er"
    sub.mkdir(parents=True)
    proc = orch(sub, "runs", "--json", env=child_env(None), expect=0)
    assert [r["flow"] for r in json.loads(proc.stdout)] == ["hello"]
    orch(sub, "run", "flows.py:hello", env=child_env(None), expect=0)
    assert not (sub / ".orch").exists()
    assert len(project.runs()) == 2


def test_var_keyword_parameters_from_the_command_line(project: Project) -> None:
    project.write(
        "flows.py",
        """
        from orchlite import flow

        @flow
        def kw(**options):
            return options

        @flow
        def typed(**options: int):
            assert options == {"a": 1, "b": 2}, options
            return options
        """,
    )
    project.orch("run", "flows.py:kw", "-p", "a=1", "-p", "b=two")
    detail = project.show()
    assert detail["parameters"] == {"a": "1", "b": "two"}
    assert detail["state"] == "COMPLETED"
    project.orch("retry", "last", "--force", "-p", "a=3")
    assert project.show()["parameters"] == {"a": "3", "b": "two"}
    # Values are converted by the annotation of **options, as named parameters' are.
    project.orch("run", "flows.py:typed", "-p", "a=1", "-p", "b=2")
    assert project.show()["parameters"] == {"a": 1, "b": 2}
    bad = project.orch("run", "flows.py:typed", "-p", "a=x", expect=2)
    assert "parameter 'a': expected int, got 'x'" in bad.stderr


def test_var_positional_parameters_from_the_command_line(project: Project) -> None:
    project.write(
        "flows.py",
        """
        from orchlite import flow

        @flow
        def total(label: str, *values: int) -> str:
            return f"{label}={sum(values)}"
        """,
    )
    detail = project.json(
        "run", "flows.py:total", "-p", "label=sum", "-p", "values=1,2,3", "--json"
    )
    assert detail["state"] == "COMPLETED", detail
    assert detail["parameters"] == {"label": "sum", "values": [1, 2, 3]}
    project.orch("retry", "last", "--force", "-p", "values=[4, 5]", "--subprocess")
    assert project.show()["parameters"] == {"label": "sum", "values": [4, 5]}
    bad = project.orch("run", "flows.py:total", "-p", "label=x", "-p", "values=1,x", expect=2)
    assert bad.stderr.strip() == "error: parameter 'values[1]': expected int, got 'x'"
