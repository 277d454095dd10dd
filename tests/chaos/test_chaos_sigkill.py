"""SIGKILL loops: kill `orch run` / `orch retry`, and `orch daemon`, at random instants.

The number of kills is `ORCH_CHAOS_KILLS` (default 100) for the flow loop and a tenth of
that for the daemon loop (each daemon kill waits for second-level schedules to fire). The
long run (see docs/reliability.md, "Crash safety"):

    ORCH_CHAOS_KILLS=10000 python -m pytest tests/chaos -m chaos -s

Every kill is followed by the checks of `chaos_harness`; violations are collected, so a long
run reports how many it saw, and the test fails if there was any.
"""

from __future__ import annotations

import json
import os
import random
import signal
import statistics
import subprocess
import time
from collections import Counter
from functools import partial
from pathlib import Path

import pytest
from chaos_harness import (
    Tally,
    check_acknowledged,
    check_executions,
    check_store,
    kill_daemon,
    new_project,
    read_ints,
    read_lines,
    resumed_tasks,
    say,
    start_orch,
    top_level_runs,
    wait_quiet,
)

from orchlite.states import TERMINAL
from tests.helpers import Project, wait_for

pytestmark = pytest.mark.chaos

KILLS = int(os.environ.get("ORCH_CHAOS_KILLS", "100"))
DAEMON_KILLS = max(5, KILLS // 10)
CLI_REAP_EVERY = 10
KILLS_PER_PROJECT = 200  # a fresh project now and then keeps each check's cost flat
FINAL = {state.value for state in TERMINAL}
SEED = int(os.environ.get("ORCH_CHAOS_SEED", str(int(time.time()))))


class FlowLoop:
    """Start `orch run` (or `orch retry` of the run killed last), kill it, check, repeat."""

    def __init__(self, project: Project, rng: random.Random, tally: Tally) -> None:
        self.project = project
        self.rng = rng
        self.tally = tally
        self.prev: str | None = None  # the run to resume next; None: start a fresh run
        self.durations: list[float] = []  # of the last commands that ran to their end
        self.verified: set[str] = set()  # blobs found whole by an earlier check
        self.streak = 0  # commands killed since one last ran to its end

    @property
    def horizon(self) -> float:
        """The kill window: a little longer than a command that ran to its end lately took,
        so most commands are killed, anywhere from interpreter start to the last commit; it
        widens while none gets to the end (the machine got slower)."""
        window = max(0.3, 1.1 * statistics.median(self.durations[-5:]))
        return window * 1.25 ** (self.streak // 10)

    def calibrate(self) -> None:
        """One run to completion, to measure the first kill window."""
        self.round(delay=None)

    def round(self, delay: float | None) -> None:
        """One child: started, killed after `delay` seconds (None: never), then checked."""
        project = self.project
        for name in ("exec.log", "ack.log"):
            (project.root / name).unlink(missing_ok=True)
        before = top_level_runs(project)
        resumed = resumed_tasks(project, self.prev)
        args = ["retry", self.prev] if self.prev else ["run", "flows.py:many"]
        started = time.monotonic()
        child = start_orch(project, *args)
        killed = False
        try:
            child.wait(timeout=delay)
        except subprocess.TimeoutExpired:
            child.kill()
            child.wait()
            killed = True
        where = f"kill {self.tally.kills + 1} ({' '.join(args)[:18]}, {delay or 0:.3f} s)"
        finished = not killed
        if finished and child.returncode != 0:
            self.tally.add(where, [f"orch exited {child.returncode} unkilled"])
        runs = top_level_runs(project)
        new = [run_id for run_id in runs if run_id not in before]
        if len(new) > 1:
            self.tally.add(where, [f"one command recorded {len(new)} runs"])
        run_id = new[0] if new else None
        acked = read_ints(project.root / "ack.log")
        executed = read_ints(project.root / "exec.log")
        problems = check_acknowledged(project, run_id, acked)
        problems += check_executions(project, run_id, resumed, executed, finished=finished)
        # Now and then the reaping checked is an `orch` command's own (they all reap first).
        by_command = self.tally.kills % CLI_REAP_EVERY == 0
        if by_command:
            listing = project.orch("runs", "--json", expect=None)
            if listing.returncode != 0:
                problems.append(f"`orch runs` exited {listing.returncode}: {listing.stderr}")
        problems += check_store(project, runs=new, verified=self.verified, reap=not by_command)
        self.tally.add(where, problems)
        if killed:
            self.tally.kills += 1
            self.streak += 1
        else:
            self.tally.finished += 1
            self.durations.append(time.monotonic() - started)
            self.streak = 0
        if run_id is not None:
            state = top_level_runs(project)[run_id]
            if finished and state != "COMPLETED":
                self.tally.add(where, [f"run {run_id[:8]} ended {state} unkilled"])
            self.prev = None if state == "COMPLETED" else run_id


def test_sigkill_loop_of_orch_run_and_orch_retry(tmp_path: Path) -> None:
    rng = random.Random(SEED)
    tally = Tally()
    loop: FlowLoop | None = None
    fresh_at = 0
    while tally.kills < KILLS:
        if loop is None or (tally.kills >= fresh_at and loop.prev is None):
            fresh_at = tally.kills + KILLS_PER_PROJECT
            loop = FlowLoop(new_project(tmp_path / f"project-{tally.kills}"), rng, tally)
            loop.calibrate()
        loop.round(delay=rng.uniform(0.0, loop.horizon))
        if tally.kills % 100 == 0 and tally.kills:
            say(tally.line(f"flow loop, seed {SEED}"))
    # The last killed run, resumed to the end: only what it had not completed executes.
    assert loop is not None
    if loop.prev is not None:
        loop.round(delay=None)
    say(tally.line(f"flow loop, seed {SEED}"))
    assert not tally.violations, "\n".join(tally.violations[:50])
    assert tally.kills == KILLS


def test_sigkill_loop_of_the_daemon(tmp_path: Path) -> None:
    """`orch daemon` with a schedule firing every second, killed at random instants after it
    started: alone (its runs go on as orphans) or with its runs (a lost container), then
    restarted. Finally a daemon left running completes a run and stops on SIGTERM."""
    rng = random.Random(SEED + 1)
    tally = Tally()
    project = new_project(tmp_path / "daemon")
    verified: set[str] = set()
    ended: set[str] = set()  # runs checked after they had ended: nothing changes them again

    def check(where: str) -> None:
        wait_quiet(project)
        runs = top_level_runs(project)
        problems = check_store(project, runs=set(runs) - ended, verified=verified)
        ended.update(run_id for run_id, state in runs.items() if state in FINAL)
        executed = Counter(read_lines(project.root / "daemon-exec.log"))
        twice = [run_id[:8] for run_id, n in executed.items() if n > 1]
        if twice:
            problems.append(f"scheduled run(s) {twice} executed twice")
        tally.add(where, problems)

    while tally.kills < DAEMON_KILLS:
        daemon = start_orch(project, "daemon", "--tick", "0.2")
        wait_for(partial(daemon_up, project, daemon.pid), timeout=60, what="the daemon to start")
        time.sleep(rng.uniform(0.0, 1.5))
        with_runs = rng.random() < 0.5
        kill_daemon(daemon, with_runs=with_runs)
        tally.kills += 1
        check(f"daemon kill {tally.kills} ({'with' if with_runs else 'without'} its runs)")
        if tally.kills % 50 == 0:
            say(tally.line(f"daemon loop, seed {SEED}"))

    before = set(top_level_runs(project))
    daemon = start_orch(project, "daemon", "--tick", "0.2")
    try:
        wait_for(
            lambda: [
                s for r, s in top_level_runs(project).items() if r not in before and s in FINAL
            ],
            timeout=120,
            what="a run to end after the last restart",
        )
    finally:
        daemon.send_signal(signal.SIGTERM)
        assert daemon.wait(timeout=60) == 0
    check("after SIGTERM")
    say(tally.line(f"daemon loop, seed {SEED}"))
    assert "COMPLETED" in top_level_runs(project).values()
    assert not tally.violations, "\n".join(tally.violations[:50])


def daemon_up(project: Project, pid: int) -> bool:
    """Whether the daemon `pid` has started (it writes its pid file first)."""
    try:
        return json.loads((project.home / "daemon.pid").read_text())["pid"] == pid
    except (OSError, ValueError, KeyError):
        return False
