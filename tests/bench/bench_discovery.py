"""`orch flows`-style discovery over a project of 500 Python files, 50 of them holding flows.

    python tests/bench/bench_discovery.py [--files N] [--reps R]

Discovery reads source and never imports it, so its floor is reading and parsing every file:
the baseline is `ast.parse` of the same files in the same run. The figure is the median of R
calls of `find_flows` on a fresh tree. Target: under a second for 500 files.
"""

from __future__ import annotations

import ast
import tempfile
import time
from pathlib import Path

from _common import Row, emit, median, parser, secs, verdict

from orchlite.discovery import find_flows

FILES = 500
REPS = 5
TARGET = 1.0
HELPERS = "".join(
    f"def helper_{i}(x: int, y: str = 'a') -> int:\n    return x + {i}\n\n" for i in range(20)
)


def build(root: Path, files: int) -> int:
    """Write `files` modules in 20 packages; every tenth declares a flow. Returns the flow count."""
    flows = 0
    for i in range(files):
        extra = ""
        if i % 10 == 0:
            extra = f"@flow(name='f{i}')\ndef flow_{i}(day: str): ...\n"
            flows += 1
        path = root / f"pkg{i % 20}" / f"mod{i}.py"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text("from orchlite import flow\n\n" + HELPERS + extra)
    return flows


def parse_all(root: Path) -> int:
    return sum(1 for path in root.rglob("*.py") if ast.parse(path.read_bytes()) is not None)


def timed(fn, *args) -> float:
    start = time.perf_counter()
    fn(*args)
    return time.perf_counter() - start


def main() -> None:
    p = parser(__doc__.splitlines()[0])
    p.add_argument("--files", type=int, default=FILES)
    p.add_argument("--reps", type=int, default=REPS)
    args = p.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        expected = build(root, args.files)
        found = len(find_flows(root))
        if found != expected:
            raise SystemExit(f"discovery found {found} flows, expected {expected}")
        ours = median([timed(find_flows, root) for _ in range(args.reps)])
        floor = median([timed(parse_all, root) for _ in range(args.reps)])
    emit(
        [
            Row(
                benchmark=f"discovery of {args.files} files ({expected} flows)",
                figure=secs(ours),
                baseline=f"ast.parse of the same files: {secs(floor)}",
                target=f"≤ {TARGET} s",
                verdict=verdict(ours, TARGET),
            )
        ],
        args.json,
    )


if __name__ == "__main__":
    main()
