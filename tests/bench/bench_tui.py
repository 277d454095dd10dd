"""`orch tui` on a store holding 100,000 flow runs: time to the first screen, cost of idle ticks.

    python tests/bench/bench_tui.py [--rounds N] [--flow-runs N]

Reuses the store that `bench_listing.py` builds once through the Store API and caches
(built here too if missing). Measured in this process, with Textual already imported:

- first screen: from entering `make_app(home).run_test()` to the runs screen showing its
  first snapshot (the newest 200 runs and their task counts), median of the rounds; the
  baseline is the same app on a project without a store. Target: ≤ 1.5 s.
- idle tick: CPU time (`time.process_time`) of one poll when nothing changed, for the runs
  screen's `Poller` and the schedules screen's `BoardWatcher`; the baseline is the runs
  poller on a project without a store. Target: ≤ 5 ms.
- paging: one load of the runs screen (its runs, their task counts and the trends strip)
  after paging down 90,000 runs deep (the `MAX_SHOWN` runs kept, and a page below them),
  beside the first page's load; median of the rounds. Keyset paging keeps both alike.
- text search: the first page of a search that matches nothing, so it reads every run
  (information only; it runs in the poller's thread, and again only when the store changed).
"""

from __future__ import annotations

import asyncio
import shutil
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from _common import Row, emit, median, parser, secs, us, verdict
from bench_listing import FLOW_RUNS, build, cache_file, cached_db_ok

from orchlite.store import DB_NAME, Store
from orchlite.tui.app import make_app
from orchlite.tui.board import BoardWatcher
from orchlite.tui.reader import MAX_SHOWN, Poller, RunsQuery, load_runs, run_key
from orchlite.tui.runs_screen import RunsScreen

ROUNDS = 5
TICKS = 2_000
FIRST_SCREEN_TARGET = 1.5
TICK_TARGET = 0.005
FLOWS = """
from orchlite import flow, interval


@flow(schedules=[interval(minutes=15)])
def etl(day: str = "") -> str:
    return day
"""


async def first_screen(home: Path) -> float:
    """Seconds from entering run_test() to the runs screen's first snapshot."""
    app = make_app(home)
    start = time.perf_counter()
    async with app.run_test(size=(120, 40)) as pilot:
        while not (isinstance(app.screen, RunsScreen) and app.screen.loads):
            await pilot.pause(0.001)
        took = time.perf_counter() - start
    return took


def idle_tick(make: Callable[[], Poller[object] | BoardWatcher]) -> float:
    """CPU seconds of one tick when nothing changed (the first, loading tick not counted)."""
    poller = make()
    poller.tick(True)
    poller.tick()
    start = time.process_time()
    for _ in range(TICKS):
        poller.tick()
    took = (time.process_time() - start) / TICKS
    poller.close()
    return took


def load_time(home: Path, query: RunsQuery, rounds: int) -> float:
    """Median wall seconds of one runs-screen load for `query`."""
    with Store(home, read_only=True) as store:
        took = []
        for _ in range(rounds):
            start = time.perf_counter()
            load_runs(store, query)
            took.append(time.perf_counter() - start)
    return median(took)


def deep_query(home: Path, depth: int) -> RunsQuery:
    """The query the runs screen holds after paging down to `depth` runs."""
    with Store(home, read_only=True) as store:
        runs = store.flow_runs_page(limit=depth + 1)
    return RunsQuery(anchor=run_key(runs[depth]), top=run_key(runs[depth - MAX_SHOWN]))


def project(folder: Path, db: Path | None) -> Path:
    folder.mkdir(parents=True)
    (folder / "flows.py").write_text(FLOWS)
    home = folder / ".orch"
    home.mkdir(mode=0o700)
    if db is not None:
        shutil.copyfile(db, home / DB_NAME)
    return home


def main() -> None:
    p = parser(__doc__.splitlines()[0])
    p.add_argument("--rounds", type=int, default=ROUNDS)
    p.add_argument("--flow-runs", type=int, default=FLOW_RUNS)
    args = p.parse_args()
    cached = cache_file(args.flow_runs)
    if not cached_db_ok(cached, args.flow_runs):
        build(cached, args.flow_runs)
    with tempfile.TemporaryDirectory(prefix="orch-bench-tui-") as tmp:
        big = project(Path(tmp) / "big", cached)
        empty = project(Path(tmp) / "empty", None)
        asyncio.run(first_screen(empty))  # warm up: imports, stylesheet parsing
        shown: dict[str, list[float]] = {"big": [], "empty": []}
        for _ in range(args.rounds):  # interleaved, so drift hits both alike
            shown["empty"].append(asyncio.run(first_screen(empty)))
            shown["big"].append(asyncio.run(first_screen(big)))
        depth = min(90_000, args.flow_runs - 1)
        paging = {
            "first": load_time(big, RunsQuery(), args.rounds),
            "deep": load_time(big, deep_query(big, depth), args.rounds),
            "search": load_time(big, RunsQuery(text="no such run"), args.rounds),
        }
        ticks = {
            "runs, empty project": idle_tick(
                lambda: Poller(empty, lambda s: load_runs(s, RunsQuery()))
            ),
            "runs": idle_tick(lambda: Poller(big, lambda s: load_runs(s, RunsQuery()))),
            "schedules": idle_tick(lambda: BoardWatcher(big, time.time)),
        }
    med = {name: median(values) for name, values in shown.items()}
    for name, values in shown.items():
        print(
            f"  first screen, {name:<6} median {secs(med[name])}  ({', '.join(map(secs, values))})"
        )
    scale = f"{args.flow_runs:,} flow runs"
    baseline_tick = f"the runs poller without a store {us(ticks['runs, empty project'])}"
    rows = [
        Row(
            benchmark=f"`orch tui` first screen with {scale}",
            figure=f"{secs(med['big'])} (median of {args.rounds})",
            baseline=f"the same app without a store {secs(med['empty'])}",
            target=f"≤ {FIRST_SCREEN_TARGET} s",
            verdict=verdict(med["big"], FIRST_SCREEN_TARGET),
        ),
        *(
            Row(
                benchmark=f"`orch tui` idle {screen} tick with {scale} (CPU)",
                figure=f"{us(ticks[screen])} (mean of {TICKS:,})",
                baseline=baseline_tick,
                target=f"≤ {TICK_TARGET * 1000:.0f} ms",
                verdict=verdict(ticks[screen], TICK_TARGET),
            )
            for screen in ("runs", "schedules")
        ),
        Row(
            benchmark=f"`orch tui` runs screen load {depth:,} runs deep (`m`) with {scale}",
            figure=f"{secs(paging['deep'])} (median of {args.rounds})",
            baseline=f"the first page {secs(paging['first'])}",
            target="—",
            verdict="info",
        ),
        Row(
            benchmark=f"`orch tui` text search matching none of {scale}",
            figure=f"{secs(paging['search'])} (median of {args.rounds})",
            baseline=f"the first page {secs(paging['first'])}",
            target="—",
            verdict="info",
        ),
    ]
    emit(rows, args.json)


if __name__ == "__main__":
    main()
