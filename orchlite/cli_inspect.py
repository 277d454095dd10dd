"""`orch runs`, `orch show`, `orch logs` and `orch flows`: what was recorded, and what a
project declares."""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path
from typing import Annotated, Any

import typer

from .cli_common import existing_project_store, project_store
from .errors import UsageError


def runs(
    flow: Annotated[
        list[str] | None, typer.Option("--flow", help="Only runs of this flow (repeatable).")
    ] = None,
    state: Annotated[
        list[str] | None, typer.Option("--state", help="Only runs in this state (repeatable).")
    ] = None,
    tag: Annotated[
        list[str] | None, typer.Option("--tag", help="Only runs with this tag (repeatable).")
    ] = None,
    limit: Annotated[int, typer.Option("--limit", "-n", min=1, help="How many runs.")] = 20,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """List flow runs, newest first.

    \b
    Examples:
      orch runs --state failed --state crashed
      orch runs --flow etl --limit 5 --json
      orch runs --tag nightly
    """
    from . import views

    states = [_state_name(name) for name in state] if state else None
    store = existing_project_store()
    rows = (
        views.run_list(store, flow=flow or None, state=states, tags=tag, limit=limit)
        if store
        else []
    )
    if as_json:
        print(json.dumps(rows, indent=2))
        return
    from .render import print_runs

    print_runs(rows)


def _state_name(name: str) -> str:
    from .states import StateName

    try:
        return StateName.parse(name).value
    except ValueError as exc:
        raise UsageError(str(exc)) from None


def show(
    run_ref: Annotated[str, typer.Argument(metavar="RUN", help="A run id, id prefix, or 'last'.")],
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
    graph: Annotated[
        bool,
        typer.Option("--graph", help="Show the task runs as a dependency graph."),
    ] = False,
) -> None:
    """Show one run: parameters, state, tasks and child runs.

    \b
    Examples:
      orch show last
      orch show 3f2a9c --json
      orch show last --graph
    """
    from . import views

    store = project_store()
    run_id = store.resolve_run_id(run_ref)
    if graph:
        _show_graph(store, run_id, as_json)
        return
    detail = views.run_detail(store, run_id)
    if as_json:
        print(json.dumps(detail, indent=2))
        return
    from .render import print_run

    print_run(detail)


def _show_graph(store: Any, run_id: str, as_json: bool) -> None:
    """`orch show RUN --graph`: the run's task runs and subflows as a dependency graph."""
    from .run_graph import build_graph

    run = store.get_flow_run(run_id)
    graph = build_graph(store.task_runs(run_id), store.child_flow_runs(run_id))
    if as_json:
        head = {"id": run.id, "flow": run.flow_name, "name": run.name, "state": run.state}
        print(json.dumps({**head, **graph.view()}, indent=2))
        return
    from .graph_render import print_graph
    from .render import terminal_width

    print_graph(run, graph, sys.stdout, time.time(), terminal_width(sys.stdout))


def logs(
    run_ref: Annotated[str, typer.Argument(metavar="RUN", help="A run id, id prefix, or 'last'.")],
    follow: Annotated[
        bool, typer.Option("--follow", "-f", help="Keep printing until the run ends.")
    ] = False,
    level: Annotated[
        str, typer.Option("--level", help="Minimum level: DEBUG, INFO, WARNING, ERROR.")
    ] = "DEBUG",
    task: Annotated[
        str | None,
        typer.Option("--task", help="Only the lines of this task (load, or load-3 for one run)."),
    ] = None,
    tail: Annotated[
        int | None, typer.Option("--tail", "-n", min=1, help="Start with the last N lines.")
    ] = None,
    as_json: Annotated[
        bool, typer.Option("--json", help="One JSON object per line (NDJSON).")
    ] = False,
) -> None:
    """Print a run's logs: `orch logs last -n 20 --task load -f`."""
    from . import views
    from .states import TERMINAL, StateName

    levels = {"DEBUG": 10, "INFO": 20, "WARNING": 30, "ERROR": 40, "CRITICAL": 50}
    min_level = levels.get(level.upper())
    if min_level is None:
        raise UsageError(f"unknown level {level!r} (one of: {', '.join(levels)})")
    store = project_store()
    run_id = store.resolve_run_id(run_ref)
    names = _task_names(store, run_id, task) if task is not None else None
    show = (lambda r: json.dumps(views.log_view(r))) if as_json else views.format_log
    last_id = 0
    newest = tail
    dead_since: float | None = None
    while True:
        # The state is read before the lines: a run's last lines are committed before it
        # ends, so once it is seen ended, the read below gets every line that is left.
        run = store.get_flow_run(run_id)
        ended = StateName(run.state) in TERMINAL
        while True:
            records = store.logs(
                run_id,
                after_id=last_id,
                min_level=min_level,
                task_name=names,
                limit=_LOG_PAGE,
                newest=newest,
            )
            newest = None  # the tail once, then every line after it
            for record in records:
                print(show(record), flush=True)
                last_id = record.id
            if len(records) < _LOG_PAGE:
                break
        if not follow or ended:
            return
        dead_since = _check_alive(store, run, dead_since)
        time.sleep(0.25)


_LOG_PAGE = 5000


def _task_names(store: Any, run_id: str, task: str) -> list[str]:
    """The task runs `--task` means: `load-3` itself, or every `load-N` for `load`."""
    names = sorted({t.name for t in store.task_runs(run_id)})
    found = [n for n in names if n == task or n.rpartition("-")[0] == task]
    if not found:
        known = ", ".join(names[:10]) or "none"
        raise UsageError(f"no task run {task!r} in run {run_id[:8]} (its task runs: {known})")
    return found


_DEAD_GRACE_SECONDS = 1.0


def _check_alive(store: Any, run: Any, dead_since: float | None) -> float | None:
    """End `run` CRASHED once its process has been gone for a moment; when it was seen gone.

    The grace leaves a supervising `orch run --subprocess` time to record the exact reason.
    """
    import socket

    from .stopping import death_of, reap_dead_runs

    now = time.time()
    if death_of(run, socket.gethostname(), now) is None:
        return None
    if dead_since is None:
        return now
    if now - dead_since >= _DEAD_GRACE_SECONDS:
        reap_dead_runs(store, now)
    return dead_since


def flows(
    directory: Annotated[
        Path | None, typer.Argument(metavar="DIR", help="Where to look (default: project root).")
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
    health: Annotated[
        bool,
        typer.Option(
            "--health",
            help="Instead: each flow that ran, its runs, failure rate, durations,"
            " late and skipped runs, from the store.",
        ),
    ] = False,
    window: Annotated[
        str | None,
        typer.Option("--window", metavar="24h|7d|30d", help="With --health: over what time."),
    ] = None,
) -> None:
    """List the flows in a project, read from source without running it.

    With --health: each flow that ran, over the last 24 hours (or --window), from the
    store: its runs, failure rate, median and 95th percentile durations with their change
    against the window before, late and skipped runs, and the last failure's message.

    \b
    Examples:
      orch flows
      orch flows pipelines/ --json
      orch flows --health --window 7d
    """
    if health or window is not None:
        if not health or directory is not None:
            raise UsageError("--window goes with --health, which takes no DIR")
        _flow_health(window or "24h", as_json)
        return
    from .cli_common import command_home
    from .config import project_root
    from .project_model import Project

    project = project_root(command_home())
    root = directory or project
    if not root.is_dir():
        raise UsageError(f"no such directory: {root}")
    found, errors = Project(root).flow_scan()
    for path, message in errors:
        print(f"skipped {_target_path(root / path, project)}: {message}", file=sys.stderr)
    rows = [
        {
            "name": info.name,
            "target": f"{_target_path(root / info.file, project)}:{info.function}",
            "parameters": [
                {"name": p.name, "annotation": p.annotation, "default": p.default}
                for p in info.parameters
            ],
        }
        for info in found
    ]
    if as_json:
        print(json.dumps(rows, indent=2))
        return
    from .render import print_flows

    print_flows(rows)


def _flow_health(window: str, as_json: bool) -> None:
    from .health import flow_health, health_view, window_seconds

    seconds = window_seconds(window)
    now = time.time()
    store = existing_project_store()
    runs = store.health_runs(now - 2 * seconds) if store else []
    found = flow_health(runs, now=now, window=seconds)
    if as_json:
        print(json.dumps(health_view(found, window=window, now=now), indent=2))
        return
    from .render import print_health

    print_health(found, window)


def _target_path(path: Path, project: Path) -> str:
    """`path` as `orch run` resolves it: from the project root, else the CWD, else absolute."""
    path = path.absolute()
    for base in (project, Path.cwd()):
        try:
            return path.relative_to(base.absolute()).as_posix()
        except ValueError:
            continue
    return path.as_posix()
