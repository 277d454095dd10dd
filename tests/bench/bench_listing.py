"""`orch runs` and `orch show last` on a store holding 100,000 flow runs and 1,000,000 task runs.

    python tests/bench/bench_listing.py [--rounds N] [--rebuild]

The store is built once through the public Store API (10 task runs per flow run, states
mixed: completed, cached, retried, failed, crashed, cancelled, timed out; with state
history and a few log lines) and kept under the user cache folder
(`platformdirs.user_cache_dir("orchlite-bench")`), keyed by the store's schema version, so
later runs only copy it into a temporary project. Each command is timed as the median of 7
runs of the console script, interleaved with `python -c pass`. Target: ≤ 0.2 s each.
"""

from __future__ import annotations

import contextlib
import random
import shutil
import sqlite3
import sys
import tempfile
import time
from pathlib import Path

import platformdirs
from _common import (
    Command,
    Row,
    clean_env,
    emit,
    median,
    orch_script,
    parser,
    secs,
    time_commands,
    under_test,
    verdict,
)

from orchlite.states import StateName
from orchlite.store import DB_NAME, SCHEMA_VERSION, Store, StoredResult, TaskRun

FLOW_RUNS = 100_000
TASKS_PER_RUN = 10
FLOWS_PER_TRANSACTION = 10_000
BUILD_VERSION = 1  # bump when the generated content changes
ROUNDS = 7
TARGET = 0.2

FLOW_NAMES = ("etl", "nightly-report", "sync-users", "backfill", "train-model")
TASK_NAMES = ("extract", "validate", "transform", "enrich", "dedupe", "load", "index", "notify")
RESULT = StoredResult("cloudpickle", data=b"\x80\x05\x95\x06\x00\x00\x00\x00\x00\x00\x00K*.")
TRACEBACK = (
    "Traceback (most recent call last):\n"
    '  File "pipeline.py", line 42, in load\n'
    "    conn.execute(sql)\n"
    "ConnectionError: upstream closed the connection"
)
# Outcome of a flow run -> relative weight; the remaining tasks are COMPLETED or CACHED.
OUTCOMES = {
    StateName.COMPLETED: 86,
    StateName.FAILED: 7,
    StateName.CRASHED: 3,
    StateName.CANCELLED: 2,
    StateName.TIMED_OUT: 2,
}


def cache_file(flow_runs: int) -> Path:
    folder = Path(platformdirs.user_cache_dir("orchlite-bench"))
    name = f"listing-schema{SCHEMA_VERSION}-gen{BUILD_VERSION}-{flow_runs}x{TASKS_PER_RUN}.db"
    return folder / name


def cached_db_ok(path: Path, flow_runs: int) -> bool:
    if not path.exists():
        return False
    try:
        conn = sqlite3.connect(f"file:{path}?mode=ro&immutable=1", uri=True)
        try:
            version = conn.execute("PRAGMA user_version").fetchone()[0]
            count = conn.execute("SELECT COUNT(*) FROM flow_runs").fetchone()[0]
        finally:
            conn.close()
    except sqlite3.DatabaseError:
        return False
    return version == SCHEMA_VERSION and count == flow_runs


def _hex(rng: random.Random) -> str:
    return f"{rng.getrandbits(128):032x}"


