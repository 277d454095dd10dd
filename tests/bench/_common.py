"""Shared helpers for the benchmark scripts in this folder (not a test module).

Every benchmark prints its figure beside a baseline measured in the same run, so a
noisy machine moves both together. A script called with `--json PATH` also writes its
rows there, for `run_all.py` to collect into one table.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]

# Measure the checkout these scripts live in, whichever copy of orchlite is installed:
# the benchmarks import this module before orchlite, and child processes get PYTHONPATH.
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))


@dataclass
class Row:
    """One line of the results table."""

    benchmark: str
    figure: str
    baseline: str
    target: str
    verdict: str  # "PASS", "MISS", or "info"


def verdict(value: float, limit: float) -> str:
    return "PASS" if value <= limit else "MISS"


def median(values: Sequence[float]) -> float:
    return statistics.median(values)


def us(seconds: float, digits: int = 1) -> str:
    return f"{seconds * 1e6:.{digits}f} µs"


def secs(seconds: float) -> str:
    return f"{seconds:.3f} s"


def parser(description: str) -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=description)
    p.add_argument("--json", metavar="PATH", help="also write the result rows to PATH")
    return p


def emit(rows: Sequence[Row], json_path: str | None) -> None:
    """Print the rows as a small report and write them to `json_path` if given."""
    print()
    for row in rows:
        print(f"  {row.verdict:<4}  {row.benchmark}: {row.figure}")
        print(f"        baseline {row.baseline}; target {row.target}")
    if json_path:
        Path(json_path).write_text(json.dumps([asdict(r) for r in rows], indent=2))


def orch_script() -> str:
    """The absolute path of the `orch` console script of this interpreter.

    The script installed beside `sys.executable` is preferred over the first one on PATH:
    version-manager shims (pyenv, asdf) are shell wrappers that add tens of milliseconds
    that are not orchlite's.
    """
    found = shutil.which("orch", path=str(Path(sys.executable).parent)) or shutil.which("orch")
    if found is None:
        sys.exit("no `orch` console script found: install orchlite (pip install -e .)")
    return str(Path(found).absolute())


def clean_env(*, pin: bool = True, **extra: str) -> dict[str, str]:
    """This process's environment without orchlite settings, plus `extra`.

    With `pin`, PYTHONPATH starts with this checkout, so a child `python` or `orch`
    imports the orchlite under test.
    """
    env = {k: v for k, v in os.environ.items() if k != "ORCH_HOME"}
    if pin:
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO), env.get("PYTHONPATH")]))
    env.update(extra)
    return env


def under_test() -> str:
    """Where the orchlite being measured is imported from (in a child process, as pinned)."""
    done = subprocess.run(
        [sys.executable, "-c", "import orchlite; print(orchlite.__file__)"],
        env=clean_env(),
        cwd=tempfile.gettempdir(),
        capture_output=True,
        text=True,
        check=True,
    )
    return str(Path(done.stdout.strip()).parent)


@dataclass
class Command:
    argv: list[str]
    cwd: Path | None = None
    env: Mapping[str, str] | None = None
    check_stdout: bool = False


def run_once(cmd: Command) -> tuple[float, subprocess.CompletedProcess[bytes]]:
    start = time.perf_counter()
    done = subprocess.run(
        cmd.argv,
        cwd=cmd.cwd,
        env=dict(cmd.env) if cmd.env is not None else None,
        capture_output=True,
        check=False,
    )
    elapsed = time.perf_counter() - start
    if done.returncode != 0:
        raise SystemExit(
            f"command failed ({done.returncode}): {' '.join(cmd.argv)}\n"
            f"{done.stderr.decode(errors='replace')}"
        )
    if cmd.check_stdout and not done.stdout.strip():
        raise SystemExit(f"command printed nothing: {' '.join(cmd.argv)}")
    return elapsed, done


def time_commands(
    commands: Mapping[str, Command], rounds: int = 7, warmup: int = 1
) -> dict[str, list[float]]:
    """Wall times of each command, interleaved round by round so noise hits all alike."""
    for _ in range(warmup):
        for cmd in commands.values():
            run_once(cmd)
    times: dict[str, list[float]] = {name: [] for name in commands}
    for _ in range(rounds):
        for name, cmd in commands.items():
            times[name].append(run_once(cmd)[0])
    return times


def no_orch_above(folder: Path) -> bool:
    """Whether no ancestor of `folder` holds a `.orch/` that discovery would pick up."""
    return not any((parent / ".orch").exists() for parent in folder.resolve().parents)
