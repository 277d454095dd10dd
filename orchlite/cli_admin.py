"""The project's upkeep: `orch cache`, `orch gc`, `orch doctor`, `orch limit`, `orch alert`
and `orch secret`."""

from __future__ import annotations

import contextlib
import json
import os
import sys
import time
from collections.abc import Iterator
from typing import Annotated, Any

import typer

from .cli_common import existing_project_store, project_home, project_store
from .errors import UsageError

cache_app = typer.Typer(help="Inspect or clear the task result cache.", no_args_is_help=True)
limit_app = typer.Typer(
    help="Concurrency and rate limits on task tags and named slots.", no_args_is_help=True
)
alert_app = typer.Typer(help="Failure alerts ([[alert]] in orch.toml).", no_args_is_help=True)
secret_app = typer.Typer(
    help="Secrets for orchlite.secret(NAME), kept in the user's secrets file.",
    no_args_is_help=True,
)


@cache_app.command("ls")
def cache_ls(as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False) -> None:
    """List cache entries, newest first.

    \b
    Examples:
      orch cache ls --json
    """
    from . import views

    store = existing_project_store()
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
    """Delete cache entries (all, or one task's).

    \b
    Examples:
      orch cache clear
      orch cache clear --task load@etl.py
    """
    store = existing_project_store()
    removed = store.clear_cache(task) if store else 0
    print(f"removed {removed} cache entr{'y' if removed == 1 else 'ies'}", file=sys.stderr)


def gc(
    older_than: Annotated[
        str, typer.Option("--older-than", help="Age of runs to delete: 30d, 12h, 90m.")
    ] = "30d",
) -> None:
    """Delete finished runs older than an age, their logs, and unreferenced blobs.

    \b
    Examples:
      orch gc --older-than 30d
      orch gc --older-than 7d
    """
    from .daemon import collect_garbage
    from .views import parse_age

    seconds = parse_age(older_than)
    store = existing_project_store()
    if store is None:
        print("nothing to delete: no runs recorded yet", file=sys.stderr)
        return
    deleted, pruned = collect_garbage(store, time.time() - seconds)
    print(f"deleted {deleted} run(s) and {pruned} unreferenced blob(s)", file=sys.stderr)


def doctor(as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False) -> None:
    """Check .orch/: database integrity, blob hashes, lost results, file modes; repair.

    \b
    Examples:
      orch doctor
      orch doctor --json
    """
    from .doctor import diagnose

    home = project_home()
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


@limit_app.command("set", context_settings={"ignore_unknown_options": True})
def limit_set(
    tag: Annotated[str, typer.Argument(help="A task tag, or a name for concurrency().")],
    n: Annotated[int, typer.Argument(metavar="N", help="How many slots (1 or more).")],
    per_second: Annotated[
        bool,
        typer.Option("--per-second", help="A rate limit: at most N acquisitions per second."),
    ] = False,
) -> None:
    """Limit the task runs tagged TAG (and concurrency(TAG) blocks) to N at once.

    \b
    Examples:
      orch limit set database 2
      orch limit set api 10 --per-second 5
    """
    from .limits import check_size

    name = tag.strip()
    if not name:
        raise UsageError("a limit needs a non-empty tag")
    check_size(n)
    project_store(create=True, reap=False).set_concurrency_limit(name, n, per_second=per_second)
    unit = "acquisitions per second" if per_second else "at once"
    print(f"limit {name!r}: {n} {unit}", file=sys.stderr)


@limit_app.command("ls")
def limit_ls(as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False) -> None:
    """List limits with their slots in use and who holds them.

    \b
    Examples:
      orch limit ls
    """
    from .limits import HOST, limit_rows

    store = existing_project_store()
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
    """Remove a limit; tasks waiting for it start at once.

    \b
    Examples:
      orch limit rm database
    """
    store = existing_project_store()
    if store is None or not store.delete_concurrency_limit(tag):
        raise UsageError(f"no limit {tag!r} (see `orch limit ls`)")
    print(f"removed limit {tag!r}", file=sys.stderr)


@alert_app.command("test")
def alert_test() -> None:
    """Send a test alert through every [[alert]] entry in orch.toml; exit 1 if one fails.

    \b
    Examples:
      orch alert test
    """
    from .cli_common import command_home
    from .config import project_root
    from .notify import send_test

    home = command_home()
    sent, failed = send_test(project_root(home), lambda line: print(line, file=sys.stderr))
    if sent + failed == 0:
        print("no alerts configured (add [[alert]] entries to orch.toml)", file=sys.stderr)
    print(f"alerts: {sent} sent, {failed} failed")
    if failed:
        raise typer.Exit(1)


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
    """Save a secret: the value is read from a hidden prompt or stdin, never from arguments.

    \b
    Examples:
      orch secret set SLACK_TOKEN
      printf %s "$TOKEN" | orch secret set SLACK_TOKEN
    """
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
    """List the secrets in the secrets file and where each is read from; never their values.

    \b
    Examples:
      orch secret ls
    """
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
    """Remove a secret from the secrets file.

    \b
    Examples:
      orch secret rm SLACK_TOKEN
    """
    from .secret_store import remove_secret, secrets_path

    with _secret_input():
        removed = remove_secret(name)
    if not removed:
        raise UsageError(f"no secret {name!r} in {secrets_path()} (see `orch secret ls`)")
    print(f"removed secret {name!r}", file=sys.stderr)
