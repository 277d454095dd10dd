"""`orch tui` on a store holding 100,000 flow runs and beside a live run of 10,000 task runs.

    python tests/bench/bench_tui.py [--rounds N] [--flow-runs N] [--idle-seconds S]
        [--part PART ...]

PART is one of `first-screen`, `ticks`, `paging`, `live-keys`, `idle-cpu`, `health` (default:
all of them).

Reuses the store that `bench_listing.py` builds once through the Store API and caches
(built here too if missing). Measured in this process, with Textual already imported:

- first paint: from starting `orch tui` as a child process in a pseudo-terminal to its
  first frame reaching the terminal, median of the rounds (the runs load after it); the
  baseline is the same on an empty store. Target: ≤ 0.5 s.
- idle tick: CPU time (`time.process_time`) of one poll when nothing changed, for the runs
  screen's `Poller` and the schedules screen's `BoardWatcher`; the baseline is the runs
  poller on a project without a store. Target: ≤ 5 ms.
- paging: one load of the runs screen (its runs, their task counts and the trends strip)
  after paging down 90,000 runs deep (the `MAX_SHOWN` runs kept, and a page below them),
  beside the first page's load; median of the rounds. Keyset paging keeps both alike.
- text search: the first page of a search that matches nothing, so it reads every run
  (information only; it runs in the poller's thread, and again only when the store changed).
- key press during a live run: the detail screen of a RUNNING run of 10,000 task runs,
  while another process records 500 task-run state changes a second in it; from pressing
  `down`/`up` in the task table to the cursor having moved, 95th percentile and worst of
  `KEYS` presses a user's pace apart. The baseline is the same on a live run of 10 task
  runs. Target: ≤ 100 ms.
- idle CPU beside a daemon: the runs screen open on the big store for `--idle-seconds` while
  another process records what a daemon firing every second records (a run a second, from
  SCHEDULED through RUNNING, with its task runs, and heartbeats); this process's CPU time
  over wall time, from 3 s after the first page (once the writer's new flow has joined the
  trends: a cost paid once). The baseline is the same without the other process. Target:
  ≤ 1 %.
- flow health: one load of the health screen (every run of the window and the window
  before, each flow's numbers) for each window, median of the rounds, beside the runs
  screen's first page. Information only: it runs in the poller's thread, at most once a
  second and at most 5 % of a core however busy the store (`tui.health_reader`).
"""

from __future__ import annotations

import argparse
import asyncio
import fcntl
import os
import pty
import select
import shutil
import signal
import struct
import subprocess
import sys
import tempfile
import termios
import time
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

from _common import Row, clean_env, emit, median, orch_script, parser, secs, us, verdict
from bench_listing import FLOW_RUNS, build, cache_file, cached_db_ok
from textual.widgets import DataTable

from orchlite.health import WINDOWS
from orchlite.states import StateName
from orchlite.store import DB_NAME, Store, TaskRun, TaskRunSave
from orchlite.tui.app import make_app
from orchlite.tui.board import BoardWatcher
from orchlite.tui.detail_screen import RunDetailScreen
from orchlite.tui.health_reader import load_health
from orchlite.tui.poller import Poller
from orchlite.tui.reader import MAX_SHOWN, RunsQuery, load_runs, run_key
from orchlite.tui.runs_screen import RunsScreen

ROUNDS = 5
TICKS = 2_000
FIRST_SCREEN_TARGET = 0.5
PAINT_WAIT = 10.0
TICK_TARGET = 0.005
LIVE_TASKS = 10_000
KEYS = 100
KEY_TARGET = 0.1
CHANGES_PER_BATCH = 50
BATCH_SECONDS = 0.1
LIVE_RUN = "1" * 32
IDLE_SECONDS = 20.0
SETTLE_SECONDS = 3.0
"""How long the idle figures wait after the first page before measuring (`idle_cpu`)."""
IDLE_TARGET = 0.01
PARTS = ("first-screen", "ticks", "paging", "live-keys", "idle-cpu", "health")
FLOWS = """
from orchlite import flow, interval


@flow(schedules=[interval(minutes=15)])
def etl(day: str = "") -> str:
    return day
"""


