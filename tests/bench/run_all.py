"""Run every benchmark in this folder, one process each, and print a Markdown table.

    python tests/bench/run_all.py [--profile] [--rebuild]

`--profile` adds a cProfile listing to the task-overhead benchmark; `--rebuild` rebuilds the
cached store of the listing benchmark. `compare_prefect.py` runs too, and reports that it
is skipped unless PREFECT_PYTHON names a Python that has Prefect installed.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from _common import under_test

HERE = Path(__file__).resolve().parent
SCRIPTS = (
    "bench_task_overhead.py",
    "bench_cli_startup.py",
    "bench_cache_hit.py",
    "bench_listing.py",
    "bench_discovery.py",
    "bench_declarations.py",
    "bench_resume.py",
    "bench_runners.py",
    "bench_tui.py",
    "bench_daemon.py",
    "bench_redaction.py",
    "compare_prefect.py",
)
COLUMNS = ("benchmark", "figure", "baseline", "target", "verdict")
HEADER = ("Benchmark", "Figure", "Baseline (same run)", "Target", "PASS/MISS")


def run_script(script: str, extra: list[str], tmp: Path) -> list[dict[str, str]]:
    out = tmp / f"{script}.json"
    argv = [sys.executable, str(HERE / script), "--json", str(out), *extra]
    print(f"\n=== {script} {' '.join(extra)}".rstrip(), flush=True)
    start = time.perf_counter()
    code = subprocess.run(argv, cwd=HERE.parents[1], check=False).returncode
    print(f"=== {script}: {time.perf_counter() - start:.1f} s", flush=True)
    if code != 0:
        return [
            {
                "benchmark": script,
                "figure": f"failed (exit code {code})",
                "baseline": "—",
                "target": "—",
                "verdict": "ERROR",
            }
        ]
    return json.loads(out.read_text()) if out.exists() else []


def markdown(rows: list[dict[str, str]]) -> str:
    lines = [
        "| " + " | ".join(HEADER) + " |",
        "|" + "|".join("---" for _ in HEADER) + "|",
    ]
    for row in rows:
        cells = [str(row[c]).replace("|", "\\|") for c in COLUMNS]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def machine() -> str:
    return (
        f"Python {platform.python_version()} on {platform.system()} {platform.machine()},"
        f" {os.cpu_count()} CPUs, {time.strftime('%Y-%m-%d')}"
    )


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--profile", action="store_true", help="profile the task-overhead run")
    p.add_argument("--rebuild", action="store_true", help="rebuild the listing store")
    args = p.parse_args()
    extras = {
        "bench_task_overhead.py": ["--profile"] if args.profile else [],
        "bench_listing.py": ["--rebuild"] if args.rebuild else [],
    }
    rows: list[dict[str, str]] = []
    print(f"orchlite under test: {under_test()}")
    start = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="orch-bench-") as tmp:
        for script in SCRIPTS:
            rows += run_script(script, extras.get(script, []), Path(tmp))
    print(f"\nAll benchmarks: {time.perf_counter() - start:.0f} s. {machine()}.\n")
    print(markdown(rows))
    if any(row["verdict"] == "ERROR" for row in rows):
        sys.exit(1)


if __name__ == "__main__":
    main()
