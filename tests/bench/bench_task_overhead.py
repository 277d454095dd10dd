"""Per-task overhead of a sequential no-op task called inside a flow.

    python tests/bench/bench_task_overhead.py [--calls N] [--reps R] [--profile]

Each repetition runs, in a fresh `.orch/`, a flow that calls `noop(i)` (`@task`, returns
None) 10,000 times, every state and result recorded durably in the store. The overhead is
(flow time - the same 10,000 calls of the bare function) / 10,000; the median of 3
repetitions is compared with the target of 100 µs. The same workload with
`cache_policy=NO_CACHE` (no cache key is computed) is reported for information.

`--profile` also prints the 10 functions with the most own time (cProfile, tottime) for
one extra run with the default policy.
"""

from __future__ import annotations

import cProfile
import gc
import io
import os
import pstats
import tempfile
import time
from pathlib import Path

from _common import Row, emit, median, parser, us, verdict

import orchlite
from orchlite import flow, task
from orchlite.cache_policies import NO_CACHE
from orchlite.context import open_store
from orchlite.logging import setup_logging

CALLS = 10_000
REPS = 3
TARGET_US = 100.0


def noop(i):
    return None


noop_task = task(noop)
noop_task_no_cache = task(cache_policy=NO_CACHE)(noop)


@flow
def noops(n: int) -> None:
    for i in range(n):
        noop_task(i)


@flow
def noops_no_cache(n: int) -> None:
    for i in range(n):
        noop_task_no_cache(i)


def bare(n: int) -> None:
    for i in range(n):
        noop(i)


def fresh_home(root: Path, label: str) -> Path:
    """Point ORCH_HOME at a new, empty store (created now, outside the timed part)."""
    home = root / label / ".orch"
    os.environ["ORCH_HOME"] = str(home)
    open_store(home)
    return home


def check_recorded(home: Path, calls: int) -> None:
    """The last run holds `calls` COMPLETED task runs, each with its result stored."""
    store = open_store(home)[0]
    run_id = store.resolve_run_id("last")
    run = store.get_flow_run(run_id)
    tasks = store.task_runs(run_id)
    bad = [t for t in tasks if t.state != "COMPLETED" or t.result_serializer is None]
    if run.state != "COMPLETED" or len(tasks) != calls or bad:
        raise SystemExit(
            f"run {run_id} not recorded as expected: {run.state}, {len(tasks)} task runs,"
            f" {len(bad)} without a completed state and result"
        )


def one_rep(flow_obj, calls: int, root: Path, label: str) -> tuple[float, float]:
    """(flow seconds, bare-call seconds) for `calls` task calls in a fresh store."""
    home = fresh_home(root, label)
    gc.collect()
    start = time.perf_counter()
    flow_obj(calls)
    flow_s = time.perf_counter() - start
    gc.collect()
    start = time.perf_counter()
    bare(calls)
    bare_s = time.perf_counter() - start
    check_recorded(home, calls)
    return flow_s, bare_s


def measure(flow_obj, calls: int, reps: int, root: Path, name: str) -> tuple[float, float]:
    """Median per-task overhead and median per-call bare time over `reps` repetitions."""
    overheads, bares = [], []
    for k in range(reps):
        flow_s, bare_s = one_rep(flow_obj, calls, root, f"{name}-{k}")
        overheads.append((flow_s - bare_s) / calls)
        bares.append(bare_s / calls)
        print(
            f"  {name} rep {k + 1}: flow {flow_s:.3f} s, bare {bare_s * 1e3:.2f} ms,"
            f" overhead {us(overheads[-1])}/task"
        )
    return median(overheads), median(bares)


def profile(calls: int, root: Path) -> str:
    fresh_home(root, "profile")
    profiler = cProfile.Profile()
    profiler.enable()
    noops(calls)
    profiler.disable()
    out = io.StringIO()
    pstats.Stats(profiler, stream=out).sort_stats("tottime").print_stats(10)
    return out.getvalue()


def main() -> None:
    p = parser(__doc__.splitlines()[0])
    p.add_argument("--calls", type=int, default=CALLS)
    p.add_argument("--reps", type=int, default=REPS)
    p.add_argument("--profile", action="store_true", help="print the top 10 by tottime")
    args = p.parse_args()
    setup_logging(console=False)
    print(f"orchlite: {Path(orchlite.__file__).parent}")
    rows = []
    with tempfile.TemporaryDirectory(prefix="orch-bench-") as tmp:
        root = Path(tmp)
        fresh_home(root, "warmup")
        noops(100)
        noops_no_cache(100)
        print(f"{args.calls:,} sequential no-op task calls per flow run, {args.reps} reps")
        overhead, bare_call = measure(noops, args.calls, args.reps, root, "default")
        rows.append(
            Row(
                benchmark=f"task overhead, {args.calls:,} sequential no-op tasks",
                figure=f"{us(overhead)}/task (median of {args.reps})",
                baseline=f"bare call {us(bare_call, 3)}",
                target=f"≤ {TARGET_US:.0f} µs",
                verdict=verdict(overhead * 1e6, TARGET_US),
            )
        )
        overhead, bare_call = measure(noops_no_cache, args.calls, args.reps, root, "no-cache")
        rows.append(
            Row(
                benchmark="task overhead, same with cache_policy=NO_CACHE",
                figure=f"{us(overhead)}/task (median of {args.reps})",
                baseline=f"bare call {us(bare_call, 3)}",
                target="—",
                verdict="info",
            )
        )
        if args.profile:
            print(f"\ncProfile of one {args.calls:,}-task flow run (top 10 by tottime):")
            print(profile(args.calls, root))
    emit(rows, args.json)


if __name__ == "__main__":
    main()