def first_paint(home: Path) -> float:
    """Seconds from starting `orch tui` (a child process in a pseudo-terminal of 120x40) to
    its first frame on the terminal (the footer's keys drawn)."""
    main, child_end = pty.openpty()
    fcntl.ioctl(child_end, termios.TIOCSWINSZ, struct.pack("HHHH", 40, 120, 0, 0))
    start = time.perf_counter()
    child = subprocess.Popen(
        [orch_script(), "--home", str(home), "tui"],
        stdin=child_end,
        stdout=child_end,
        stderr=child_end,
        start_new_session=True,
        env={**clean_env(), "TERM": "xterm-256color"},
    )
    os.close(child_end)
    drawn = b""
    try:
        while time.perf_counter() - start < PAINT_WAIT:
            if select.select([main], [], [], 0.01)[0]:
                drawn += os.read(main, 1 << 16)
                if b"Quit" in drawn:
                    return time.perf_counter() - start
        raise RuntimeError(f"no first frame in {PAINT_WAIT} s: {drawn[-300:]!r}")
    finally:
        os.killpg(child.pid, signal.SIGKILL)
        child.wait()
        os.close(main)


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


def health_time(home: Path, window: str, rounds: int) -> float:
    """Median wall seconds of one health-screen load over `window`."""
    with Store(home, read_only=True) as store:
        took = []
        for _ in range(rounds):
            start = time.perf_counter()
            load_health(store, window, time.time())
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


def task(position: int, state: str, now: float) -> TaskRun:
    return TaskRun(
        flow_run_id=LIVE_RUN,
        position=position,
        id=f"{position + 1:032x}",
        standalone=0,
        task_key="work@flows.py",
        name=f"work-{position}",
        dynamic_key=str(position),
        state=state,
        state_message=None,
        attempts=1,
        inputs_hash=None,
        cache_key=None,
        result_ref=None,
        result_serializer=None,
        error_type=None,
        error_message=None,
        traceback=None,
        created=now,
        started=now,
        ended=None if state == "RUNNING" else now,
    )


def live_project(folder: Path, tasks: int) -> Path:
    """A project whose store holds LIVE_RUN, RUNNING, with `tasks` task runs (a few going)."""
    home = project(folder, None)
    now = time.time()
    with Store(home) as store:
        store.create_flow_run(
            run_id=LIVE_RUN,
            flow_name="fan-out",
            name="fan-out-1",
            parameters="{}",
            state=StateName.RUNNING,
            now=now,
        )
        runs = [task(p, "COMPLETED" if p % 100 else "RUNNING", now) for p in range(tasks)]
        store.save_task_runs([TaskRunSave(run, [(run.state, None, now)]) for run in runs])
    return home


def write_live(home: Path, tasks: int) -> None:
    """Record state changes of the live run's task runs until killed (a child process)."""
    with Store(home) as store:
        position = 0
        while True:
            now = time.time()
            batch = []
            for _ in range(CHANGES_PER_BATCH):
                state = "RUNNING" if position % 2 else "COMPLETED"
                batch.append(TaskRunSave(task(position, state, now), [(state, None, now)]))
                position = (position + 7) % tasks
            store.save_task_runs(batch)
            time.sleep(BATCH_SECONDS)


async def key_presses(home: Path) -> list[float]:
    """Seconds from each key press in the live run's task table to the cursor moving."""
    app = make_app(home)
    took: list[float] = []
    async with app.run_test(size=(120, 40)) as pilot:
        while not (isinstance(app.screen, RunsScreen) and app.screen.loads):
            await pilot.pause(0.01)
        app.open_run(LIVE_RUN)
        while not (isinstance(app.screen, RunDetailScreen) and app.screen.loads >= 3):
            await pilot.pause(0.01)  # the first load, then live updates
        table = app.screen.query_one("#tasks", DataTable)
        table.focus()
        for i in range(KEYS):
            before = table.cursor_row
            start = time.perf_counter()
            app.simulate_key("down" if i % 2 == 0 else "up")  # as the terminal delivers it
            while table.cursor_row == before:
                await asyncio.sleep(0.001)
            took.append(time.perf_counter() - start)
            await asyncio.sleep(0.05)  # a user's pace
    return took


def live_keys(folder: Path, tasks: int) -> list[float]:
    home = live_project(folder, tasks)
    writer = subprocess.Popen(
        [sys.executable, __file__, "--write-live", str(home), "--tasks", str(tasks)],
        env=clean_env(),
    )
    try:
        return asyncio.run(key_presses(home))
    finally:
        writer.kill()
        writer.wait()


