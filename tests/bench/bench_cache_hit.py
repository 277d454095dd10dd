"""Cost of a task call answered from the persistent cache.

    python tests/bench/bench_cache_hit.py [--hits N] [--keys K] [--reps R]

`lookup(k)` is a `@task(cache_policy=INPUTS)` returning a small dict. One flow run primes
the cache for K = 100 distinct inputs; then each repetition is a new flow run (a new run
id, so only the store's cache table can answer) that calls `lookup(i % K)` 5,000 times.
Every call must be recorded as CACHED with the value it was primed with. The cost per hit
is (flow time - the same 5,000 calls of the bare function) / 5,000; the median of 3
repetitions is compared with the target of 200 µs.
"""

from __future__ import annotations

import gc
import os
import tempfile
import time
from pathlib import Path

from _common import Row, emit, median, parser, us, verdict

import orchlite
from orchlite import flow, task
from orchlite.cache_policies import INPUTS
from orchlite.context import open_store
from orchlite.logging import setup_logging

HITS = 5_000
KEYS = 100
REPS = 3
TARGET_US = 200.0


def small(k: int) -> dict:
    return {"id": k, "ok": True, "tags": ["a", "b"], "score": k / 7}


lookup = task(cache_policy=INPUTS)(small)


@flow
def prime(keys: int) -> None:
    for k in range(keys):
        lookup(k)


@flow
def hits(n: int, keys: int) -> None:
    for i in range(n):
        lookup(i % keys)


@flow
def hits_checked(keys: int) -> bool:
    """Every key once, comparing the cached values with fresh ones."""
    return all(lookup(k) == small(k) for k in range(keys))


def bare(n: int, keys: int) -> None:
    for i in range(n):
        small(i % keys)


def check_states(store, expected_state: str, calls: int) -> str:
    run_id = store.resolve_run_id("last")
    tasks = store.task_runs(run_id)
    wrong = [t for t in tasks if t.state != expected_state]
    if len(tasks) != calls or wrong:
        raise SystemExit(
            f"run {run_id}: expected {calls} {expected_state} task runs, got {len(tasks)}"
            f" ({len(wrong)} in other states, e.g. {wrong[0].state if wrong else '-'})"
        )
    return run_id


def main() -> None:
    p = parser(__doc__.splitlines()[0])
    p.add_argument("--hits", type=int, default=HITS)
    p.add_argument("--keys", type=int, default=KEYS)
    p.add_argument("--reps", type=int, default=REPS)
    args = p.parse_args()
    setup_logging(console=False)
    print(f"orchlite: {Path(orchlite.__file__).parent}")
    with tempfile.TemporaryDirectory(prefix="orch-bench-") as tmp:
        home = Path(tmp) / ".orch"
        os.environ["ORCH_HOME"] = str(home)
        store = open_store(home)[0]

        prime(args.keys)
        primed = check_states(store, "COMPLETED", args.keys)
        if len(store.list_cache_entries()) != args.keys:
            raise SystemExit("priming did not create one cache entry per key")
        if not hits_checked(args.keys):
            raise SystemExit("a cache hit returned a different value than the primed one")
        check_states(store, "CACHED", args.keys)

        print(f"{args.hits:,} cache hits per flow run over {args.keys} keys, {args.reps} reps")
        per_hit, per_bare, run_ids = [], [], {primed}
        for k in range(args.reps):
            gc.collect()
            start = time.perf_counter()
            hits(args.hits, args.keys)
            flow_s = time.perf_counter() - start
            gc.collect()
            start = time.perf_counter()
            bare(args.hits, args.keys)
            bare_s = time.perf_counter() - start
            run_ids.add(check_states(store, "CACHED", args.hits))
            per_hit.append((flow_s - bare_s) / args.hits)
            per_bare.append(bare_s / args.hits)
            print(
                f"  rep {k + 1}: flow {flow_s:.3f} s, bare {bare_s * 1e3:.2f} ms,"
                f" {us(per_hit[-1])}/hit"
            )
        if len(run_ids) != args.reps + 1:
            raise SystemExit("the repetitions did not run as separate flow runs")
    hit = median(per_hit)
    rows = [
        Row(
            benchmark=f"cache hit (INPUTS, small dict), {args.hits:,} hits per run",
            figure=f"{us(hit)}/hit (median of {args.reps})",
            baseline=f"bare call {us(median(per_bare), 3)}",
            target=f"≤ {TARGET_US:.0f} µs",
            verdict=verdict(hit * 1e6, TARGET_US),
        )
    ]
    emit(rows, args.json)


if __name__ == "__main__":
    main()
