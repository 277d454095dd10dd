"""`orch schedules` over a project of 500 Python files, cold and warm (the parse cache).

    python tests/bench/bench_declarations.py [--files N] [--reps R]

Reading a project's schedules and triggers parses its flow files (`orchlite.parse_cache`).
The figure is the median of R reads (`daemon.listing`, as `orch schedules` makes it) with
`.orch/declarations.json` in place; the baseline the same read with the cache deleted
before each. Target: a warm read in at most 0.3 s. The whole `orch schedules` command
(interpreter start and imports included) is reported beside it, as information.
"""

from __future__ import annotations

import datetime as dt
import os
import subprocess
import tempfile
import time
from pathlib import Path

from _common import Row, clean_env, emit, median, orch_script, parser, secs, verdict
from bench_discovery import build

from orchlite.daemon import listing
from orchlite.parse_cache import CACHE_FILE

FILES = 500
REPS = 5
TARGET = 0.3


def schedule_some(root: Path, files: int) -> int:
    """Give every fiftieth file's flow a schedule; returns how many."""
    count = 0
    for i in range(0, files, 50):
        path = root / f"pkg{i % 20}" / f"mod{i}.py"
        text = path.read_text().replace("import flow", "import flow, interval")
        path.write_text(text.replace(f"name='f{i}')", f"name='f{i}', schedules=[interval(60)])"))
        count += 1
    return count


def read(root: Path) -> float:
    start = time.perf_counter()
    found = listing(root / ".orch", root, dt.datetime.now(dt.timezone.utc))
    elapsed = time.perf_counter() - start
    assert not found["errors"], found["errors"]
    return elapsed


def cold(root: Path) -> float:
    (root / ".orch" / CACHE_FILE).unlink(missing_ok=True)
    return read(root)


def command(root: Path) -> float:
    start = time.perf_counter()
    subprocess.run(
        [orch_script(), "schedules"],
        cwd=root,
        env=clean_env(ORCH_HOME=str(root / ".orch")),
        capture_output=True,
        check=True,
    )
    return time.perf_counter() - start


def main() -> None:
    p = parser(__doc__.splitlines()[0])
    p.add_argument("--files", type=int, default=FILES)
    p.add_argument("--reps", type=int, default=REPS)
    args = p.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        build(root, args.files)
        scheduled = schedule_some(root, args.files)
        (root / ".orch").mkdir(mode=0o700)
        # Files younger than SETTLE_SECONDS are not remembered: age the tree first.
        old = time.time() - 60
        for path in root.rglob("*.py"):
            os.utime(path, (old, old))
        baseline = median([cold(root) for _ in range(args.reps)])
        read(root)  # writes the cache
        warm = median([read(root) for _ in range(args.reps)])
        whole = median([command(root) for _ in range(args.reps)])
    emit(
        [
            Row(
                benchmark=f"schedules of {args.files} files ({scheduled} scheduled), warm",
                figure=secs(warm),
                baseline=f"no cache: {secs(baseline)}",
                target=f"≤ {TARGET} s",
                verdict=verdict(warm, TARGET),
            ),
            Row(
                benchmark=f"`orch schedules` on {args.files} files, warm, whole command",
                figure=secs(whole),
                baseline="interpreter start and imports included",
                target="-",
                verdict="info",
            ),
        ],
        args.json,
    )


if __name__ == "__main__":
    main()
