"""Task runner overhead: mapped no-op tasks through the thread pool and through Dask.

    python tests/bench/bench_runners.py [--tasks N] [--dask-tasks M] [--reps R] [--no-dask]

1. `noop.map(range(N))` (N = 10,000) in a flow with the default `ThreadPoolTaskRunner()`,
   every state and result recorded in a fresh store, against the same calls through a bare
   `concurrent.futures.ThreadPoolExecutor().map`. Overhead per task = (flow time - bare
   time) / N; target ≤ 150 µs. For scale, the same N tasks called one after another in a flow
   (no runner at all: the engine's own cost per task) are reported beside it.
2. `noop.map(range(M))` (M = 1,000) in a flow with `DaskTaskRunner` on a running
   `LocalCluster` (in-process, 4 threads), against `client.map` + `client.gather` of the same
   no-op on the same cluster, a new client for each as the runner makes one per flow run.
   Ratio = flow time / plain time; target ≤ 1.5×. Also reported: plain `client.submit` +
   `result()` of each no-op from 32 threads, which is how task runs reach Dask one by one.

Medians of R repetitions (default 3). Not part of the test run.
"""

from __future__ import annotations

import concurrent.futures as cf
import gc
import os
import tempfile
import time
from pathlib import Path

from _common import Row, emit, median, parser, secs, us, verdict

import orchlite
from orchlite import flow, task
from orchlite.context import open_store
from orchlite.logging import setup_logging
from orchlite.task_runners import DaskTaskRunner, ThreadPoolTaskRunner

TASKS = 10_000
DASK_TASKS = 1_000
REPS = 3
THREAD_TARGET_US = 150.0
DASK_TARGET_RATIO = 1.5


def noop(i):
    return None


noop_task = task(noop)


@flow(task_runner=ThreadPoolTaskRunner())
def threads_flow(n: int) -> None:
    noop_task.map(range(n)).wait()


@flow
def sequential_flow(n: int) -> None:
    for i in range(n):
        noop_task(i)


def fresh_home(root: Path, label: str) -> Path:
    home = root / label / ".orch"
    os.environ["ORCH_HOME"] = str(home)
    open_store(home)
    return home


def check_recorded(home: Path, count: int) -> None:
    store = open_store(home)[0]
    run_id = store.resolve_run_id("last")
    run = store.get_flow_run(run_id)
    tasks = store.task_runs(run_id)
    done = [t for t in tasks if t.state == "COMPLETED"]
    if run.state != "COMPLETED" or len(done) != count:
        raise SystemExit(f"run {run_id}: {run.state}, {len(done)} of {count} tasks completed")


def timed(fn, *args) -> float:
    gc.collect()
    start = time.perf_counter()
    fn(*args)
    return time.perf_counter() - start


def bare_threads(n: int) -> None:
    with cf.ThreadPoolExecutor() as pool:
        list(pool.map(noop, range(n)))


def bench_threads(n: int, reps: int, root: Path) -> list[Row]:
    fresh_home(root, "warmup")
    threads_flow(200)
    sequential_flow(200)
    overheads, bares, sequential = [], [], []
    for k in range(reps):
        home = fresh_home(root, f"threads-{k}")
        flow_s = timed(threads_flow, n)
        bare_s = timed(bare_threads, n)
        check_recorded(home, n)
        home = fresh_home(root, f"sequential-{k}")
        sequential_s = timed(sequential_flow, n)
        check_recorded(home, n)
        overheads.append((flow_s - bare_s) / n)
        bares.append(bare_s)
        sequential.append(sequential_s / n)
        print(
            f"  threads rep {k + 1}: flow {secs(flow_s)}, bare map {secs(bare_s)},"
            f" sequential flow {secs(sequential_s)}"
        )
    overhead = median(overheads)
    return [
        Row(
            benchmark=f"thread runner, {n:,} mapped no-op tasks (default ThreadPoolTaskRunner)",
            figure=f"{us(overhead)}/task overhead (median of {reps})",
            baseline=f"ThreadPoolExecutor.map {secs(median(bares))} for all {n:,}",
            target=f"≤ {THREAD_TARGET_US:.0f} µs",
            verdict=verdict(overhead * 1e6, THREAD_TARGET_US),
        ),
        Row(
            benchmark=f"same {n:,} no-op tasks called one by one (engine only, no runner)",
            figure=f"{us(median(sequential))}/task (median of {reps})",
            baseline="—",
            target="—",
            verdict="info",
        ),
    ]


