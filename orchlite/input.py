"""`RunInput`, as Prefect's `prefect.input.RunInput`: the pydantic model of what a paused
flow run waits for (`pause_flow_run(wait_for_input=MyInput)`).

    class Approval(RunInput):
        approved: bool
        note: str = ""

Needs pydantic 2 (a dependency of every Prefect install; `pip install pydantic`).
"""

from __future__ import annotations

try:
    from pydantic import BaseModel, ConfigDict
except ImportError as exc:  # pragma: no cover - depends on what is installed
    raise ImportError("orchlite.input needs pydantic 2: pip install 'pydantic>=2'") from exc


class RunInput(BaseModel):
    """Base class of the inputs a paused flow run waits for; unknown keys are refused."""

    model_config = ConfigDict(extra="forbid")
