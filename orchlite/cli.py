"""`orch`: parse the command line, call the library, render the answer.

stdout carries data (tables, `--json`); stderr carries narration and errors. Every
OrchError becomes one line on stderr and its exit code; a traceback only with `--debug`.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import os
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Annotated, Any

import typer
import typer.core

from . import __version__
from .cli_artifacts import artifacts
from .cli_cron import cron_preview
from .cli_crontab import import_crontab
from .cli_resume import resume
from .cli_schedule import daemon_stop, schedule_app, schedule_request, schedules, upcoming
from .cli_variables import variable_app
from .errors import (
    DiskFullError,
    ExitCode,
    OrchError,
    Terminated,
    UsageError,
    interrupt_code,
    one_line,
)

_GLOBAL_FLAGS = ("--debug",)
_GLOBAL_OPTIONS = ("--home",)  # each takes a value


def hoist_global_options(args: list[str]) -> list[str]:
    """`args` with the global options moved in front of the subcommand, wherever they were.

    `orch runs --home X` then means `orch --home X runs`; a `--` ends the search, so what
    follows it is never moved.
    """
    hoisted: list[str] = []
    rest: list[str] = []
    tokens = iter(args)
    for token in tokens:
        if token == "--":
            rest += [token, *tokens]
            break
        name = token.split("=", 1)[0]
        if token in _GLOBAL_FLAGS or (name in _GLOBAL_OPTIONS and "=" in token):
            hoisted.append(token)
        elif token in _GLOBAL_OPTIONS:
            value = next(tokens, None)
            if value is None:
                raise UsageError(f"option {token} needs a value")
            hoisted += [token, value]
        else:
            rest.append(token)
    return hoisted + rest


class _OrchGroup(typer.core.TyperGroup):
    """The root command: global options are accepted before or after the subcommand."""

    def parse_args(self, ctx: Any, args: list[str]) -> list[str]:
        return super().parse_args(ctx, hoist_global_options(args))


app = typer.Typer(
    name="orch",
    cls=_OrchGroup,
    help="Run and inspect orchlite flows. State lives in the project's .orch/ folder.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,
    add_completion=True,
    context_settings={"help_option_names": ["-h", "--help"]},
)
cache_app = typer.Typer(help="Inspect or clear the task result cache.", no_args_is_help=True)
app.add_typer(cache_app, name="cache")
limit_app = typer.Typer(
    help="Concurrency and rate limits on task tags and named slots.", no_args_is_help=True
)
app.add_typer(limit_app, name="limit")
daemon_app = typer.Typer(
    help="Fire the project's schedules (see `orch schedules`); `orch daemon status`.",
    invoke_without_command=True,
)
app.add_typer(daemon_app, name="daemon")
alert_app = typer.Typer(help="Failure alerts ([[alert]] in orch.toml).", no_args_is_help=True)
app.add_typer(alert_app, name="alert")
secret_app = typer.Typer(
    help="Secrets for orchlite.secret(NAME), kept in the user's secrets file.",
    no_args_is_help=True,
)
app.add_typer(secret_app, name="secret")

_debug = False
_home_option = False


def _version(value: bool) -> None:
    if value:
        print(f"orch {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    home: Annotated[
        Path | None,
        typer.Option("--home", help="The .orch/ folder to use (default: found from the CWD)."),
    ] = None,
    debug: Annotated[bool, typer.Option("--debug", help="Show tracebacks on errors.")] = False,
    version: Annotated[
        bool,
        typer.Option("--version", callback=_version, is_eager=True, help="Print the version."),
    ] = False,
) -> None:
    global _debug, _home_option
    from .alerting import enable

    enable()  # a run this command ends (runs, reaps, cancels) alerts like a daemon's
    _debug = debug
    _home_option = home is not None
    if home is not None:
        os.environ["ORCH_HOME"] = str(home.expanduser().absolute())


def _home() -> Path:
    """The project's `.orch/` for a command that reads it.

    A store named with `--home` must exist: a mistyped path is an error, not an empty
    history. ORCH_HOME may name a store not created yet (a fresh project has no runs), but
    not one whose folder is missing as well.
    """
    from .config import HOME_ENV, find_home

    home = find_home()
    if (home / "orch.db").exists():
        return home
    if _home_option:
        raise UsageError(f"no store at {home} (named by --home)")
    if os.environ.get(HOME_ENV) and not home.parent.is_dir():
        raise UsageError(f"no store at {home} (named by {HOME_ENV}; {home.parent} is missing)")
    return home


def _store(create: bool = False, reap: bool = True) -> Any:
    """The project's store; runs left unfinished by a dead process are ended first."""
    from .config import find_home
    from .stopping import reap_dead_runs
    from .store import Store

    home = find_home() if create else _home()
    if not create and not (home / "orch.db").exists():
        raise UsageError(f"no runs recorded yet (no store at {home})")
    store = Store(home, create=create)
    if reap and not store.read_only:
        with contextlib.suppress(DiskFullError):  # reading works on a full disk
            reap_dead_runs(store)
    return store


