"""`orch artifacts [KEY]`: the newest version of each artifact key, or every version of one
(`orchlite.artifacts`)."""

from __future__ import annotations

import json
import sys
from typing import Annotated

import typer

from .errors import UsageError


def artifacts(
    key: Annotated[
        str | None, typer.Argument(help="Show every version of this key, newest first.")
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
    limit: Annotated[int, typer.Option("--limit", "-n", help="At most this many.", min=1)] = 100,
) -> None:
    """List artifacts: the newest version of each key, or every version of KEY.

    \b
    Examples:
      orch artifacts
      orch artifacts sales-report
    """
    from .cli_common import existing_project_store
    from .views import artifact_view

    store = existing_project_store()
    found = []
    if store is not None:
        if key is None:
            found = store.artifacts(latest_per_key=True, limit=limit)
        else:
            found = store.artifacts(key=key, limit=limit)
    if key is not None and not found:
        raise UsageError(f"no artifact with key {key!r} (see `orch artifacts`)")
    views = [artifact_view(a) for a in found]
    if as_json:
        print(json.dumps(views, indent=2))
        return
    if not views:
        print("no keyed artifacts", file=sys.stderr)
        return
    from .render import artifact_summary, table, when

    table(
        ("KEY", "TYPE", "RUN", "CREATED", "CONTENT"),
        [
            (
                v["key"] or "-",
                v["type"],
                (v["flow_run"] or "-")[:8],
                when(v["created"]),
                artifact_summary(v),
            )
            for v in views
        ],
        sys.stdout,
    )
