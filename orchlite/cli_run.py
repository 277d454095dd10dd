"""`orch run`, `orch retry` and `orch cancel`: start a run here or in a child, and stop one."""

from __future__ import annotations

import contextlib
import dataclasses
import json
import os
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Annotated, Any

import typer

from .cli_common import command_home, options, project_store
from .cli_schedule import schedule_request
from .errors import Terminated, UsageError


def run(
    target: Annotated[
        str | None, typer.Argument(help="file.py:flow, package.module:flow, or a name.")
    ] = None,
    command: Annotated[
        str | None, typer.Option("--command", help="Run this shell command instead, as a run.")
    ] = None,
    param: Annotated[
        list[str] | None,
        typer.Option("--param", "-p", help="A flow parameter as key=value (repeatable)."),
    ] = None,
    params_file: Annotated[
        Path | None, typer.Option("--params-file", help="A JSON object of parameters.")
    ] = None,
    subprocess: Annotated[
        bool,
        typer.Option("--subprocess", help="Run the flow in a supervised child process."),
    ] = False,
    no_cache: Annotated[
        bool,
        typer.Option(
            "--no-cache",
            "--refresh-cache",
            help="Ignore cached task results (and refresh them).",
        ),
    ] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Print the run as JSON.")] = False,
    quiet: Annotated[
        bool,
        typer.Option(
            "--quiet",
            "-q",
            help="Print nothing unless the run fails, then everything (like chronic);"
            " ORCH_QUIET=1 does the same when stderr is not a terminal.",
        ),
    ] = False,
    schedule: Annotated[
        str | None,
        typer.Option("--schedule", help="Run this schedule's target now, with its parameters."),
    ] = None,
) -> None:
    """Run a flow now and record it: `orch run etl.py:etl -p day=2026-03-01`, or a shell
    command: `orch run --command "pg_dump mydb > db.sql"`."""
    from .params import load_params_file, parse_assignments

    given: dict[str, Any] = {}
    if params_file is not None:
        given.update(load_params_file(params_file))
    given.update(parse_assignments(param or []))
    from .executor import RunRequest
    from .shell_jobs import RUN_ONE_OF, one_off_target

    scheduled = None
    if schedule is None:
        target = one_off_target(target, command, given)
        home = _home_of(target)
        request = RunRequest(target=target, params=given)
    elif target is None and command is None:
        scheduled = schedule_request(schedule, given)
        request = scheduled.request
        home = command_home()
    else:
        raise UsageError(RUN_ONE_OF)
    request.refresh_cache = no_cache
    quiet = quiet or (os.environ.get("ORCH_QUIET") == "1" and not sys.stderr.isatty())
    with _held_output(quiet) as held:
        run_id, code = _execute(request, home, subprocess, as_json, live=not quiet)
        if run_id is not None and scheduled is not None:
            scheduled.record(project_store(), run_id)
        if run_id is not None and not as_json:
            _report(run_id, as_json, home)
        held.show = code != 0
    if run_id is not None and as_json:
        _report(run_id, as_json, home)
    raise typer.Exit(code)


@dataclasses.dataclass
class _Held:
    show: bool = False
    """Write out what was held when the block ends (the run failed)."""


@contextlib.contextmanager
def _held_output(enabled: bool) -> Iterator[_Held]:
    """While open (`--quiet`), everything written to file descriptors 1 and 2 (by orch, the
    flow, its child processes) is held in a temporary file; it goes to stderr at the end
    only if `show` was set."""
    held = _Held()
    if not enabled:
        yield held
        return
    import tempfile

    with tempfile.TemporaryFile() as file:
        sys.stdout.flush()
        sys.stderr.flush()
        saved = os.dup(1), os.dup(2)
        os.dup2(file.fileno(), 1)
        os.dup2(file.fileno(), 2)
        try:
            yield held
        finally:
            sys.stdout.flush()
            sys.stderr.flush()
            for fd, copy in zip((1, 2), saved, strict=True):
                os.dup2(copy, fd)
                os.close(copy)
        if held.show:
            file.seek(0)
            while chunk := file.read(1 << 16):
                sys.stderr.buffer.write(chunk)
            sys.stderr.flush()