def _existing_store() -> Any | None:
    """The project's store, or None when nothing was ever recorded in this project."""
    if not (_home() / "orch.db").exists():
        return None
    return _store()


# -- run ----------------------------------------------------------------------------------


@app.command()
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

    if schedule is None:
        target = one_off_target(target, command, given)
        _home_of_absolute_target(target)
        request = RunRequest(target=target, params=given)
    elif target is None and command is None:
        request = schedule_request(schedule, given)
    else:
        raise UsageError(RUN_ONE_OF)
    request.refresh_cache = no_cache
    quiet = quiet or (os.environ.get("ORCH_QUIET") == "1" and not sys.stderr.isatty())
    with _held_output(quiet) as held:
        run_id, code = _execute(request, subprocess, as_json, live=not quiet)
        if run_id is not None and not as_json:
            _report(run_id, as_json)
        held.show = code != 0
    if run_id is not None and as_json:
        _report(run_id, as_json)
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


def _home_of_absolute_target(target: str) -> None:
    """For `orch run /abs/path/flows.py:etl`, the store of the file's own project (found
    walking up from its folder, else beside it), not one in the working directory."""
    from .config import HOME_ENV, find_home
    from .discovery import absolute_target_file

    path = absolute_target_file(target)
    if path is not None and not os.environ.get(HOME_ENV):
        os.environ[HOME_ENV] = str(find_home(start=path.parent))


def _execute(
    request: Any, in_subprocess: bool, as_json: bool, live: bool = True
) -> tuple[str | None, int]:
    from .executor import run_in_subprocess, run_target

    with _stdout_to_stderr(as_json), _sigterm_as_interrupt():
        if in_subprocess:
            return run_in_subprocess(request)
        if live and sys.stderr.isatty() and not as_json:
            from .live import LiveRunView

            with LiveRunView():
                return run_target(request, console=None)
        return run_target(request)


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


@app.command()
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
    """Resume a run: tasks that completed in it are not executed again."""
    from .executor import RunRequest
    from .params import parse_assignments

    store = _store()
    old = store.get_flow_run(store.resolve_run_id(run_ref))
    if old.state == "COMPLETED" and not force:
        raise UsageError(f"run {old.id[:8]} completed; pass --force to run it again")
    if old.parent_run_id is not None:
        raise UsageError(
            f"run {old.id[:8]} is a subflow; retry its parent run {old.parent_run_id[:8]}"
        )
    if not old.target:
        raise UsageError(f"run {old.id[:8]} has no recorded target to run again")
    params = {**json.loads(old.parameters or "{}"), **parse_assignments(param or [])}
    request = RunRequest(target=old.target, params=params, resume_from=old.id, trigger="retry")
    run_id, code = _execute(request, subprocess, as_json)
    if run_id is not None:
        _report(run_id, as_json)
    raise typer.Exit(code)


@app.command()
def cancel(
    run_ref: Annotated[str, typer.Argument(metavar="RUN", help="A run id, id prefix, or 'last'.")],
    wait: Annotated[
        float, typer.Option("--wait", help="Seconds to wait for the run to stop.")
    ] = 10.0,
) -> None:
    """Cancel a run in progress: tasks not yet started never start."""
    from .stopping import cancel_run

    store = _store()
    run_id = store.resolve_run_id(run_ref)
    state = cancel_run(store, run_id, wait_seconds=wait)
    print(f"Run {run_id[:8]} {state}", file=sys.stderr)


