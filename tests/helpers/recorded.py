"""Reading back what in-process tests recorded in their `.orch/` (see conftest's ORCH_HOME)."""

from __future__ import annotations

from orchlite.context import open_store
from orchlite.store import FlowRun, Store


def store() -> Store:
    return open_store()[0]


def last_run() -> FlowRun:
    s = store()
    return s.get_flow_run(s.resolve_run_id("last"))
