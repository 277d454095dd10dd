"""`orch retry` of a long flow that failed at its last task.

    python tests/bench/bench_resume.py [--tasks N] [--sleep SECONDS]

A flow of 1,000 tasks that each sleep 10 ms fails at its last task. `orch retry` of that
run answers the 999 completed tasks from their stored results and runs only the last one.
The figure is the resumed run's time as a share of the original run's time, both measured
in this run as the run's own recorded duration; the target is at most 10 %.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from _common import REPO, Row, clean_env, emit, parser, secs, verdict

FLOW = """
import time
from pathlib import Path

from orchlite import flow, task


@task
def step(i: int, last: int, delay: float) -> int:
    time.sleep(delay)
    if i == last and not Path("fixed").exists():
        raise RuntimeError("the last task failed")
    return i


@flow
def long_flow(tasks: int = 1000, delay: float = 0.01) -> int:
    return sum(step(i, tasks - 1, delay) for i in range(tasks))
"""

TARGET = 0.10


def orch(project: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "orchlite.cli", *args],
        cwd=project,
        env=clean_env(),
        capture_output=True,
        text=True,
        check=False,
    )


def duration(project: Path) -> float:
    shown = orch(project, "show", "last", "--json")
    return float(json.loads(shown.stdout)["duration"])


def main() -> None:
    p = parser(__doc__.splitlines()[0])
    p.add_argument("--tasks", type=int, default=1000)
    p.add_argument("--sleep", type=float, default=0.01)
    args = p.parse_args()
    project = Path(tempfile.mkdtemp(prefix="orch-bench-resume-"))
    try:
        (project / ".orch").mkdir()
        (project / "long_flow.py").write_text(FLOW)
        params = ["-p", f"tasks={args.tasks}", "-p", f"delay={args.sleep}"]
        failed = orch(project, "run", "long_flow.py:long_flow", *params)
        assert failed.returncode == 1, failed.stderr
        original = duration(project)
        (project / "fixed").touch()
        resumed_run = orch(project, "retry", "last")
        assert resumed_run.returncode == 0, resumed_run.stderr
        resumed = duration(project)
    finally:
        shutil.rmtree(project, ignore_errors=True)
    share = resumed / original
    print(f"orchlite: {REPO / 'orchlite'}")
    print(f"original run {secs(original)}, resumed run {secs(resumed)}")
    emit(
        [
            Row(
                f"`orch retry` of a {args.tasks:,}-task flow failed at its last task "
                f"({args.sleep * 1000:g} ms per task)",
                f"{secs(resumed)} = {share:.1%} of the original",
                f"original run {secs(original)}",
                f"≤ {TARGET:.0%}",
                verdict(share, TARGET),
            )
        ],
        args.json,
    )


if __name__ == "__main__":
    main()
