"""The same 1,000-task sequential workload under orchlite and under Prefect.

    PREFECT_PYTHON=/path/to/venv/bin/python python tests/bench/compare_prefect.py

PREFECT_PYTHON names a Python interpreter that has Prefect 3 installed (a separate venv is
fine; this script installs nothing). Without it the comparison is skipped. Each library
runs in its own child process and a fresh home folder (`ORCH_HOME`, `PREFECT_HOME`): one
warm-up flow run (for Prefect this also starts its temporary local API server), then 3
flow runs of 1,000 calls of a no-op task; the per-task figure is (flow time - the same
calls of the bare function) / 1,000, median of 3. Console logging is off for both
(`setup_logging(console=False)`, `PREFECT_LOGGING_LEVEL=WARNING`). Prefect runs twice:
with its default settings (results not persisted) and with
`PREFECT_RESULTS_PERSIST_BY_DEFAULT=true`, closer to orchlite, which always records results.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

from _common import Row, clean_env, emit, parser, us

CALLS = 1_000
REPS = 3

CHILD = r"""
import json, os, statistics, sys, time

lib, calls, reps = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
if lib == "orchlite":
    from orchlite.logging import setup_logging

    setup_logging(console=False)
    from orchlite import __version__ as version, flow, task
else:
    from prefect import __version__ as version, flow, task


def noop(i):
    return None


noop_task = task(noop)


@flow
def noops(n: int) -> None:
    for i in range(n):
        noop_task(i)


def bare(n):
    for i in range(n):
        noop(i)


noops(10)
overheads, bares = [], []
for _ in range(reps):
    start = time.perf_counter()
    noops(calls)
    flow_s = time.perf_counter() - start
    start = time.perf_counter()
    bare(calls)
    bare_s = time.perf_counter() - start
    overheads.append((flow_s - bare_s) / calls)
    bares.append(bare_s / calls)
print(json.dumps({
    "version": version,
    "overhead": statistics.median(overheads),
    "bare": statistics.median(bares),
    "all": overheads,
}))
"""


def run_child(
    python: str, lib: str, env: dict[str, str], calls: int, reps: int, folder: Path
) -> dict:
    script = folder / f"noops_{lib}.py"  # a file, so both libraries can read task source
    script.write_text(CHILD)
    done = subprocess.run(
        [python, str(script), lib, str(calls), str(reps)],
        cwd=folder,
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    lines = done.stdout.strip().splitlines()
    if done.returncode != 0 or not lines:
        tail = "\n".join(done.stderr.strip().splitlines()[-15:])
        raise SystemExit(f"{lib} run failed (exit code {done.returncode}):\n{tail}")
    return json.loads(lines[-1])


def main() -> None:
    p = parser(__doc__.splitlines()[0])
    p.add_argument("--calls", type=int, default=CALLS)
    p.add_argument("--reps", type=int, default=REPS)
    args = p.parse_args()
    prefect_python = os.environ.get("PREFECT_PYTHON")
    if not prefect_python:
        print(
            "skipped: set PREFECT_PYTHON=/path/to/venv/bin/python (a Python with Prefect 3"
            " installed) to compare with Prefect"
        )
        emit([], args.json)
        return
    if not Path(prefect_python).is_file() or not os.access(prefect_python, os.X_OK):
        raise SystemExit(f"PREFECT_PYTHON={prefect_python} is not an executable file")

    results = {}
    with tempfile.TemporaryDirectory(prefix="orch-bench-") as tmp:
        root = Path(tmp)
        variants = {
            "orchlite": (sys.executable, "orchlite", {"ORCH_HOME": str(root / "orch" / ".orch")}),
            "Prefect (defaults)": (
                prefect_python,
                "prefect",
                {"PREFECT_HOME": str(root / "prefect-default")},
            ),
            "Prefect (results persisted)": (
                prefect_python,
                "prefect",
                {
                    "PREFECT_HOME": str(root / "prefect-persist"),
                    "PREFECT_RESULTS_PERSIST_BY_DEFAULT": "true",
                },
            ),
        }
        for label, (python, lib, extra) in variants.items():
            env = {
                k: v
                for k, v in clean_env(pin=lib == "orchlite").items()
                if not k.startswith("PREFECT_") or k == "PREFECT_PYTHON"
            }
            env.update(extra, PREFECT_LOGGING_LEVEL="WARNING")
            print(f"running {label} ({args.calls:,} tasks x {args.reps})...", flush=True)
            results[label] = run_child(python, lib, env, args.calls, args.reps, root)
            found = results[label]
            print(
                f"  {lib} {found['version']}: {us(found['overhead'])}/task"
                f" (reps: {', '.join(us(v) for v in found['all'])})"
            )

    ours = results["orchlite"]["overhead"]
    rows = []
    for label, found in results.items():
        ratio = "" if label == "orchlite" else f", {found['overhead'] / ours:.1f}x orchlite"
        rows.append(
            Row(
                benchmark=(
                    f"{label} {found['version']}: {args.calls:,} sequential no-op tasks"
                    if label != "orchlite"
                    else f"orchlite: {args.calls:,} sequential no-op tasks (Prefect comparison)"
                ),
                figure=f"{us(found['overhead'])}/task{ratio}",
                baseline=f"bare call {us(found['bare'], 3)}",
                target="—",
                verdict="info",
            )
        )
    emit(rows, args.json)


if __name__ == "__main__":
    main()
