"""Sixteen processes share one `.orch/` for a minute; nobody sees "database is locked".

At any moment the store has: RUNNERS `orch run` flow runs (each a loop in a thread here,
starting the next run when one ends), the daemon firing two schedules every second (and the
child processes it starts for them), READERS TUI-style readers polling the store the way
`orch tui` does (`tui.reader.Poller` with its loaders, without Textual), and LISTERS
`orch runs` loops: 8 + 1 + 3 + 4 = 16 processes, plus the flow runs the daemon starts.

Checked: every child exits 0 and no stderr, daemon log or stored log line mentions a locked
database, an OperationalError or a traceback; every `orch run` started is recorded with all
its task runs, COMPLETED; every scheduled run is COMPLETED; the database passes
`PRAGMA integrity_check`.

Measured, and printed: the latency of a write as the writers see it. Each `work` flow times
its task calls; a task call records one commit (its outcome, with its start), so its time
is the commit's latency under contention plus a fraction of a millisecond of engine work.
Also printed: the wall time of whole `orch run` and `orch runs` commands.

Length: ORCH_CONTENTION_SECONDS (default 60), e.g.
`ORCH_CONTENTION_SECONDS=600 python -m pytest tests/stress -s` for a ten-minute run.
"""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import statistics
import subprocess
import sys
import textwrap
import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import pytest

SECONDS = float(os.environ.get("ORCH_CONTENTION_SECONDS", "60"))
RUNNERS = 8
LISTERS = 4
READERS = 3
TASKS = 20
BAD = ("locked", "OperationalError", "Traceback", "error:", "busy")

FLOWS = """
import json
import time
from pathlib import Path

from orchlite import flow, task


@task
def step(i: int) -> int:
    return i * i


@flow
def work(seq: str, tasks: int = 20) -> int:
    took = []
    for i in range(tasks):
        started = time.perf_counter()
        step(i)
        took.append(time.perf_counter() - started)
    Path("latency", f"{seq}.json").write_text(json.dumps(took))
    return tasks


@flow
def tick() -> int:
    return sum(step(i) for i in range(3))


@flow
def tock() -> int:
    return step(2)
"""

ORCH_TOML = """
[[schedule]]
target = "flows.py:tick"
interval = 1

[[schedule]]
target = "flows.py:tock"
interval = 1
"""

READER = """
import json
import sys
import time
from pathlib import Path

from orchlite.tui.poller import LoadError, Poller
from orchlite.tui.reader import LogFollower, RunsQuery, load_runs
from orchlite.tui.run_reader import load_detail

home, seconds = Path(sys.argv[1]), float(sys.argv[2])
runs = Poller(home, lambda store: load_runs(store, RunsQuery()))
newest = {"id": None}
detail = Poller(home, lambda store: newest["id"] and load_detail(store, newest["id"]))
follower = {"id": None, "read": None}


def logs(store):
    if newest["id"] != follower["id"]:
        follower["id"], follower["read"] = newest["id"], LogFollower(newest["id"])
    return follower["read"] and follower["read"](store)


log_poller = Poller(home, logs)
polls = loads = 0
errors = []
deadline = time.monotonic() + seconds
while time.monotonic() < deadline:
    for poller in (runs, detail, log_poller):
        answer = poller.tick()
        polls += 1
        if isinstance(answer, LoadError):
            errors.append(answer.message)
        elif answer is not None:
            loads += 1
            if poller is runs and answer.runs:
                newest["id"] = answer.runs[0].id
    time.sleep(0.05)
assert "textual" not in sys.modules, "the reader must not load Textual"
print(json.dumps({"polls": polls, "loads": loads, "errors": errors}))
sys.exit(1 if errors else 0)
"""


@dataclass
class Done:
    """One finished child command."""

    args: Sequence[str]
    code: int
    stdout: str
    stderr: str
    seconds: float


def _env(root: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("ORCH_")}
    env.update(ORCH_HOME=str(root / ".orch"), NO_COLOR="1", PYTHONDONTWRITEBYTECODE="1")
    return env


def _run(root: Path, args: Sequence[str]) -> Done:
    started = time.perf_counter()
    proc = subprocess.run(
        [sys.executable, *args],
        cwd=root,
        env=_env(root),
        capture_output=True,
        text=True,
        timeout=SECONDS + 120,
    )
    return Done(args, proc.returncode, proc.stdout, proc.stderr, time.perf_counter() - started)


def _loop(root: Path, deadline: float, make_args: object) -> list[Done]:
    done: list[Done] = []
    number = 0
    while time.monotonic() < deadline:
        done.append(_run(root, make_args(number)))  # type: ignore[operator]
        number += 1
    return done


def _percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))]


