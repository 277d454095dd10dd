"""`orch import-crontab [FILE|-]`: a crontab as orch.toml entries, on stdout or in a file.

Reading and writing only: the translation is `orchlite.crontab`.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Annotated

import typer

from .errors import UsageError


def import_crontab(
    file: Annotated[
        str,
        typer.Argument(help="The crontab to read (`crontab -l > FILE`); - or none: stdin."),
    ] = "-",
    system: Annotated[
        bool,
        typer.Option(
            "--system", help="Lines have a user field, as in /etc/cron.d and /etc/crontab."
        ),
    ] = False,
    timezone: Annotated[
        str | None,
        typer.Option(
            "--timezone",
            "--tz",
            help="The zone cron ran in, until a CRON_TZ line (default: this machine's).",
        ),
    ] = None,
    output: Annotated[
        Path | None,
        typer.Option("--output", "-o", help="Write to this file (not an existing one)."),
    ] = None,
    force: Annotated[
        bool, typer.Option("--force", help="With --output: replace an existing file.")
    ] = False,
    append: Annotated[
        bool, typer.Option("--append", help="With --output: add to the end of the file.")
    ] = False,
) -> None:
    """Translate a crontab into orch.toml entries.

    `crontab -l | orch import-crontab` prints them; `orch import-crontab crontab.txt -o
    orch.toml` writes them. A line that has no equivalent becomes a comment naming it.
    """
    from .crontab import parse_crontab, render_toml

    if force and append:
        raise UsageError("give --force or --append, not both")
    if (force or append) and output is None:
        raise UsageError("--force and --append go with --output FILE")
    source = "stdin" if file == "-" else file
    if file == "-" and sys.stdin.isatty():
        print("reading a crontab from the terminal; end it with Ctrl-D", file=sys.stderr)
    text = _read(file)
    found = parse_crontab(text, timezone=timezone or local_timezone(), system=system)
    toml = render_toml(found, Path(source).name if file != "-" else source)
    if output is None:
        sys.stdout.write(toml)
    else:
        _write(output, toml, force=force, append=append)
    for problem in found.problems:
        print(
            f"warning: {source}:{problem.line}: not translated: {problem.reason}", file=sys.stderr
        )
    if output is not None:
        print(f"wrote {len(found.jobs)} schedule(s) to {output}", file=sys.stderr)


def _read(file: str) -> str:
    try:
        if file == "-":
            return sys.stdin.read()
        return Path(file).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise UsageError(f"cannot read the crontab {file}: {_reason(exc)}") from None


def _write(path: Path, text: str, *, force: bool, append: bool) -> None:
    if path.exists() and not (force or append):
        raise UsageError(f"{path} exists: give --append to add to it, or --force to replace it")
    try:
        if append and path.exists():
            existing = path.read_text(encoding="utf-8")
            separator = "" if not existing or existing.endswith("\n") else "\n"
            path.write_text(existing + separator + "\n" + text, encoding="utf-8")
        else:
            path.write_text(text, encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise UsageError(f"cannot write {path}: {_reason(exc)}") from None


def _reason(exc: Exception) -> object:
    return exc.strerror if isinstance(exc, OSError) and exc.strerror else exc


def local_timezone() -> str:
    """This machine's IANA zone: `TZ`, else the name /etc/localtime links to, else UTC."""
    from zoneinfo import ZoneInfo

    named = os.environ.get("TZ", "").removeprefix(":")
    if named and not named.startswith("/"):
        try:
            ZoneInfo(named)
        except (KeyError, ValueError, OSError):  # ZoneInfoNotFoundError is a KeyError
            pass
        else:
            return named
    try:
        target = os.readlink("/etc/localtime")
    except OSError:
        return "UTC"
    _, sep, zone = target.partition("zoneinfo/")
    return zone if sep and zone else "UTC"
