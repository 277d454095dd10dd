"""What redacting secret values costs a task that logs a line and returns a small result.

    python tests/bench/bench_redaction.py [--calls N] [--reps R]

The same flow, `calls` sequential task calls each logging one line with `get_run_logger()`
and returning a short string (stored inline), runs first with no secret known to the
process (the baseline), then declaring three secrets set in the environment, so every log
line is redacted and every result is scanned for their values. Each run is a child process
with a fresh store, the two flows alternating; the figure is the difference of the median
times per task over `reps` runs of each. The target is at most 5 µs extra per task.
"""

from __future__ import annotations

import argparse
import gc
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from _common import Row, clean_env, emit, median, parser, under_test, us, verdict

from orchlite import flow, get_run_logger, task
from orchlite.context import open_store
from orchlite.logging import setup_logging

CALLS = 5_000
REPS = 5
TARGET_US = 5.0
SECRETS = {
    "BENCH_API_TOKEN": "tok-3c1d9e8f7a6b5c4d3e2f1a0b",
    "BENCH_DB_PASSWORD": "correct-horse-battery-staple",
    "BENCH_WEBHOOK": "https://hooks.example.com/services/T000/B000/XXXXXXXX",
}


@task
def step(i: int) -> str:
    get_run_logger().info("row %d of the nightly load", i)
    return f"row-{i}"


def steps(n: int) -> None:
    for i in range(n):
        step(i)


plain = flow(name="plain")(steps)
declaring = flow(name="declaring", secrets=list(SECRETS))(steps)


def one_run(name: str, calls: int) -> float:
    """Seconds per task of one run of flow `name` in a fresh store (in a child process)."""
    flow_obj = {"plain": plain, "declaring": declaring}[name]
    with tempfile.TemporaryDirectory(prefix="orch-bench-") as tmp:
        os.environ["ORCH_HOME"] = str(Path(tmp) / ".orch")
        open_store()
        flow_obj(100)  # warm up: imports, the store's first writes
        gc.collect()
        start = time.perf_counter()
        flow_obj(calls)
        return (time.perf_counter() - start) / calls


def in_child(name: str, calls: int) -> float:
    """Each run in its own process: once the declaring flow ran, every text in the process
    would be redacted, so the two flows cannot share one."""
    done = subprocess.run(
        [sys.executable, __file__, "--child", name, "--calls", str(calls)],
        env=clean_env(**SECRETS),
        capture_output=True,
        text=True,
        check=True,
    )
    return float(done.stdout.strip())


def main() -> None:
    p = parser(__doc__.splitlines()[0])
    p.add_argument("--calls", type=int, default=CALLS)
    p.add_argument("--reps", type=int, default=REPS)
    p.add_argument("--child", choices=["plain", "declaring"], help=argparse.SUPPRESS)
    args = p.parse_args()
    setup_logging(console=False)
    if args.child:
        print(one_run(args.child, args.calls))
        return
    print(f"orchlite: {under_test()}")
    runs: dict[str, list[float]] = {"plain": [], "declaring": []}
    for k in range(args.reps):  # interleaved, so load on the machine hits both alike
        for name, times in runs.items():
            times.append(in_child(name, args.calls))
            print(f"  {name} rep {k + 1}: {us(times[-1])}/task")
    baseline, redacting = median(runs["plain"]), median(runs["declaring"])
    extra = redacting - baseline
    idle, busy = added_work()
    rows = [
        Row(
            benchmark=f"redaction, {args.calls:,} tasks each logging a line and returning a str",
            figure=f"{us(extra)}/task extra with 3 secrets ({us(redacting)}/task)",
            baseline=f"no secrets: {us(baseline)}/task",
            target=f"≤ {TARGET_US:.0f} µs extra",
            verdict=verdict(extra * 1e6, TARGET_US),
        ),
        Row(
            benchmark="redaction work per task: redact one log line, scan one result (CPU time)",
            figure=f"{us(busy, 2)} with 3 secrets",
            baseline=f"no secrets: {us(idle, 2)}",
            target=f"≤ {TARGET_US:.0f} µs",
            verdict=verdict(busy * 1e6, TARGET_US),
        ),
    ]
    emit(rows, args.json)


def added_work(n: int = 100_000) -> tuple[float, float]:
    """CPU seconds of what redaction adds to such a task (one log line redacted, one result
    scanned), with no secret registered and then with the three; in this process, which
    runs no flow. CPU time, unlike wall time, is not inflated by other processes."""
    from orchlite import redaction, serialize

    line = "Task run 'step-123' - row 123 of the nightly load"
    data = serialize.dumps("row-123", "cloudpickle")

    def per_call() -> float:
        start = time.process_time()
        for _ in range(n):
            redaction.redact(line)
            redaction.check_result(data)
        return (time.process_time() - start) / n

    idle = per_call()
    for name, value in SECRETS.items():
        redaction.register(name, value)
    return idle, per_call()


if __name__ == "__main__":
    main()
