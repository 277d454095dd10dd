"""`orch variable set/get/ls/rm`: the project's variables (`orchlite.variables`) from the
shell. A value given on the command line is read as JSON when it parses (`42`, `true`,
`'{"a": 1}'`) and as a string otherwise, as `prefect variable set` does."""

from __future__ import annotations

import json
import sys
from typing import Annotated

import typer

from .errors import UsageError

variable_app = typer.Typer(
    help="Named JSON values for flows to read (orchlite.variables.Variable).",
    no_args_is_help=True,
)


@variable_app.command("set")
def variable_set(
    name: Annotated[str, typer.Argument(help="Lowercase letters, digits, _ and -.")],
    value: Annotated[str, typer.Argument(help="JSON, or else taken as a string.")],
    overwrite: Annotated[
        bool, typer.Option("--overwrite", help="Replace the value if the variable exists.")
    ] = False,
    tag: Annotated[
        list[str] | None, typer.Option("--tag", help="A tag for the variable (repeatable).")
    ] = None,
) -> None:
    """Set a variable: `orch variable set batch_size 500`."""
    from .cli_common import project_store
    from .variables import check_name, set_in

    try:
        parsed = json.loads(value)
    except ValueError:
        parsed = value
    check_name(name)  # before a store is created for it
    try:
        set_in(project_store(create=True, reap=False), name, parsed, tag, overwrite)
    except ValueError as exc:
        raise UsageError(f"variable {name!r} exists: pass --overwrite to replace it") from exc
    print(f"variable {name!r} set", file=sys.stderr)


@variable_app.command("get")
def variable_get(
    name: Annotated[str, typer.Argument(help="The variable to print.")],
) -> None:
    """Print a variable's value as JSON (a string value prints as itself).

    \b
    Examples:
      orch variable get batch_size
    """
    from .cli_common import existing_project_store
    from .variables import check_name, get_in

    check_name(name)
    missing = object()
    value = get_in(existing_project_store(), name, default=missing)
    if value is missing:
        raise UsageError(f"no variable {name!r} (see `orch variable ls`)")
    print(value if isinstance(value, str) else json.dumps(value))


@variable_app.command("ls")
def variable_ls(
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """List the variables with their values and tags.

    \b
    Examples:
      orch variable ls --json
    """
    from .cli_common import existing_project_store
    from .views import variable_list

    rows = variable_list(existing_project_store())
    if as_json:
        print(json.dumps(rows, indent=2))
        return
    if not rows:
        print("no variables", file=sys.stderr)
        return
    from .render import table

    table(
        ("NAME", "VALUE", "TAGS"),
        [(r["name"], _short(json.dumps(r["value"])), ", ".join(r["tags"]) or "-") for r in rows],
        sys.stdout,
    )


@variable_app.command("rm")
def variable_rm(name: Annotated[str, typer.Argument(help="The variable to remove.")]) -> None:
    """Remove a variable (`Variable.unset`).

    \b
    Examples:
      orch variable rm batch_size
    """
    from .cli_common import existing_project_store
    from .variables import unset_in

    if not unset_in(existing_project_store(), name):
        raise UsageError(f"no variable {name!r} (see `orch variable ls`)")
    print(f"removed variable {name!r}", file=sys.stderr)


def _short(text: str, width: int = 60) -> str:
    return text if len(text) <= width else text[: width - 1] + "…"
