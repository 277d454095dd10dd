"""`orch resume RUN`: resume a flow run paused by `pause_flow_run`, with its input."""

from __future__ import annotations

import json
import sys
from typing import Annotated, Any

import typer

from .errors import UsageError


def resume(
    run_ref: Annotated[str, typer.Argument(metavar="RUN", help="A run id, id prefix, or 'last'.")],
    param: Annotated[
        list[str] | None,
        typer.Option("--param", "-p", help="An input field as key=value (repeatable)."),
    ] = None,
    input_json: Annotated[
        str | None, typer.Option("--input", help="The whole input as a JSON object.")
    ] = None,
) -> None:
    """Resume a paused flow run; its input model checks the -p / --input values.

    \b
    Examples:
      orch resume last
      orch resume 3f2a9c -p approved=true -p reviewer=ada
    """
    from .cli_common import existing_project_store
    from .operations import resume as resume_operation
    from .params import parse_assignments

    given: dict[str, Any] = {}
    if input_json is not None:
        try:
            given = json.loads(input_json)
        except ValueError as exc:
            raise UsageError(f"--input is not JSON: {exc}") from None
        if not isinstance(given, dict):
            raise UsageError("--input must be a JSON object")
    given.update(parse_assignments(param or []))
    store = existing_project_store()
    if store is None:
        raise UsageError("no runs recorded yet")
    run_id = store.resolve_run_id(run_ref)
    print(resume_operation(store.home, run_id, given).message, file=sys.stderr)