def bench_dask(n: int, reps: int, root: Path) -> Row:
    import distributed

    cluster = distributed.LocalCluster(
        processes=False, n_workers=1, threads_per_worker=4, dashboard_address=None
    )
    runner = DaskTaskRunner(cluster=cluster, client_kwargs={"set_as_default": False})

    @flow(task_runner=runner)
    def dask_flow(count: int) -> None:
        noop_task.map(range(count)).wait()

    def plain(count: int) -> None:
        with distributed.Client(cluster, set_as_default=False) as client:
            futures = client.map(noop, range(count), pure=False)
            client.gather(futures)

    def one_by_one(count: int) -> None:
        with distributed.Client(cluster, set_as_default=False) as client:

            def call(i: int) -> None:
                client.submit(noop, i, pure=False).result()

            with cf.ThreadPoolExecutor(max_workers=32) as pool:
                list(pool.map(call, range(count)))

    try:
        fresh_home(root, "dask-warmup")
        dask_flow(100)
        plain(100)
        ratios, flows, plains, singles = [], [], [], []
        for k in range(reps):
            home = fresh_home(root, f"dask-{k}")
            flow_s = timed(dask_flow, n)
            plain_s = timed(plain, n)
            single_s = timed(one_by_one, n)
            check_recorded(home, n)
            ratios.append(flow_s / plain_s)
            flows.append(flow_s)
            plains.append(plain_s)
            singles.append(single_s)
            print(
                f"  dask rep {k + 1}: flow {secs(flow_s)}, client.map {secs(plain_s)},"
                f" one by one {secs(single_s)}"
            )
    finally:
        cluster.close()
    ratio = median(ratios)
    return [
        Row(
            benchmark=f"Dask runner, {n:,} mapped no-op tasks (in-process LocalCluster, 4 threads)",
            figure=f"{secs(median(flows))} = {ratio:.2f}× (median of {reps})",
            baseline=f"client.map + gather {secs(median(plains))}",
            target=f"≤ {DASK_TARGET_RATIO}×",
            verdict=verdict(ratio, DASK_TARGET_RATIO),
        ),
        Row(
            benchmark=f"plain client.submit + result() of {n:,} no-ops from 32 threads",
            figure=f"{secs(median(singles))} = {median(singles) / median(plains):.2f}×",
            baseline=f"client.map + gather {secs(median(plains))}",
            target="—",
            verdict="info",
        ),
    ]


def main() -> None:
    p = parser(__doc__.splitlines()[0])
    p.add_argument("--tasks", type=int, default=TASKS)
    p.add_argument("--dask-tasks", type=int, default=DASK_TASKS)
    p.add_argument("--reps", type=int, default=REPS)
    p.add_argument("--no-dask", action="store_true", help="skip the Dask benchmark")
    args = p.parse_args()
    setup_logging(console=False)
    print(f"orchlite: {Path(orchlite.__file__).parent}")
    rows = []
    with tempfile.TemporaryDirectory(prefix="orch-bench-") as tmp:
        root = Path(tmp)
        rows.extend(bench_threads(args.tasks, args.reps, root))
        if not args.no_dask:
            rows.extend(bench_dask(args.dask_tasks, args.reps, root))
    emit(rows, args.json)


if __name__ == "__main__":
    main()
