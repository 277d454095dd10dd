"""What started the current flow run, as Prefect's `prefect.runtime.deployment`: `from
orchlite.runtime import deployment`, then `deployment.name`, ... (looked up as they are read).

orchlite has no deployments: a flow runs on its own when the daemon fires one of its
schedules or triggers (`orch daemon`, `orch backfill`), so here the "deployment" of a run is
the schedule or trigger that started it. A subflow reports its outermost run's, and a retry
(by the daemon or `orch retry`) the one of the run it retries. A run started any other way
(`orch run`, `python flow.py`, the TUI) has none: every attribute is empty (None or `{}`), as
outside a run. Attributes:

- `name`: the schedule's `name`; for a schedule without one, and for a trigger, the line
  `orch schedules` describes it with ("cron 0 6 * * * (UTC)", "files data/*.csv ...");
- `id`: the key the daemon claims the schedule's or trigger's runs under (stable while the
  declaration does not change);
- `flow_run_id`: the id of the outermost flow run (the one the schedule or trigger started,
  or the retry of it);
- `parameters`: that run's parameters;
- `version`: always None (schedules have no versions).

The name is recorded with the claim of the run's slot, so it stays right after the
declaration changes, and a schedule served with `flow.serve(name=...)` gives that name. For
claims recorded before names were (schema 13), the key is looked up among the project's
current declarations.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import Any

from ..context import FlowRunContext
from ..errors import OrchError
from ..store import Store
from ._attributes import lookup, recorded_flow_context


def __getattr__(name: str) -> Any:
    return lookup(__name__, FIELDS, name)


def __dir__() -> list[str]:
    return sorted(FIELDS)


@dataclass(frozen=True)
class Claim:
    """The schedule or trigger a run was claimed under."""

    key: str
    name: str | None


def claimed_by(ctx: FlowRunContext) -> Claim | None:
    """The schedule or trigger that started the run of `ctx` itself (not its parent's)."""
    return _claim(ctx.store, ctx.run_id)


@functools.lru_cache(maxsize=64)
def _claim(store: Store, run_id: str) -> Claim | None:
    claims = _claims(store, run_id)
    if not claims:
        return None
    for key, name in claims:
        if name is not None:
            return Claim(key, name)
    names = _declared_names(store)  # claims recorded before their names were
    for key, _name in claims:
        if key in names:
            return Claim(key, names[key])
    return Claim(claims[-1][0], None)


def _claims(store: Store, run_id: str) -> list[tuple[str, str | None]]:
    """(key, name) of the claims of the run and of the runs it retries, newest first."""
    keys: list[tuple[str, str | None]] = []
    current: str | None = run_id
    seen: set[str] = set()
    while current is not None and current not in seen:
        seen.add(current)
        claim = store.slot_claim(current)
        if claim is not None:
            keys.append(claim)
        try:
            current = store.get_flow_run(current).retry_of
        except OrchError:  # deleted by `orch gc`
            break
    return keys


def _declared_names(store: Store) -> dict[str, str]:
    """Each key of the project's schedules and triggers, and the name `deployment.name` gives."""
    from ..config import project_root
    from ..project_model import Project
    from ..schedules import describe

    project = Project(project_root(store.home))
    names = {e.key: e.schedule.name or describe(e.schedule) for e in project.schedules}
    names.update({e.key: e.trigger.describe() for e in project.triggers})
    return names


def _outermost() -> FlowRunContext | None:
    ctx = recorded_flow_context()
    while ctx is not None and ctx.parent is not None:
        ctx = ctx.parent
    return ctx


def _current_claim() -> tuple[FlowRunContext, Claim] | None:
    ctx = _outermost()
    if ctx is None:
        return None
    claim = claimed_by(ctx)
    return None if claim is None else (ctx, claim)


def get_id() -> str | None:
    found = _current_claim()
    return None if found is None else found[1].key


def get_name() -> str | None:
    found = _current_claim()
    return None if found is None else found[1].name


def get_flow_run_id() -> str | None:
    found = _current_claim()
    return None if found is None else found[0].run_id


def get_parameters() -> dict[str, Any]:
    found = _current_claim()
    return {} if found is None else dict(found[0].parameters)


def get_version() -> str | None:
    return None


FIELDS = {
    "id": get_id,
    "name": get_name,
    "flow_run_id": get_flow_run_id,
    "parameters": get_parameters,
    "version": get_version,
}