def p95(values: list[float]) -> float:
    return sorted(values)[int(len(values) * 0.95) - 1]


def live_rows(tmp: Path) -> list[Row]:
    big = live_keys(tmp / "live-big", LIVE_TASKS)
    small = live_keys(tmp / "live-small", 10)
    return [
        Row(
            benchmark=f"`orch tui` key press in a live run of {LIVE_TASKS:,} task runs",
            figure=f"p95 {secs(p95(big))}, worst {secs(max(big))} ({KEYS} presses)",
            baseline=f"a live run of 10 task runs p95 {secs(p95(small))}, worst {secs(max(small))}",
            target=f"≤ {KEY_TARGET * 1000:.0f} ms",
            verdict=verdict(p95(big), KEY_TARGET),
        )
    ]


def write_daemon_like(home: Path) -> None:
    """Record a run a second, as a daemon firing every second does, until killed."""
    with Store(home) as store:
        n = 0
        while True:
            n += 1
            now = time.time()
            run_id = f"{n:08x}" + "d" * 24
            store.create_flow_run(
                run_id=run_id,
                flow_name="every-second",
                name=f"every-second-{n}",
                parameters="{}",
                state=StateName.SCHEDULED,
                trigger="schedule",
                now=now,
            )
            store.set_flow_run_state(run_id, StateName.RUNNING, pid=1, attempts=1, now=now)
            for position in range(3):
                run = replace(task(position, "COMPLETED", now), flow_run_id=run_id)
                store.save_task_run(run, [("RUNNING", None, now), ("COMPLETED", None, now)])
            store.heartbeat([run_id], now=now)
            store.set_flow_run_state(run_id, StateName.COMPLETED, now=time.time())
            time.sleep(max(0.0, now + 1.0 - time.time()))


async def idle_cpu(home: Path, seconds: float) -> float:
    """CPU time over wall time of the app with the runs screen open for `seconds`, from
    `SETTLE_SECONDS` after its first page: the writer's first run brings a flow the store
    did not hold into the trends and the columns' fit once, which an app open all day
    pays once, not every second."""
    app = make_app(home)
    async with app.run_test(size=(120, 40)) as pilot:
        while not (isinstance(app.screen, RunsScreen) and app.screen.loads):
            await pilot.pause(0.01)
        await asyncio.sleep(SETTLE_SECONDS)
        wall, cpu = time.perf_counter(), time.process_time()
        await asyncio.sleep(seconds)
        return (time.process_time() - cpu) / (time.perf_counter() - wall)


def idle_beside(home: Path, writer: bool, seconds: float) -> float:
    argv = [sys.executable, __file__, "--write-daemon-like", str(home)]
    child = subprocess.Popen(argv, env=clean_env()) if writer else None
    try:
        return asyncio.run(idle_cpu(home, seconds))
    finally:
        if child is not None:
            child.kill()
            child.wait()