def _report(run_id: str, as_json: bool) -> None:
    from . import views

    store = _store()
    if as_json:
        print(json.dumps(views.run_detail(store, run_id), indent=2))
        return
    run = store.get_flow_run(run_id)
    duration = views.duration(run)
    took = f" in {views.format_duration(duration)}" if duration is not None else ""
    message = f": {run.state_message}" if run.state_message else ""
    print(f"Run {run.id[:8]} ({run.flow_name}) {run.state}{took}{message}", file=sys.stderr)


# -- inspect ------------------------------------------------------------------------------


@app.command()
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
    """List flow runs, newest first."""
    from . import views

    states = [_state_name(name) for name in state] if state else None
    store = _existing_store()
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
        return StateName(name.upper()).value
    except ValueError:
        names = ", ".join(s.value for s in StateName)
        raise UsageError(f"unknown state {name!r} (one of: {names})") from None


@app.command()
def show(
    run_ref: Annotated[str, typer.Argument(metavar="RUN", help="A run id, id prefix, or 'last'.")],
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """Show one run: parameters, state, tasks and child runs."""
    from . import views

    store = _store()
    detail = views.run_detail(store, store.resolve_run_id(run_ref))
    if as_json:
        print(json.dumps(detail, indent=2))
        return
    from .render import print_run

    print_run(detail)


@app.command()
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
    store = _store()
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


@app.command()
def flows(
    directory: Annotated[
        Path | None, typer.Argument(metavar="DIR", help="Where to look (default: project root).")
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """List the flows in a project, read from source without running it."""
    from .config import find_home, project_root
    from .discovery import find_flows_with_errors

    project = project_root(find_home())
    root = directory or project
    if not root.is_dir():
        raise UsageError(f"no such directory: {root}")
    found, errors = find_flows_with_errors(root)
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


def _target_path(path: Path, project: Path) -> str:
    """`path` as `orch run` resolves it: from the project root, else the CWD, else absolute."""
    path = path.absolute()
    for base in (project, Path.cwd()):
        try:
            return path.relative_to(base.absolute()).as_posix()
        except ValueError:
            continue
    return path.as_posix()


# -- cache and retention ------------------------------------------------------------------


@cache_app.command("ls")
def cache_ls(as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False) -> None:
    """List cache entries, newest first."""
    from . import views

    store = _existing_store()
    rows = views.cache_list(store) if store else []
    if as_json:
        print(json.dumps(rows, indent=2))
        return
    from .render import print_cache

    print_cache(rows)


@cache_app.command("clear")
def cache_clear(
    task: Annotated[
        str | None, typer.Option("--task", help="Only entries of this task (name@file.py).")
    ] = None,
) -> None:
    """Delete cache entries (all, or one task's)."""
    store = _existing_store()
    removed = store.clear_cache(task) if store else 0
    print(f"removed {removed} cache entr{'y' if removed == 1 else 'ies'}", file=sys.stderr)


@app.command()
def gc(
    older_than: Annotated[
        str, typer.Option("--older-than", help="Age of runs to delete: 30d, 12h, 90m.")
    ] = "30d",
) -> None:
    """Delete finished runs older than an age, their logs, and unreferenced blobs."""
    from .daemon import collect_garbage
    from .views import parse_age

    seconds = parse_age(older_than)
    store = _existing_store()
    if store is None:
        print("nothing to delete: no runs recorded yet", file=sys.stderr)
        return
    deleted, pruned = collect_garbage(store, time.time() - seconds)
    print(f"deleted {deleted} run(s) and {pruned} unreferenced blob(s)", file=sys.stderr)


@app.command()
def doctor(as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False) -> None:
    """Check .orch/: database integrity, blob hashes, lost results, file modes; repair."""
    from .doctor import diagnose

    home = _home()
    if not home.is_dir():
        raise UsageError(f"no store at {home}: nothing recorded here to check")
    report = diagnose(home)
    if as_json:
        print(json.dumps(report.as_dict(), indent=2))
    else:
        for line in report.lines():
            print(line)
    if report.exit_code:
        raise typer.Exit(report.exit_code)


# -- concurrency limits -------------------------------------------------------------------


# `orch limit set db -1` reaches the N check instead of "no such option: -1".
@limit_app.command("set", context_settings={"ignore_unknown_options": True})
def limit_set(
    tag: Annotated[str, typer.Argument(help="A task tag, or a name for concurrency().")],
    n: Annotated[int, typer.Argument(metavar="N", help="How many slots (1 or more).")],
    per_second: Annotated[
        bool,
        typer.Option("--per-second", help="A rate limit: at most N acquisitions per second."),
    ] = False,
) -> None:
    """Limit the task runs tagged TAG (and concurrency(TAG) blocks) to N at once."""
    from .limits import check_size

    name = tag.strip()
    if not name:
        raise UsageError("a limit needs a non-empty tag")
    check_size(n)
    _store(create=True, reap=False).set_concurrency_limit(name, n, per_second=per_second)
    unit = "acquisitions per second" if per_second else "at once"
    print(f"limit {name!r}: {n} {unit}", file=sys.stderr)


@limit_app.command("ls")
def limit_ls(as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False) -> None:
    """List limits with their slots in use and who holds them."""
    from .limits import HOST, limit_rows

    store = _existing_store()
    rows = limit_rows(store) if store else []
    if as_json:
        print(json.dumps(rows, indent=2))
        return
    if not rows:
        print("no limits", file=sys.stderr)
        return
    from .render import table

    def who(h: dict[str, Any]) -> str:
        where = f"pid {h['pid']}" + ("" if h["host"] == HOST else f"@{h['host']}")
        gone = "" if h["alive"] else ", gone"
        return f"{h['holder']} ({where}{gone})" if h["holder"] else f"{where}{gone}"

    table(
        ("TAG", "LIMIT", "IN USE", "HOLDERS"),
        [
            (
                row["name"],
                f"{row['limit']}/s" if row["per_second"] else str(row["limit"]),
                str(row["in_use"]),
                ", ".join(who(h) for h in row["holders"]) or "-",
            )
            for row in rows
        ],
        sys.stdout,
    )


@limit_app.command("rm")
def limit_rm(tag: Annotated[str, typer.Argument(help="The limit to remove.")]) -> None:
    """Remove a limit; tasks waiting for it start at once."""
    store = _existing_store()
    if store is None or not store.delete_concurrency_limit(tag):
        raise UsageError(f"no limit {tag!r} (see `orch limit ls`)")
    print(f"removed limit {tag!r}", file=sys.stderr)


# -- schedules and the daemon --------------------------------------------------------------


app.command()(schedules)
app.command()(upcoming)
app.add_typer(schedule_app, name="schedule")


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
    from .config import find_home, project_root
    from .daemon import orch_executable, run_daemon, systemd_unit

    if tick <= 0 or grace < 0:
        raise UsageError("--tick must be > 0 and --grace >= 0")
    home = find_home()
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


@app.command()
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
    skipped."""
    from .config import find_home, project_root
    from .daemon import backfill as run_backfill

    home = find_home()
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
    if ":" in target or target.endswith(".py"):
        return target
    from .discovery import find_flows
    from .names import same_flow_name

    for info in find_flows(root):
        if same_flow_name(target, info.name) or same_flow_name(target, info.function):
            return info.name
    return target


daemon_app.command("stop")(daemon_stop)


@daemon_app.command("status")
def daemon_status(
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """Whether the project's daemon runs: pid, uptime, runs in flight."""
    from .config import find_home
    from .daemon import status

    info = status(find_home())
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


@alert_app.command("test")
def alert_test() -> None:
    """Send a test alert through every [[alert]] entry in orch.toml; exit 1 if one fails."""
    from .config import find_home, project_root
    from .notify import send_test

    home = find_home()
    sent, failed = send_test(project_root(home), lambda line: print(line, file=sys.stderr))
    if sent + failed == 0:
        print("no alerts configured (add [[alert]] entries to orch.toml)", file=sys.stderr)
    print(f"alerts: {sent} sent, {failed} failed")
    if failed:
        raise typer.Exit(1)


# -- secrets ------------------------------------------------------------------------------


@contextlib.contextmanager
def _secret_input() -> Iterator[None]:
    """A refused name, value or secrets file is bad input here (exit 2), not a failed run."""
    from .secret_store import SecretError

    try:
        yield
    except SecretError as exc:
        raise UsageError(str(exc)) from exc


@secret_app.command("set")
def secret_set(
    name: Annotated[str, typer.Argument(help="The secret's name, e.g. SLACK_TOKEN.")],
    value_from_env: Annotated[
        str | None,
        typer.Option(
            "--value-from-env", metavar="VAR", help="Take the value from this environment variable."
        ),
    ] = None,
) -> None:
    """Save a secret: the value is read from a hidden prompt or stdin, never from arguments."""
    from .secret_store import check_name, write_secret
    from .secrets import check_length

    with _secret_input():
        check_name(name)
        if value_from_env is not None:
            value = os.environ.get(check_name(value_from_env), "")
            if not value:
                raise UsageError(f"the environment variable {value_from_env} is not set")
        elif sys.stdin.isatty():
            import getpass

            value = getpass.getpass(f"Value for {name}: ", stream=sys.stderr)
        else:
            value = sys.stdin.read().removesuffix("\n").removesuffix("\r")
        if not value:
            raise UsageError(f"no value given for secret {name!r}")
        check_length(name, value)
        path = write_secret(name, value)
    print(f"secret {name!r} saved in {path}", file=sys.stderr)
    if os.environ.get(name):
        print(f"note: the environment variable {name} is set and takes precedence", file=sys.stderr)


@secret_app.command("ls")
def secret_ls(as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False) -> None:
    """List the secrets in the secrets file and where each is read from; never their values."""
    from .secret_store import read_secrets, secrets_path

    path = secrets_path()
    with _secret_input():
        names = sorted(read_secrets(path))
    rows = [
        {"name": name, "source": "environment" if os.environ.get(name) else "secrets file"}
        for name in names
    ]
    if as_json:
        print(json.dumps(rows, indent=2))
        return
    if not rows:
        print(f"no secrets in {path}", file=sys.stderr)
        return
    from .render import table

    table(("NAME", "SOURCE"), [(r["name"], r["source"]) for r in rows], sys.stdout)
    print(f"secrets file: {path}", file=sys.stderr)


@secret_app.command("rm")
def secret_rm(name: Annotated[str, typer.Argument(help="The secret to remove.")]) -> None:
    """Remove a secret from the secrets file."""
    from .secret_store import remove_secret, secrets_path

    with _secret_input():
        removed = remove_secret(name)
    if not removed:
        raise UsageError(f"no secret {name!r} in {secrets_path()} (see `orch secret ls`)")
    print(f"removed secret {name!r}", file=sys.stderr)


@app.command()
def tui() -> None:
    """Live terminal view of runs, task runs and logs; cancel and retry from it."""
    from .tui.app import make_app  # Textual loads here only, never for other commands

    make_app(_home()).run()


# Commands of their own modules, listed by `orch --help` after those above.
app.command()(resume)
app.command()(artifacts)
app.command("cron-preview")(cron_preview)
app.command("import-crontab")(import_crontab)
app.add_typer(variable_app, name="variable")


@app.command()
def version() -> None:
    """Print the version (as `orch --version`)."""
    print(f"orch {__version__}")


# -- entry point --------------------------------------------------------------------------


def main() -> None:
    """The `orch` console script: run the app behind one error boundary."""
    try:
        code = app(standalone_mode=False)
    except typer.Exit as exc:
        sys.exit(exc.exit_code)
    except OrchError as exc:
        _fail(str(exc), exc.exit_code, exc)
    except KeyboardInterrupt as exc:
        code = interrupt_code(exc)
        _fail("terminated" if code == ExitCode.TERMINATED else "interrupted", code, None)
    except Exception as exc:
        _click_or_crash(exc)
    sys.exit(code if isinstance(code, int) else 0)


def _click_or_crash(exc: Exception) -> None:
    from typer._click.exceptions import ClickException, NoArgsIsHelpError

    if isinstance(exc, NoArgsIsHelpError):
        print(exc.format_message(), file=sys.stderr)
        sys.exit(ExitCode.USAGE)
    if isinstance(exc, ClickException):
        _fail(exc.format_message(), ExitCode.USAGE, exc)
    if isinstance(exc, typer.Abort):
        _fail("interrupted", ExitCode.INTERRUPTED, None)
    _fail(f"internal error: {type(exc).__name__}: {exc}", ExitCode.STORE, exc)


def _fail(message: str, code: int, exc: BaseException | None) -> None:
    if _debug and exc is not None:
        import traceback

        traceback.print_exception(exc)
    print(f"error: {one_line(message)}", file=sys.stderr)
    sys.exit(int(code))


if __name__ == "__main__":
    main()