def add_flow_run(store: Store, rng: random.Random, index: int, created: float) -> None:
    """One flow run with its task runs, written as a real run would write them."""
    run_id = _hex(rng)
    flow_name = FLOW_NAMES[index % len(FLOW_NAMES)]
    day = time.strftime("%Y-%m-%d", time.gmtime(created))
    outcome = rng.choices(list(OUTCOMES), weights=list(OUTCOMES.values()))[0]
    trigger = "schedule" if index % 3 else "manual"
    store.create_flow_run(
        run_id=run_id,
        flow_name=flow_name,
        name=f"{flow_name}-{index}",
        parameters=f'{{"day":"{day}"}}',
        target=f"pipelines/{flow_name.replace('-', '_')}.py:{flow_name.replace('-', '_')}",
        trigger=trigger,
        now=created,
    )
    t = created + 0.05
    store.set_flow_run_state(run_id, StateName.RUNNING, pid=4242, host="bench", attempts=1, now=t)
    for position in range(TASKS_PER_RUN):
        name = TASK_NAMES[position % len(TASK_NAMES)]
        last = position == TASKS_PER_RUN - 1
        state = outcome if last and outcome is not StateName.COMPLETED else StateName.COMPLETED
        if state is StateName.COMPLETED and rng.random() < 0.2:
            state = StateName.CACHED
        start, t = t, t + rng.uniform(0.001, 2.0)
        run = TaskRun(
            flow_run_id=run_id,
            position=position,
            id=_hex(rng),
            standalone=0,
            task_key=f"{name}@pipelines/{flow_name}.py",
            name=f"{name}-{position // len(TASK_NAMES)}",
            dynamic_key=str(position // len(TASK_NAMES)),
            state=state.value,
            state_message=None,
            attempts=1,
            inputs_hash=f"v1:sha256:{_hex(rng)}{_hex(rng)}",
            cache_key=None,
            result_ref=None,
            result_serializer=None,
            error_type=None,
            error_message=None,
            traceback=None,
            created=start,
            started=start,
            ended=t,
        )
        states: list[tuple[str, str | None, float]] = [("PENDING", None, start)]
        if state is StateName.CACHED:
            run.state_message = "cache hit"
            states.append((state.value, "cache hit", t))
        else:
            states.append(("RUNNING", None, start))
        if state is StateName.COMPLETED:
            states.append((state.value, None, t))
        elif state is StateName.FAILED:
            run.attempts = 3
            run.error_type, run.error_message = "ConnectionError", "upstream closed"
            run.traceback, run.state_message = TRACEBACK, "ConnectionError: upstream closed"
            for attempt in (1, 2):
                states.append(("RETRYING", f"attempt {attempt} failed; retrying", t))
                states.append(("RUNNING", f"attempt {attempt + 1}", t))
            states.append((state.value, run.state_message, t))
        elif state is not StateName.CACHED:
            run.state_message = f"flow run {state.value.lower().replace('_', ' ')}"
            states.append((state.value, run.state_message, t))
        if state in (StateName.COMPLETED, StateName.CACHED):
            run.result_serializer, run.result_data = RESULT.serializer, RESULT.data
        store.save_task_run(run, states)
    message = None if outcome is StateName.COMPLETED else f"{outcome.value.lower()} in {name}"
    logs = [
        (run_id, None, None, created, 20, "orchlite.flow_runs", f"processing {day}"),
        (run_id, None, None, t, 20, "orchlite.flow_runs", f"done: {outcome.value}"),
    ]
    store.set_flow_run_state(
        run_id,
        outcome,
        message,
        result=RESULT if outcome is StateName.COMPLETED else None,
        logs=logs,
        now=t + 0.01,
    )


def build(path: Path, flow_runs: int) -> float:
    """Build the store at `path` through the Store API; returns the seconds it took."""
    path.parent.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix="build-", dir=path.parent))
    rng = random.Random(20261120)
    span = 120 * 86400.0
    first = time.time() - span
    step = span / flow_runs
    print(f"building {flow_runs:,} flow runs x {TASKS_PER_RUN} task runs -> {path}")
    start = time.perf_counter()
    try:
        store = Store(work / ".orch")
        for begin in range(0, flow_runs, FLOWS_PER_TRANSACTION):
            with store.transaction():
                for index in range(begin, min(begin + FLOWS_PER_TRANSACTION, flow_runs)):
                    add_flow_run(store, rng, index, first + index * step)
            done = min(begin + FLOWS_PER_TRANSACTION, flow_runs)
            elapsed = time.perf_counter() - start
            print(
                f"  {done:>7,} flow runs, {done * TASKS_PER_RUN:>9,} task runs,"
                f" {elapsed:6.1f} s ({done * TASKS_PER_RUN / elapsed:,.0f} task runs/s)",
                flush=True,
            )
        store.close()
        db = work / ".orch" / DB_NAME
        conn = sqlite3.connect(db)
        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        conn.close()
        took = time.perf_counter() - start
        db.replace(path)
        for stale in path.parent.glob(f"listing-*-{flow_runs}x{TASKS_PER_RUN}.db"):
            if stale != path:  # built for an older schema or generator
                stale.unlink(missing_ok=True)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return took


def main() -> None:
    p = parser(__doc__.splitlines()[0])
    p.add_argument("--rounds", type=int, default=ROUNDS)
    p.add_argument(
        "--flow-runs",
        type=int,
        default=FLOW_RUNS,
        help="flow runs in the store (a store of another size is cached separately)",
    )
    p.add_argument("--rebuild", action="store_true", help="rebuild the cached store")
    args = p.parse_args()
    cached = cache_file(args.flow_runs)
    if args.rebuild:
        cached.unlink(missing_ok=True)
    build_s = None
    if not cached_db_ok(cached, args.flow_runs):
        build_s = build(cached, args.flow_runs)
        tasks = args.flow_runs * TASKS_PER_RUN
        print(f"built in {build_s:.1f} s: {tasks / build_s:,.0f} task runs/s through the API")
    else:
        print(f"using the cached store {cached}")
    orch = orch_script()
    print(f"orch: {orch}\norchlite: {under_test()}")
    with tempfile.TemporaryDirectory(prefix="orch-bench-") as tmp:
        project = Path(tmp) / "project"
        home = project / ".orch"
        home.mkdir(parents=True, mode=0o700)
        shutil.copyfile(cached, home / DB_NAME)
        env = clean_env(ORCH_HOME=str(home))
        commands = {
            "python -c pass": Command([sys.executable, "-c", "pass"], env=env),
            "orch runs": Command([orch, "runs"], cwd=project, env=env, check_stdout=True),
            "orch show last": Command(
                [orch, "show", "last"], cwd=project, env=env, check_stdout=True
            ),
        }
        times = time_commands(commands, rounds=args.rounds, warmup=1)
        with contextlib.closing(Store(home, create=False)) as store:
            shown = store.get_flow_run(store.resolve_run_id("last"))
            n_tasks = len(store.task_runs(shown.id))
        if n_tasks != TASKS_PER_RUN:
            raise SystemExit(f"the last run has {n_tasks} task runs, not {TASKS_PER_RUN}")
    med = {name: median(values) for name, values in times.items()}
    for name, values in times.items():
        print(f"  {name:<16} median {secs(med[name])}  ({', '.join(secs(v) for v in values)})")
    scale = f"{args.flow_runs:,} flow runs / {args.flow_runs * TASKS_PER_RUN:,} task runs"
    baseline = f"`python -c pass` {secs(med['python -c pass'])}"
    rows = [
        Row(
            benchmark=f"`{name}` with {scale}",
            figure=f"{secs(med[name])} (median of {args.rounds})",
            baseline=baseline,
            target=f"≤ {TARGET} s",
            verdict=verdict(med[name], TARGET),
        )
        for name in ("orch runs", "orch show last")
    ]
    if build_s is not None:
        tasks = args.flow_runs * TASKS_PER_RUN
        rows.append(
            Row(
                benchmark="building the listing store through the Store API (once, cached)",
                figure=f"{build_s:.1f} s, {tasks / build_s:,.0f} task runs/s",
                baseline="—",
                target="—",
                verdict="info",
            )
        )
    emit(rows, args.json)


if __name__ == "__main__":
    main()