def big_store_rows(
    tmp: Path, parts: set[str], flow_runs: int, rounds: int, idle_seconds: float = IDLE_SECONDS
) -> list[Row]:
    """The first screen, idle ticks and paging on the cached store of `flow_runs` runs."""
    if not parts:
        return []
    cached = cache_file(flow_runs)
    if not cached_db_ok(cached, flow_runs):
        build(cached, flow_runs)
    big = project(tmp / "big", cached)
    empty = project(tmp / "empty", None)
    Store(empty).close()  # a store without runs
    scale = f"{flow_runs:,} flow runs"
    rows: list[Row] = []
    if "first-screen" in parts:
        first_paint(empty)  # warm up: the file cache
        shown: dict[str, list[float]] = {"big": [], "empty": []}
        for _ in range(rounds):  # interleaved, so drift hits both alike
            shown["empty"].append(first_paint(empty))
            shown["big"].append(first_paint(big))
        med = {name: median(values) for name, values in shown.items()}
        for name, values in shown.items():
            times = ", ".join(map(secs, values))
            print(f"  first screen, {name:<6} median {secs(med[name])}  ({times})")
        rows.append(
            Row(
                benchmark=f"`orch tui` first paint (process start to first frame) with {scale}",
                figure=f"{secs(med['big'])} (median of {rounds})",
                baseline=f"an empty store {secs(med['empty'])}",
                target=f"≤ {FIRST_SCREEN_TARGET} s",
                verdict=verdict(med["big"], FIRST_SCREEN_TARGET),
            )
        )
    if "ticks" in parts:
        ticks = {
            "runs, empty project": idle_tick(
                lambda: Poller(empty, lambda s: load_runs(s, RunsQuery()))
            ),
            "runs": idle_tick(lambda: Poller(big, lambda s: load_runs(s, RunsQuery()))),
            "schedules": idle_tick(lambda: BoardWatcher(big, time.time)),
        }
        baseline_tick = f"the runs poller without a store {us(ticks['runs, empty project'])}"
        rows += [
            Row(
                benchmark=f"`orch tui` idle {screen} tick with {scale} (CPU)",
                figure=f"{us(ticks[screen])} (mean of {TICKS:,})",
                baseline=baseline_tick,
                target=f"≤ {TICK_TARGET * 1000:.0f} ms",
                verdict=verdict(ticks[screen], TICK_TARGET),
            )
            for screen in ("runs", "schedules")
        ]
    if "idle-cpu" in parts:
        quiet = idle_beside(big, writer=False, seconds=idle_seconds)
        busy = idle_beside(big, writer=True, seconds=idle_seconds)
        rows.append(
            Row(
                benchmark=f"`orch tui` idle beside a daemon firing every second, {scale} (CPU)",
                figure=f"{busy * 100:.2f} % over {idle_seconds:.0f} s",
                baseline=f"the same without the daemon {quiet * 100:.2f} %",
                target=f"≤ {IDLE_TARGET * 100:.0f} %",
                verdict=verdict(busy, IDLE_TARGET),
            )
        )
    if "paging" in parts:
        depth = min(90_000, flow_runs - 1)
        first = load_time(big, RunsQuery(), rounds)
        deep = load_time(big, deep_query(big, depth), rounds)
        search = load_time(big, RunsQuery(text="no such run"), rounds)
        rows += [
            Row(
                benchmark=f"`orch tui` runs screen load {depth:,} runs deep (`m`) with {scale}",
                figure=f"{secs(deep)} (median of {rounds})",
                baseline=f"the first page {secs(first)}",
                target="—",
                verdict="info",
            ),
            Row(
                benchmark=f"`orch tui` text search matching none of {scale}",
                figure=f"{secs(search)} (median of {rounds})",
                baseline=f"the first page {secs(first)}",
                target="—",
                verdict="info",
            ),
        ]
    if "health" in parts:
        first = load_time(big, RunsQuery(), rounds)
        rows += [
            Row(
                benchmark=f"`orch tui` flow health over {window} with {scale}",
                figure=f"{secs(health_time(big, window, rounds))} (median of {rounds})",
                baseline=f"the runs screen's first page {secs(first)}",
                target="—",
                verdict="info",
            )
            for window in WINDOWS
        ]
    return rows


def main() -> None:
    p = parser(__doc__.splitlines()[0])
    p.add_argument("--rounds", type=int, default=ROUNDS)
    p.add_argument("--flow-runs", type=int, default=FLOW_RUNS)
    p.add_argument("--part", action="append", choices=PARTS)
    p.add_argument("--write-live", metavar="HOME", help=argparse.SUPPRESS)
    p.add_argument("--idle-seconds", type=float, default=IDLE_SECONDS, help="idle-cpu: seconds")
    p.add_argument("--tasks", type=int, default=LIVE_TASKS, help=argparse.SUPPRESS)
    p.add_argument("--write-daemon-like", metavar="HOME", help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.write_live:
        write_live(Path(args.write_live), args.tasks)
        return
    if args.write_daemon_like:
        write_daemon_like(Path(args.write_daemon_like))
        return
    parts = set(args.part or PARTS)
    with tempfile.TemporaryDirectory(prefix="orch-bench-tui-") as tmp:
        rows = big_store_rows(
            Path(tmp), parts - {"live-keys"}, args.flow_runs, args.rounds, args.idle_seconds
        )
        if "live-keys" in parts:
            rows += live_rows(Path(tmp))
    emit(rows, args.json)


if __name__ == "__main__":
    main()
