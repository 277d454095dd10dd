"""`orch daemon` (and `status`, `stop`) and `orch backfill`."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated

import typer

from .cli_schedule import daemon_stop
from .errors import ExitCode, UsageError

daemon_app = typer.Typer(
    help="Fire the project's schedules (see `orch schedules`); `orch daemon status`."
    "\n\n\b\nExamples:\n  orch daemon\n  orch daemon --max-runs 4 --grace 60"
    "\n  orch daemon --print-systemd-unit > orch.service",
    invoke_without_command=True,
)
daemon_app.command("stop")(daemon_stop)


@daemon_app.callback()
def daemon(
    ctx: typer.Context,
    max_runs: Annotated[
        int | None,
        typer.Option("--max-runs", min=1, help="Runs at once; more wait for a slot."),
    ] = None,
    grace: Annotated[
        float, typer.Option("--grace", help="Seconds to let runs finish on SIGTERM/SIGINT.")
    ] = 30.0,
    tick: Annotated[float, typer.Option("--tick", help="Seconds between checks.")] = 1.0,
    log_file: Annotated[
        Path | None, typer.Option("--log-file", help="Also append the daemon's lines here.")
    ] = None,
    print_systemd_unit: Annotated[
        bool,
        typer.Option("--print-systemd-unit", help="Print a systemd unit for this daemon; exit."),
    ] = False,
) -> None:
    """Fire the project's schedules until SIGTERM or Ctrl-C (SIGHUP reloads); one per project."""
    if ctx.invoked_subcommand is not None:
        return
    from .cli_common import command_home
    from .config import project_root
    from .daemon import orch_executable, run_daemon, systemd_unit

    if tick <= 0 or grace < 0:
        raise UsageError("--tick must be > 0 and --grace >= 0")
    home = command_home()
    root = project_root(home)
    if log_file is not None:
        log_file = log_file.expanduser().absolute()
    if print_systemd_unit:
        unit = systemd_unit(
            root,
            orch_executable(),
            max_runs=max_runs,
            grace=grace,
            tick=tick,
            log_file=log_file,
            home=None if home == root / ".orch" else home,
        )
        print(unit, end="")
        return
    run_daemon(home, root, max_runs=max_runs, grace=grace, tick=tick, log_file=log_file)


def backfill(
    target: Annotated[str, typer.Argument(help="A scheduled flow: file.py:flow or its name.")],
    start: Annotated[str, typer.Option("--start", help="First day or time (ISO, its zone).")],
    end: Annotated[str, typer.Option("--end", help="Last day (included) or time (ISO).")],
    schedule: Annotated[
        str | None, typer.Option("--schedule", help="Which schedule, if the flow has several.")
    ] = None,
    max_runs: Annotated[int, typer.Option("--max-runs", min=1, help="Runs at once.")] = 1,
    yes: Annotated[bool, typer.Option("--yes", help="Allow more than 1,000 slots.")] = False,
) -> None:
    """Run a scheduled flow once per slot of its schedule in a range; slots already run are
    skipped.

    \b
    Examples:
      orch backfill etl --start 2026-03-01 --end 2026-03-07
    """
    from .cli_common import command_home
    from .config import project_root
    from .daemon import backfill as run_backfill

    home = command_home()
    root = project_root(home)
    ok = run_backfill(
        home,
        root,
        _flow_name_as_declared(target, root),
        start,
        end,
        schedule_name=schedule,
        max_runs=max_runs,
        yes=yes,
        out=print,
        log=lambda line: print(line, file=sys.stderr),
    )
    if not ok:
        raise typer.Exit(int(ExitCode.RUN_FAILED))


def _flow_name_as_declared(target: str, root: Path) -> str:
    """A flow name in the spelling its declaration gives (`sales_etl` -> `sales-etl`);
    a file.py:flow or module:flow target as it is."""
    from .discovery import is_flow_name

    if not is_flow_name(target):
        return target
    from .names import same_flow_name
    from .project_model import Project

    for info in Project(root).flows:
        if same_flow_name(target, info.name) or same_flow_name(target, info.function):
            return info.name
    return target


@daemon_app.command("status")
def daemon_status(
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """Whether the project's daemon runs: pid, uptime, runs in flight.

    \b
    Examples:
      orch daemon status
      orch daemon status --json
    """
    from .cli_common import command_home
    from .daemon import status

    info = status(command_home())
    if as_json:
        print(json.dumps(info, indent=2))
        return
    if not info["running"]:
        print("daemon: not running")
    else:
        print(f"daemon: running (pid {info['pid']}, up {info['uptime_seconds'] or 0:.0f} s)")
    print(f"runs in flight: {len(info['runs_in_flight'])}")
    for run in info["runs_in_flight"]:
        print(f"  {run['id'][:12]}  {run['state']:<10}  {run['target']}")
