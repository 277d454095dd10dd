"""Per-task overhead of a sequential no-op task, beside the floor measured in the same process.

    python tests/bench/bench_task_overhead.py [--calls N] [--rounds R] [--profile]
    python tests/bench/bench_task_overhead.py --against HEAD~1 --rounds 7

Each round is a child process whose stdout and stderr are pipes that nobody reads as a
terminal (as `python flow.py > log` or `orch run ... | tee` give), and measures, in a fresh
`.orch/` each and N = 5,000 calls each:

- the floor: N transactions that each INSERT a task-run-like row and UPDATE it (RUNNING,
  then COMPLETED with a small result), `BEGIN IMMEDIATE` ... `COMMIT`, on a connection to
  a fresh store, with the store's pragmas (WAL, `synchronous=NORMAL`), measured before the
  first figure and after each one;
- console off: a flow run calling `noop(i)` (`@task`, returns None) N times, every state
  and result recorded durably, with console logging off (`setup_logging(console=False)`);
- console on: the same with the console logging users get (`setup_logging()`: a
  "Finished in state" line per task on stderr, into the pipe);
- a cache hit: a flow run calling `lookup(i % 100)` (`cache_policy=INPUTS`, a small dict)
  N times after one run primed the 100 keys, console off; each call recorded CACHED.

Each figure is (flow time - the same N calls of the bare function) / N, with its ratio to the
mean of the two floors measured just before and after it; the report gives the medians
over the rounds. Targets: console off ≤ 2.5× the floor, console on ≤ 3.5×, a cache hit ≤ 3×.

`--against REV` also checks REV out in a temporary git worktree (removed after) and
alternates rounds between it and this checkout, so a noisy machine slows both alike; the
report then gives REV's medians beside this checkout's. `--profile` prints the 15 functions
with the most own time (cProfile, tottime) of one console-off flow run, in this checkout.
`--parts` prints instead where a task's time goes, as CPU time of the measuring thread
(which the machine's load changes far less than wall time): the floor, the task's commit
alone, the engine without it, the console line, a cache hit (and REV's, with `--against`).
"""

from __future__ import annotations

import argparse
import contextlib
import gc
import json
import os
import sqlite3
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from statistics import median
from typing import Any

from _common import REPO, Row, emit, parser, us, verdict

CALLS = 5_000
ROUNDS = 5
KEYS = 100
TARGETS = {"console off": 2.5, "console on": 3.5, "cache hit": 3.0}
"""Per-task cost as a multiple of the floor, at most."""
FIGURES = ("floor", *TARGETS)


# -- in the child: one round ---------------------------------------------------------------


class Floor:
    """The floor: INSERT + UPDATE of a task-run-like row in one write transaction, in a
    table of a fresh store, on a connection with the store's own pragmas."""

    def __init__(self, home: Path) -> None:
        from orchlite.store import Store

        self.conn: sqlite3.Connection = Store(home).conn
        self.conn.execute(
            "CREATE TABLE floor_runs (num INTEGER PRIMARY KEY, flow_run_id TEXT,"
            " position INTEGER, id TEXT, task_key TEXT, name TEXT, state TEXT,"
            " attempts INTEGER, created REAL, started REAL, ended REAL,"
            " result_serializer TEXT, result_data BLOB)"
        )
        self.rows = 0

    def seconds(self, calls: int) -> float:
        """Seconds per row, over `calls` rows appended after those written before."""
        conn, run_id, data = self.conn, "f" * 32, b"\x80\x05N."
        gc.collect()
        start = time.perf_counter_ns()
        for i in range(self.rows, self.rows + calls):
            now = time.time()
            conn.execute("BEGIN IMMEDIATE")
            conn.execute(
                "INSERT INTO floor_runs (num, flow_run_id, position, id, task_key, name, state,"
                " attempts, created, started) VALUES (?,?,?,?,?,?,?,?,?,?)",
                (1 << 32 | i, run_id, i, f"{i:032x}", "noop", f"noop-{i}", "RUNNING", 1, now, now),
            )
            conn.execute(
                "UPDATE floor_runs SET state = ?, ended = ?, result_serializer = ?,"
                " result_data = ? WHERE num = ?",
                ("COMPLETED", now, "cloudpickle", data, 1 << 32 | i),
            )
            conn.execute("COMMIT")
        elapsed = (time.perf_counter_ns() - start) / 1e9
        self.rows += calls
        return elapsed / calls


def small(k: int) -> dict[str, Any]:
    return {"id": k, "ok": True, "tags": ["a", "b"], "score": k / 7}


def noop(i: int) -> None:
    return None