def _figures(name: str, seconds: list[float]) -> str:
    ms = [s * 1000 for s in seconds]
    return (
        f"{name}: n={len(ms)} p50={statistics.median(ms):.1f} ms "
        f"p99={_percentile(ms, 0.99):.1f} ms max={max(ms):.1f} ms"
    )


def _assert_clean(done: Done) -> None:
    found = [needle for needle in BAD if needle in done.stderr]
    assert done.code == 0 and not found, f"{done.args}: exit {done.code}\n{done.stderr[-3000:]}"


@pytest.mark.stress
def test_sixteen_processes_share_one_store_without_locked_errors(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    root = tmp_path
    (root / "flows.py").write_text(textwrap.dedent(FLOWS))
    (root / "reader.py").write_text(textwrap.dedent(READER))
    (root / "latency").mkdir()
    orch = ["-m", "orchlite.cli"]
    _assert_clean(_run(root, [*orch, "run", "flows.py:work", "-p", "seq=first"]))
    (root / "orch.toml").write_text(textwrap.dedent(ORCH_TOML))

    with open(root / "daemon.err", "w") as daemon_err:
        daemon = subprocess.Popen(
            [sys.executable, *orch, "daemon", "--tick", "0.2", "--grace", "120"],
            cwd=root,
            env=_env(root),
            stdout=subprocess.DEVNULL,
            stderr=daemon_err,
        )
    deadline = time.monotonic() + SECONDS
    try:
        with ThreadPoolExecutor(RUNNERS + LISTERS + READERS) as pool:
            runners = [
                pool.submit(
                    _loop,
                    root,
                    deadline,
                    lambda n, r=r: [*orch, "run", "flows.py:work", "-p", f"seq={r}-{n}"],
                )
                for r in range(RUNNERS)
            ]
            listers = [
                pool.submit(_loop, root, deadline, lambda n: [*orch, "runs", "--limit", "50"])
                for _ in range(LISTERS)
            ]
            readers = [
                pool.submit(_run, root, ["reader.py", str(root / ".orch"), str(SECONDS)])
                for _ in range(READERS)
            ]
            run_commands = [done for future in runners for done in future.result()]
            list_commands = [done for future in listers for done in future.result()]
            read_commands = [future.result() for future in readers]
    finally:
        daemon.send_signal(signal.SIGTERM)
        daemon_code = daemon.wait(timeout=180)

    for done in [*run_commands, *list_commands, *read_commands]:
        _assert_clean(done)
    daemon_stderr = (root / "daemon.err").read_text()
    assert daemon_code == 0, daemon_stderr
    assert not [needle for needle in BAD if needle in daemon_stderr], daemon_stderr
    assert all(json.loads(done.stdout)["loads"] > 0 for done in read_commands)

    conn = sqlite3.connect(root / ".orch" / "orch.db")
    try:
        assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        manual = conn.execute(
            "SELECT id, state, parameters FROM flow_runs WHERE flow_name = 'work'"
        ).fetchall()
        started = {"first"} | {done.args[-1].removeprefix("seq=") for done in run_commands}
        recorded = {json.loads(parameters)["seq"] for _, _, parameters in manual}
        assert recorded == started
        assert len(manual) == len(started)
        assert {state for _, state, _ in manual} == {"COMPLETED"}
        tasks = dict(
            conn.execute(
                "SELECT flow_run_id, COUNT(*) FROM task_runs WHERE state = 'COMPLETED'"
                " GROUP BY flow_run_id"
            ).fetchall()
        )
        assert all(tasks.get(run_id) == TASKS for run_id, _, _ in manual)
        scheduled = conn.execute(
            "SELECT state, COUNT(*) FROM flow_runs WHERE trigger = 'schedule' GROUP BY state"
        ).fetchall()
        by_state = dict(scheduled)
        assert by_state.get("COMPLETED", 0) >= 1, by_state
        assert set(by_state) <= {"COMPLETED", "SKIPPED"}, by_state
        bad_logs = conn.execute(
            "SELECT message FROM logs WHERE message LIKE '%locked%'"
            " OR message LIKE '%OperationalError%' OR message LIKE '%Traceback%' LIMIT 5"
        ).fetchall()
        assert not bad_logs, bad_logs
    finally:
        conn.close()

    latencies = [
        seconds
        for path in (root / "latency").glob("*.json")
        for seconds in json.loads(path.read_text())
    ]
    assert len(latencies) == TASKS * len(started)
    with capsys.disabled():
        print(
            f"\ncontention: {SECONDS:g} s, {RUNNERS} `orch run` loops, {LISTERS} `orch runs`"
            f" loops, {READERS} TUI-style readers, the daemon + {sum(by_state.values())}"
            " scheduled runs"
        )
        print("  " + _figures("task call (one commit) in `orch run`", latencies))
        print("  " + _figures("`orch run` command, 20 tasks", [d.seconds for d in run_commands]))
        print("  " + _figures("`orch runs` command", [d.seconds for d in list_commands]))