def _home_of(target: str) -> Path:
    """The store a run of `target` records into: the command's (`--home`, ORCH_HOME, the
    project around the working directory), except that `orch run /abs/path/flows.py:etl`
    with neither `--home` nor ORCH_HOME uses the file's own project (found walking up from
    its folder, else beside it), not one in the working directory."""
    from .config import HOME_ENV, find_home
    from .discovery import absolute_target_file

    path = absolute_target_file(target)
    if path is None or options.home is not None or os.environ.get(HOME_ENV):
        return command_home()
    return find_home(start=path.parent)


def _execute(
    request: Any, home: Path, in_subprocess: bool, as_json: bool, live: bool = True
) -> tuple[str | None, int]:
    """Run `request` here or in a child, recording into the store at `home`."""
    from .executor import run_target
    from .supervisor import run_in_subprocess

    with _stdout_to_stderr(as_json), _sigterm_as_interrupt():
        if in_subprocess:
            return run_in_subprocess(request, home=home)
        if live and sys.stderr.isatty() and not as_json:
            from .live import LiveRunView

            with LiveRunView():
                return run_target(request, home=home, console=None)
        return run_target(request, home=home)


@contextlib.contextmanager
def _sigterm_as_interrupt() -> Iterator[None]:
    """While open, SIGTERM ends the run as Ctrl-C does (recorded CANCELLED, a child's
    process group stopped), and `orch` exits 143."""
    import signal

    def terminate(signum: int, frame: Any) -> None:
        raise Terminated

    previous = signal.signal(signal.SIGTERM, terminate)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


@contextlib.contextmanager
def _stdout_to_stderr(enabled: bool) -> Iterator[None]:
    """While open (with `--json`), what the flow writes to stdout goes to stderr instead.

    Both levels are moved: `sys.stdout` for `print()`, and file descriptor 1 for what
    bypasses it (a child process, `--subprocess`, C code), so stdout carries the JSON
    document alone.
    """
    if not enabled:
        yield
        return
    sys.stdout.flush()
    saved = os.dup(1)
    os.dup2(2, 1)
    try:
        with contextlib.redirect_stdout(sys.stderr):
            yield
    finally:
        sys.stdout.flush()
        os.dup2(saved, 1)
        os.close(saved)


def retry(
    run_ref: Annotated[str, typer.Argument(metavar="RUN", help="A run id, id prefix, or 'last'.")],
    param: Annotated[
        list[str] | None,
        typer.Option("--param", "-p", help="Override a parameter as key=value (repeatable)."),
    ] = None,
    force: Annotated[
        bool, typer.Option("--force", help="Retry even a run that completed.")
    ] = False,
    subprocess: Annotated[
        bool,
        typer.Option("--subprocess", help="Run the flow in a supervised child process."),
    ] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Print the run as JSON.")] = False,
) -> None:
    """Resume a run: tasks that completed in it are not executed again.

    \b
    Examples:
      orch retry last
      orch retry 3f2a9c -p day=2026-03-01
      orch retry last --force --subprocess
    """
    from .operations import retry_plan
    from .params import parse_assignments

    store = project_store()
    run_id = store.resolve_run_id(run_ref)
    plan = retry_plan(store.home, run_id, parse_assignments(param or []), force=force)
    request = plan.request
    run_id, code = _execute(request, store.home, subprocess, as_json)
    if run_id is not None:
        _report(run_id, as_json, store.home)
    raise typer.Exit(code)


def cancel(
    run_ref: Annotated[str, typer.Argument(metavar="RUN", help="A run id, id prefix, or 'last'.")],
    wait: Annotated[
        float, typer.Option("--wait", help="Seconds to wait for the run to stop.")
    ] = 10.0,
) -> None:
    """Cancel a run in progress: tasks not yet started never start.

    \b
    Examples:
      orch cancel last
      orch cancel 3f2a9c --wait 30
    """
    from .operations import cancel as cancel_operation

    store = project_store()
    run_id = store.resolve_run_id(run_ref)
    print(cancel_operation(store.home, run_id, wait_seconds=wait).message, file=sys.stderr)


def _report(run_id: str, as_json: bool, home: Path) -> None:
    from . import views

    store = project_store(home=home)
    if as_json:
        print(json.dumps(views.run_detail(store, run_id), indent=2))
        return
    run = store.get_flow_run(run_id)
    duration = views.duration(run)
    took = f" in {views.format_duration(duration)}" if duration is not None else ""
    message = f": {run.state_message}" if run.state_message else ""
    print(f"Run {run.id[:8]} ({run.flow_name}) {run.state}{took}{message}", file=sys.stderr)