def bare_seconds(fn: Any, calls: int) -> float:
    gc.collect()
    start = time.perf_counter_ns()
    for i in range(calls):
        fn(i % KEYS)
    return (time.perf_counter_ns() - start) / 1e9


def flow_seconds(flow_obj: Any, calls: int) -> float:
    gc.collect()
    start = time.perf_counter_ns()
    flow_obj(calls)
    return (time.perf_counter_ns() - start) / 1e9


def check_recorded(home: Path, calls: int, state: str) -> None:
    """The last run holds `calls` task runs in `state`, each with its result stored."""
    from orchlite.store import Store

    with Store(home) as store:
        run_id = store.resolve_run_id("last")
        run = store.get_flow_run(run_id)
        tasks = store.task_runs(run_id)
    bad = [t for t in tasks if t.state != state or t.result_serializer is None]
    if run.state != "COMPLETED" or len(tasks) != calls or bad:
        raise SystemExit(
            f"run {run_id} not recorded as expected: {run.state}, {len(tasks)} task runs,"
            f" {len(bad)} not {state} with a result"
        )


def one_round(tree: Path, calls: int, root: Path) -> dict[str, Any]:
    """Every figure of one round, in seconds per task, measured in this process."""
    sys.path.insert(0, str(tree))
    import orchlite
    from orchlite import flow, task
    from orchlite.cache_policies import INPUTS
    from orchlite.logging import setup_logging

    if not Path(orchlite.__file__).is_relative_to(tree):
        raise SystemExit(f"imported {orchlite.__file__}, not the orchlite of {tree}")
    noop_task = task(noop)
    lookup = task(cache_policy=INPUTS)(small)

    @flow
    def noops(n: int) -> None:
        for i in range(n):
            noop_task(i)

    @flow
    def lookups(n: int) -> None:
        for i in range(n):
            lookup(i % KEYS)

    def fresh_home(label: str) -> Path:
        home = root / label / ".orch"
        os.environ["ORCH_HOME"] = str(home)
        return home

    # The floor is measured before and after each figure, each figure's ratio taken to the
    # mean of the two floors around it: a machine whose speed drifts moves both alike.
    floor = Floor(fresh_home("floor"))
    floors = [floor.seconds(calls)]
    figures: dict[str, float] = {}
    for label, console in (("console off", False), ("console on", True)):
        setup_logging(console=console)
        home = fresh_home(label)
        noops(10)  # the store created, the code warm
        flow_s = flow_seconds(noops, calls)
        figures[label] = (flow_s - bare_seconds(noop, calls)) / calls
        check_recorded(home, calls, "COMPLETED")
        floors.append(floor.seconds(calls))
    setup_logging(console=False)
    home = fresh_home("cache hit")
    lookups(KEYS)  # primes the cache
    flow_s = flow_seconds(lookups, calls)
    figures["cache hit"] = (flow_s - bare_seconds(small, calls)) / calls
    check_recorded(home, calls, "CACHED")
    floors.append(floor.seconds(calls))
    ratios = {
        label: value / ((floors[k] + floors[k + 1]) / 2)
        for k, (label, value) in enumerate(figures.items())
    }
    figures["floor"] = median(floors)
    return {"orchlite": str(Path(orchlite.__file__).parent), "seconds": figures, "ratios": ratios}


def profile(tree: Path, calls: int, root: Path) -> str:
    import cProfile
    import io
    import pstats

    sys.path.insert(0, str(tree))
    from orchlite import flow, task
    from orchlite.logging import setup_logging

    noop_task = task(noop)

    @flow
    def noops(n: int) -> None:
        for i in range(n):
            noop_task(i)

    setup_logging(console=False)
    os.environ["ORCH_HOME"] = str(root / "profile" / ".orch")
    noops(10)
    profiler = cProfile.Profile()
    profiler.enable()
    noops(calls)
    profiler.disable()
    out = io.StringIO()
    pstats.Stats(profiler, stream=out).sort_stats("tottime").print_stats(15)
    return out.getvalue()


