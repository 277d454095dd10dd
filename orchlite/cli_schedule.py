"""The schedule commands: `orch schedules`, `orch upcoming`, `orch schedule pause|resume
NAME`, `orch daemon stop`, and the schedule behind `orch run --schedule NAME`.

They parse and render only: the listing is `orchlite.daemon.listing`, pausing and running a
schedule `orchlite.operations` (which the TUI calls too), stopping the daemon
`orchlite.daemon.service.stop`.
"""

from __future__ import annotations

import datetime as dt
import json
import sys
from pathlib import Path
from typing import Annotated, Any

import typer

from .errors import ExitCode, one_line

schedule_app = typer.Typer(
    help="Pause, resume or inspect one schedule by its name (see `orch upcoming`).",
    no_args_is_help=True,
)

_NAME = typer.Argument(help="The schedule's name, as `orch upcoming` lists it.")


def _project() -> tuple[Path, Path]:
    from .cli_common import command_home
    from .config import project_root

    home = command_home()
    return home, project_root(home)


def _listing() -> tuple[dict[str, Any], dt.datetime]:
    from .daemon import listing

    home, root = _project()
    now = dt.datetime.now(dt.timezone.utc)
    return listing(home, root, now), now


def schedules(
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """List the schedules in orch.toml and @flow(schedules=...), read without running code.

    \b
    Examples:
      orch schedules
      orch schedules --json
    """
    found, _now = _listing()
    if as_json:
        print(json.dumps(found, indent=2))
        _schedule_errors(found["errors"])
        return
    from .render import table

    rows = [
        [
            row["schedule_name"],
            row["target"],
            row["schedule"],
            row["next"][0][:16].replace("T", " ") if row["next"] else "-",
            row["state"],
            row["last_run"]["state"] if row["last_run"] else "-",
        ]
        for row in found["schedules"]
    ]
    rows += [
        [
            "-",
            row["target"],
            row["trigger"],
            "-",
            "active",
            row["last_run"]["state"] if row["last_run"] else "-",
        ]
        for row in found.get("triggers", [])
    ]
    if rows:
        headers = ["NAME", "TARGET", "SCHEDULE", "NEXT (ITS ZONE)", "STATE", "LAST RUN"]
        table(headers, rows, sys.stdout, shrink=(0, 1, 2))
    elif not found["errors"]:
        print("no schedules (declare them in orch.toml or @flow(schedules=...))", file=sys.stderr)
    _schedule_errors(found["errors"])


def upcoming(
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON (times in UTC).")] = False,
) -> None:
    """Every schedule, the next to fire first, as `systemctl list-timers`: `orch upcoming`.

    A paused or disabled schedule has no next fire time and comes last.

    \b
    Examples:
      orch upcoming
      orch upcoming --json
    """
    from .daemon import upcoming as upcoming_rows

    found, now = _listing()
    rows = upcoming_rows(found, now)
    if as_json:
        print(json.dumps(rows, indent=2))
        _schedule_errors(found["errors"])
        return
    from .render import table

    if rows:
        table(
            ["NAME", "TARGET", "NEXT", "LEFT", "LAST", "PASSED", "STATE"],
            [
                [
                    row["name"],
                    row["target"],
                    _local(row["next"]),
                    "-" if row["left_seconds"] is None else f"in {span(row['left_seconds'])}",
                    "-"
                    if row["last"] is None
                    else f"{_local(row['last']['slot'])} {row['last']['state']}",
                    "-" if row["passed_seconds"] is None else f"{span(row['passed_seconds'])} ago",
                    row["state"],
                ]
                for row in rows
            ],
            sys.stdout,
            shrink=(0, 1, 4),
        )
    elif not found["errors"]:
        print("no schedules (declare them in orch.toml or @flow(schedules=...))", file=sys.stderr)
    _schedule_errors(found["errors"])


def _local(iso_time: str | None) -> str:
    if iso_time is None:
        return "-"
    return dt.datetime.fromisoformat(iso_time).astimezone().strftime("%a %Y-%m-%d %H:%M %Z")


def span(seconds: float) -> str:
    """A duration in its two largest units, as `systemctl list-timers`: "3h 20min", "45s"."""
    left = max(0, int(seconds))
    parts: list[str] = []
    for unit, size in (("d", 86400), ("h", 3600), ("min", 60), ("s", 1)):
        if left >= size or (unit == "s" and not parts):
            parts.append(f"{left // size}{unit}")
            left %= size
    return " ".join(parts[:2])


def _schedule_errors(errors: list[dict[str, str]]) -> None:
    """One line per broken declaration, then exit 3: the listing doubles as a check."""
    for error in errors:
        print(f"error: {one_line(error['where'] + ': ' + error['message'])}", file=sys.stderr)
    if errors:
        raise typer.Exit(int(ExitCode.LOAD))


@schedule_app.command("pause")
def schedule_pause(name: Annotated[str, _NAME]) -> None:
    """Stop firing a schedule until `orch schedule resume NAME`: `orch schedule pause nightly`."""
    from .operations import pause_schedule

    home, _root = _project()
    print(pause_schedule(home, name).message, file=sys.stderr)


@schedule_app.command("resume")
def schedule_resume(name: Annotated[str, _NAME]) -> None:
    """Fire a paused schedule again, from its next slot (missed slots are not caught up):
    `orch schedule resume nightly`."""
    from .operations import resume_schedule

    home, _root = _project()
    print(resume_schedule(home, name).message, file=sys.stderr)


def schedule_request(name: str, params: dict[str, Any]) -> Any:
    """`orch run --schedule NAME`: the `ScheduleRun` of the schedule's target, now."""
    from .operations import schedule_run

    home, _root = _project()
    return schedule_run(home, name, params)


def daemon_stop(
    timeout: Annotated[
        float,
        typer.Option("--timeout", min=0, help="Seconds to wait for its runs to drain."),
    ] = 90.0,
) -> None:
    """Stop the project's daemon (SIGTERM) and wait until its runs drained: `orch daemon stop`."""
    from .daemon import stop

    home, _root = _project()
    pid = stop(home, timeout)
    if pid is None:
        print(f"error: the daemon is still stopping after {timeout:g} s", file=sys.stderr)
        raise typer.Exit(int(ExitCode.RUN_FAILED))
    print(f"daemon stopped (pid {pid})", file=sys.stderr)
