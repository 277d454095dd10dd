"""`orch`: parse the command line, call the library, render the answer.

stdout carries data (tables, `--json`); stderr carries narration and errors. Every
OrchError becomes one line on stderr and its exit code; a traceback only with `--debug`.
"""

from __future__ import annotations

import itertools
import sys
from pathlib import Path
from typing import Annotated, Any

import typer
import typer.core

from . import __version__
from .cli_admin import alert_app, cache_app, doctor, gc, limit_app, secret_app
from .cli_artifacts import artifacts
from .cli_common import options, project_home
from .cli_cron import cron_preview
from .cli_crontab import import_crontab
from .cli_daemon import backfill, daemon_app
from .cli_inspect import flows, logs, runs, show
from .cli_resume import resume
from .cli_run import cancel, retry, run
from .cli_schedule import schedule_app, schedules, upcoming
from .cli_variables import variable_app
from .errors import ExitCode, OrchError, UsageError, interrupt_code, one_line

_GLOBAL_FLAGS = ("--debug",)
_GLOBAL_OPTIONS = ("--home",)  # each takes a value


def hoist_global_options(args: list[str], root: Any = None) -> list[str]:
    """`args` with the global options moved in front of the subcommand, wherever they were.

    `orch runs --home X` then means `orch --home X runs`; a `--` ends the search, so what
    follows it is never moved, and neither is the value of one of the subcommand's own
    options (`orch run f.py:x -p --home` passes the string "--home" as a parameter).
    `root` is the command tree the subcommands are looked up in (none: every token is
    read as an option or an argument, never as an option's value).
    """
    hoisted: list[str] = []
    rest: list[str] = []
    command = root
    takes_value = _value_options(command)
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
            if token in takes_value:
                rest += list(itertools.islice(tokens, 1))
            elif (sub := getattr(command, "commands", {}).get(token)) is not None:
                command, takes_value = sub, _value_options(sub)
    return hoisted + rest


def _value_options(command: Any) -> frozenset[str]:
    """The names of `command`'s options that take a value (`-p`, `--params-file`...).

    Read from the Click command tree Typer builds (duck-typed: Typer may bring its own copy
    of Click)."""
    return frozenset(
        name
        for param in getattr(command, "params", ())
        if param.param_type_name == "option"
        and not (param.is_flag or param.count)
        and param.nargs == 1
        for name in param.opts
    )


class _OrchGroup(typer.core.TyperGroup):
    """The root command: global options are accepted before or after the subcommand."""

    def parse_args(self, ctx: Any, args: list[str]) -> list[str]:
        return super().parse_args(ctx, hoist_global_options(args, self))


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
    from .alerting import enable

    enable()  # a run this command ends (runs, reaps, cancels) alerts like a daemon's
    options.debug = debug
    options.home = None if home is None else home.expanduser().absolute()


def tui() -> None:
    """Live terminal view of runs, task runs and logs; cancel and retry from it.

    \b
    Examples:
      orch tui
      orch tui --home /srv/proj/.orch
    """
    from .tui.app import make_app  # Textual loads here only, never for other commands

    make_app(project_home()).run()


def version() -> None:
    """Print the version (as `orch --version`): `orch version`."""
    print(f"orch {__version__}")


# The commands, in the order `orch --help` lists them; then the groups.
for command in (
    run,
    retry,
    cancel,
    runs,
    show,
    logs,
    flows,
    gc,
    doctor,
    schedules,
    upcoming,
    backfill,
    tui,
    resume,
    artifacts,
):
    app.command()(command)
app.command("cron-preview")(cron_preview)
app.command("import-crontab")(import_crontab)
app.command()(version)
app.add_typer(cache_app, name="cache")
app.add_typer(limit_app, name="limit")
app.add_typer(daemon_app, name="daemon")
app.add_typer(alert_app, name="alert")
app.add_typer(secret_app, name="secret")
app.add_typer(schedule_app, name="schedule")
app.add_typer(variable_app, name="variable")


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
    if options.debug and exc is not None:
        import traceback

        traceback.print_exception(exc)
    print(f"error: {one_line(message)}", file=sys.stderr)
    sys.exit(int(code))


if __name__ == "__main__":
    main()