def parts(tree: Path, calls: int, root: Path, rounds: int) -> str:
    """Where a task's time goes: CPU time of this thread per task by part (the machine's
    load changes it far less than wall time), the least over `rounds` alternated rounds."""
    sys.path.insert(0, str(tree))
    from orchlite import flow, task
    from orchlite.cache_policies import INPUTS
    from orchlite.logging import setup_logging
    from orchlite.run_support import new_run_id
    from orchlite.store import Store, TaskRun

    noop_task, lookup = task(noop), task(cache_policy=INPUTS)(small)

    @flow
    def noops(n: int) -> None:
        for i in range(n):
            noop_task(i)

    @flow
    def lookups(n: int) -> None:
        for i in range(n):
            lookup(i % KEYS)

    os.environ["ORCH_HOME"] = str(root / "parts" / ".orch")
    setup_logging(console=False)
    noops(10)
    lookups(KEYS)
    floor = Floor(root / "floor" / ".orch")
    store, run_id, save = Store(root / "commit" / ".orch"), new_run_id(), Store.save_task_run
    made = [0]

    def cpu(fn: Any, n: int = calls) -> float:
        gc.collect()
        start = time.thread_time_ns()
        fn(n)
        return (time.thread_time_ns() - start) / 1e9 / n

    def commits(n: int) -> None:
        """`Store.save_task_run` of completed task runs, each with its three states."""
        for k in range(made[0], made[0] + n):
            now = time.time()
            run = TaskRun.new(
                flow_run_id=run_id, position=k, id=new_run_id(), task_key="noop",
                name=f"noop-{k}", created=now, dynamic_key=str(k), standalone=True,
            )  # fmt: skip
            run.state, run.attempts, run.started, run.ended = "COMPLETED", 1, now, now
            run.inputs_hash, run.result_serializer, run.result_data = "0" * 64, "cloudpickle", b"N."
            save(
                store,
                run,
                [("PENDING", None, now), ("RUNNING", None, now), ("COMPLETED", None, now)],
            )
        made[0] += n

    def engine_alone(n: int) -> None:
        Store.save_task_run = lambda *args, **kwargs: True  # type: ignore[method-assign]
        try:
            noops(n)
        finally:
            Store.save_task_run = save  # type: ignore[method-assign]

    def console_on(n: int) -> None:
        setup_logging(console=True)
        try:
            noops(n)
        finally:
            setup_logging(console=False)

    measured: dict[str, list[float]] = {}
    for _ in range(rounds):
        for label, fn in (
            ("floor", floor.seconds),
            ("commit", commits),
            ("engine", engine_alone),
            ("console off", noops),
            ("console on", console_on),
            ("cache hit", lookups),
            ("bare", lambda n: [noop(i) for i in range(n)]),
        ):
            measured.setdefault(label, []).append(cpu(fn))
    least = {label: min(values) for label, values in measured.items()}
    bare, unit = least.pop("bare"), least["floor"]
    shown = {
        "floor: INSERT + UPDATE, one commit": least["floor"],
        "the task's commit alone (Store.save_task_run: a row with 3 states)": least["commit"],
        "the engine without that commit (save_task_run a no-op)": least["engine"] - bare,
        "console off, the whole task": least["console off"] - bare,
        "the console line (console on - console off)": least["console on"] - least["console off"],
        "console on, the whole task": least["console on"] - bare,
        "a cache hit, the whole task": least["cache hit"] - bare,
    }
    lines = [f"CPU time per task, least of {rounds} rounds of {calls:,} calls:"]
    lines += [f"  {us(v):>9} {v / unit:5.2f}x  {label}" for label, v in shown.items()]
    return "\n".join(lines)


def child_main(args: Any) -> None:
    with tempfile.TemporaryDirectory(prefix="orch-bench-") as tmp:
        if args.profile:
            print(profile(Path(args.child), args.calls, Path(tmp)))
            return
        if args.parts:
            print(parts(Path(args.child), args.calls, Path(tmp), args.rounds))
            return
        result = one_round(Path(args.child), args.calls, Path(tmp))
    Path(args.out).write_text(json.dumps(result))


# -- in the parent: rounds, alternated -----------------------------------------------------


def run_round(tree: Path, calls: int, out: Path, *extra: str) -> subprocess.CompletedProcess[str]:
    """One round in a child process, its stdout and stderr pipes (read, and dropped)."""
    argv = [sys.executable, __file__, "--child", str(tree), "--calls", str(calls)]
    done = subprocess.run(
        [*argv, "--out", str(out), *extra],
        cwd=tempfile.gettempdir(),
        env={k: v for k, v in os.environ.items() if k != "ORCH_HOME"},
        capture_output=True,
        text=True,
        check=False,
    )
    if done.returncode != 0:
        raise SystemExit(f"round in {tree} failed ({done.returncode}):\n{done.stderr[-3000:]}")
    return done


class Worktree:
    """REV checked out, detached, in a temporary git worktree while open."""

    def __init__(self, rev: str) -> None:
        self.rev = rev
        self.path = Path(tempfile.mkdtemp(prefix="orch-bench-rev-")) / "tree"

    def __enter__(self) -> Path:
        git = ["git", "-C", str(REPO)]
        subprocess.run([*git, "worktree", "add", "--detach", str(self.path), self.rev], check=True)
        return self.path

    def __exit__(self, *exc: object) -> None:
        git = ["git", "-C", str(REPO)]
        subprocess.run([*git, "worktree", "remove", "--force", str(self.path)], check=False)
        self.path.parent.rmdir()


