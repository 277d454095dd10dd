"""A project's declarations over 500 Python files, cold and warm (the parse cache):
`orch schedules`, `orch flows` and `orch run NAME`.

    python tests/bench/bench_declarations.py [--files N] [--reps R]

Reading a project's flows, schedules and triggers reads its flow files through the parse
cache (`orchlite.parse_cache`, by way of `orchlite.project_model.Project`). Each figure is the
median of R reads with `.orch/declarations.json` in place; its baseline the same read with
the cache deleted before each, in the same run. Each read starts without the syntax trees a
process keeps, as a new `orch` process does. The reads: the schedules listing
(`daemon.listing`, as `orch schedules` and `orch upcoming` make it), the flows listing (as
`orch flows` makes it), and reaching the flow `orch run NAME` names (looking the name up,
then importing its file). Target: each warm read in at most 0.3 s. The whole commands
(interpreter start and imports included; `orch run` of a flow that returns at once) are
reported beside them, as information.
"""

from __future__ import annotations

import datetime as dt
import os
import resource
import subprocess
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from _common import Row, clean_env, emit, median, orch_script, parser, secs, verdict
from bench_discovery import build

from orchlite import parse_cache
from orchlite.daemon import listing
from orchlite.discovery import load_target
from orchlite.parse_cache import CACHE_FILE
from orchlite.project_model import Project

FILES = 500
REPS = 5
TARGET = 0.3
NAME = "f250"
"""The flow `orch run NAME` runs: one in the middle of the tree."""


def schedule_some(root: Path, files: int) -> int:
    """Give every fiftieth file's flow a schedule; returns how many."""
    count = 0
    for i in range(0, files, 50):
        path = root / f"pkg{i % 20}" / f"mod{i}.py"
        text = path.read_text().replace("import flow", "import flow, interval")
        path.write_text(text.replace(f"name='f{i}')", f"name='f{i}', schedules=[interval(60)])"))
        count += 1
    return count


def schedules(root: Path) -> None:
    found = listing(root / ".orch", root, dt.datetime.now(dt.timezone.utc))
    assert not found["errors"], found["errors"]


def flows(root: Path) -> None:
    found, errors = Project(root).flow_scan()
    assert found and not errors, errors


def run_by_name(root: Path) -> None:
    flow = load_target(NAME, root, Project(root))
    assert getattr(flow, "name", None) == NAME


READS: dict[str, Callable[[Path], None]] = {
    "schedules": schedules,
    "flows": flows,
    f"run {NAME}": run_by_name,
}
COMMANDS = [["schedules"], ["flows"], ["run", NAME, "-p", "day=x"]]


def read(root: Path, what: Callable[[Path], None], *, cold: bool) -> float:
    if cold:
        (root / ".orch" / CACHE_FILE).unlink(missing_ok=True)
    parse_cache._trees.clear()  # as in a new process
    start = time.perf_counter()
    what(root)
    return time.perf_counter() - start


def command(root: Path, args: list[str]) -> tuple[float, float]:
    """(wall, CPU) seconds of one `orch` command: on a loaded machine the CPU time is the
    steadier figure."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    subprocess.run(
        [orch_script(), *args],
        cwd=root,
        env=clean_env(ORCH_HOME=str(root / ".orch")),
        capture_output=True,
        check=True,
    )
    wall = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    return wall, after.ru_utime + after.ru_stime - before.ru_utime - before.ru_stime


def main() -> None:
    p = parser(__doc__.splitlines()[0])
    p.add_argument("--files", type=int, default=FILES)
    p.add_argument("--reps", type=int, default=REPS)
    args = p.parse_args()
    rows: list[Row] = []
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        build(root, args.files)
        scheduled = schedule_some(root, args.files)
        (root / ".orch").mkdir(mode=0o700)
        # Files younger than SETTLE_SECONDS are not remembered: age the tree first.
        old = time.time() - 60
        for path in root.rglob("*.py"):
            os.utime(path, (old, old))
        for label, what in READS.items():
            baseline = median([read(root, what, cold=True) for _ in range(args.reps)])
            read(root, what, cold=False)  # writes the cache
            warm = median([read(root, what, cold=False) for _ in range(args.reps)])
            rows.append(
                Row(
                    benchmark=f"{label}: {args.files} files ({scheduled} scheduled), warm",
                    figure=secs(warm),
                    baseline=f"no cache: {secs(baseline)}",
                    target=f"≤ {TARGET} s",
                    verdict=verdict(warm, TARGET),
                )
            )
        for words in COMMANDS:
            times = [command(root, words) for _ in range(args.reps)]
            wall, cpu = median([t[0] for t in times]), median([t[1] for t in times])
            shown = " ".join(words)
            rows.append(
                Row(
                    benchmark=f"`orch {shown}` on {args.files} files, warm, whole command",
                    figure=f"{secs(wall)} (CPU {secs(cpu)})",
                    baseline="interpreter start and imports included",
                    target="-",
                    verdict="info",
                )
            )
    emit(rows, args.json)


if __name__ == "__main__":
    main()
