"""Wall time of the `orch` command: `orch --help`, and `orch run` of the hello example.

    python tests/bench/bench_cli_startup.py [--rounds N]

Each figure is the median of 7 runs of the console script (by absolute path), interleaved
with the same number of `python -c pass` and `python -c "import sqlite3"` runs, the floor
any Python command pays. `orch run examples/hello.py:hello` runs in a fresh temporary
project holding a copy of `examples/`; its first run (which creates `.orch/`) is reported
separately for information and the median is taken over the runs after it.
Targets: `orch --help` ≤ 0.25 s, `orch run` ≤ 0.5 s.
"""

from __future__ import annotations

import shutil
import sys
import tempfile
from pathlib import Path

from _common import (
    REPO,
    Command,
    Row,
    clean_env,
    emit,
    median,
    no_orch_above,
    orch_script,
    parser,
    run_once,
    secs,
    time_commands,
    under_test,
    verdict,
)

from orchlite.store import Store

ROUNDS = 7
HELP_TARGET = 0.25
RUN_TARGET = 0.5
IMPORT_SQLITE = 'python -c "import sqlite3"'


def main() -> None:
    p = parser(__doc__.splitlines()[0])
    p.add_argument("--rounds", type=int, default=ROUNDS)
    args = p.parse_args()
    orch = orch_script()
    python = sys.executable
    print(f"orch: {orch}\npython: {python}\norchlite: {under_test()}")
    with tempfile.TemporaryDirectory(prefix="orch-bench-") as tmp:
        project = Path(tmp) / "project"
        shutil.copytree(REPO / "examples", project / "examples")
        env = clean_env()
        if not no_orch_above(project):  # discovery would find a store outside the project
            env["ORCH_HOME"] = str(project / ".orch")
        hello = Command([orch, "run", "examples/hello.py:hello"], cwd=project, env=env)

        first, _ = run_once(hello)
        if not (project / ".orch" / "orch.db").exists():
            raise SystemExit("`orch run` did not create the project's .orch/orch.db")

        commands = {
            "python -c pass": Command([python, "-c", "pass"], env=env),
            IMPORT_SQLITE: Command([python, "-c", "import sqlite3"], env=env),
            "orch --help": Command([orch, "--help"], env=env, check_stdout=True),
            "orch run examples/hello.py:hello": hello,
        }
        times = time_commands(commands, rounds=args.rounds, warmup=0)

        store = Store(project / ".orch", create=False)
        recorded = store.list_flow_runs(limit=1000)
        store.close()
        if len(recorded) != args.rounds + 1 or any(r.state != "COMPLETED" for r in recorded):
            raise SystemExit(f"expected {args.rounds + 1} COMPLETED hello runs in the store")

    med = {name: median(values) for name, values in times.items()}
    for name, values in times.items():
        print(f"  {name:<34} median {secs(med[name])}  ({', '.join(secs(v) for v in values)})")
    print(f"  {'first orch run (creates .orch/)':<34} {secs(first)}")
    baseline = (
        f"`python -c pass` {secs(med['python -c pass'])},"
        f' `python -c "import sqlite3"` {secs(med[IMPORT_SQLITE])}'
    )
    rows = [
        Row(
            benchmark="`orch --help` wall time",
            figure=f"{secs(med['orch --help'])} (median of {args.rounds})",
            baseline=baseline,
            target=f"≤ {HELP_TARGET} s",
            verdict=verdict(med["orch --help"], HELP_TARGET),
        ),
        Row(
            benchmark="`orch run examples/hello.py:hello` end to end",
            figure=f"{secs(med['orch run examples/hello.py:hello'])} (median of {args.rounds})",
            baseline=baseline,
            target=f"≤ {RUN_TARGET} s",
            verdict=verdict(med["orch run examples/hello.py:hello"], RUN_TARGET),
        ),
        Row(
            benchmark="`orch run` hello, first run in a new project (creates .orch/)",
            figure=secs(first),
            baseline=baseline,
            target="—",
            verdict="info",
        ),
    ]
    emit(rows, args.json)


if __name__ == "__main__":
    main()