Figures = dict[str, list[float]]
"""Per figure, one value per round: seconds per task, and the ratios ("... ratio")."""


def measure(trees: dict[str, Path], calls: int, rounds: int) -> dict[str, Figures]:
    """Per tree, the figures of each round; the trees' rounds alternate."""
    found: dict[str, Figures] = {name: {} for name in trees}
    with tempfile.TemporaryDirectory(prefix="orch-bench-") as tmp:
        for k in range(rounds):
            for name, tree in trees.items():
                out = Path(tmp) / f"{name}-{k}.json"
                run_round(tree, calls, out)
                result = json.loads(out.read_text())
                seconds, ratios = result["seconds"], result["ratios"]
                for figure in FIGURES:
                    found[name].setdefault(figure, []).append(seconds[figure])
                for figure in TARGETS:
                    found[name].setdefault(f"{figure} ratio", []).append(ratios[figure])
                shown = ", ".join(f"{f} {us(seconds[f])} ({ratios[f]:.2f}×)" for f in TARGETS)
                print(f"  round {k + 1} {name}: floor {us(seconds['floor'])}; {shown}", flush=True)
    return found


def report(found: dict[str, Figures], calls: int, rounds: int) -> list[Row]:
    here = found["working tree"]
    other = {name: figs for name, figs in found.items() if name != "working tree"}
    floor = median(here["floor"])
    rows = [
        Row(
            benchmark="floor: INSERT + UPDATE of a task-run-like row, one WAL commit",
            figure=f"{us(floor)}/task (median of {rounds})",
            baseline="; ".join(f"{n}: {us(median(f['floor']))}" for n, f in other.items()) or "—",
            target="—",
            verdict="info",
        )
    ]
    for figure, limit in TARGETS.items():
        ratio = median(here[f"{figure} ratio"])
        compared = "; ".join(
            f"{n}: {us(median(f[figure]))} ({median(f[f'{figure} ratio']):.2f}×)"
            for n, f in other.items()
        )
        rows.append(
            Row(
                benchmark=f"task overhead, {calls:,} sequential no-op tasks, {figure}"
                if figure != "cache hit"
                else f"cache hit (INPUTS, small dict), {calls:,} hits per run",
                figure=f"{us(median(here[figure]))}/task, {ratio:.2f}× the floor"
                f" (median of {rounds})",
                baseline=f"floor {us(floor)}" + (f"; {compared}" if compared else ""),
                target=f"≤ {limit}× the floor",
                verdict=verdict(ratio, limit),
            )
        )
    return rows


def main() -> None:
    p = parser(__doc__.splitlines()[0])
    p.add_argument("--calls", type=int, default=CALLS)
    p.add_argument("--rounds", type=int, default=ROUNDS)
    p.add_argument("--against", metavar="REV", help="alternate rounds with REV (a git commit)")
    p.add_argument("--profile", action="store_true", help="print the top 15 by tottime")
    p.add_argument("--parts", action="store_true", help="print CPU time per task by part")
    p.add_argument("--child", metavar="TREE", help=argparse.SUPPRESS)
    p.add_argument("--out", help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.child:
        child_main(args)
        return
    if args.parts:
        with tempfile.TemporaryDirectory() as tmp, contextlib.ExitStack() as stack:
            trees = {"working tree": REPO}
            if args.against:
                trees[args.against] = stack.enter_context(Worktree(args.against))
            for name, tree in trees.items():
                done = run_round(
                    tree, args.calls, Path(tmp) / "unused", "--parts", "--rounds", str(args.rounds)
                )
                print(f"{name}: {done.stdout}")
        return
    trees = {"working tree": REPO}
    print(f"orchlite: {REPO / 'orchlite'}")
    print(f"{args.calls:,} sequential task calls per figure, {args.rounds} rounds", flush=True)
    if args.against:
        with Worktree(args.against) as path:
            trees[args.against] = path
            found = measure(trees, args.calls, args.rounds)
    else:
        found = measure(trees, args.calls, args.rounds)
    if args.profile:
        with tempfile.TemporaryDirectory() as tmp:
            done = run_round(REPO, args.calls, Path(tmp) / "unused", "--profile")
        print(f"\ncProfile of one {args.calls:,}-task flow run, console off (top 15, tottime):")
        print(done.stdout)
    emit(report(found, args.calls, args.rounds), args.json)


if __name__ == "__main__":
    main()
