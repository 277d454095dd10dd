"""Artifacts, as Prefect 3's `prefect.artifacts`: rich results a run publishes for people to
read (a markdown report, a table, a link, a progress bar, an image), kept in `.orch/`.

    from orchlite.artifacts import create_markdown_artifact, create_table_artifact

    create_markdown_artifact("# Sales\\nAll regions loaded.", key="sales-report")
    create_table_artifact([{"region": "eu", "rows": 120}], key="sales-rows")

Each call inside a run is attached to that flow run (and task run); `orch show RUN` and the
TUI's run detail list them. A `key` (lowercase letters, digits and `-`) makes artifacts
versioned: every call with the key adds a version, `orch artifacts` lists the newest
version of each key and `orch artifacts KEY` all of them. The content is stored as JSON,
with known secret values masked like everything else recorded. Each function returns the
new artifact's id (a UUID); `update_progress_artifact(id, progress)` moves a progress bar.
"""

from __future__ import annotations

import json
import math
import re
import time
import uuid
from typing import Any

from .context import current_store
from .errors import UsageError

_KEY = re.compile(r"[a-z0-9-]+")
TYPES = ("markdown", "table", "link", "progress", "image")


def create_markdown_artifact(
    markdown: str, key: str | None = None, description: str | None = None
) -> uuid.UUID:
    """A markdown document (shown rendered in the TUI)."""
    return _create("markdown", _text("markdown", markdown), key, description)


def create_table_artifact(
    table: dict[str, list[Any]] | list[dict[str, Any]] | list[list[Any]],
    key: str | None = None,
    description: str | None = None,
) -> uuid.UUID:
    """A table: a dict of columns, a list of row dicts, or a list of row lists. NaN values
    are stored as null, as Prefect does."""
    if not isinstance(table, (dict, list)):
        raise UsageError(
            f"create_table_artifact: expected a dict of columns or a list of rows, not"
            f" {type(table).__name__}"
        )
    return _create("table", _without_nan(table), key, description)


def create_link_artifact(
    link: str, link_text: str | None = None, key: str | None = None, description: str | None = None
) -> uuid.UUID:
    """A link, with the text to show for it."""
    data = {"link": _text("link", link), "text": link_text}
    return _create("link", data, key, description)


def create_image_artifact(
    image_url: str, key: str | None = None, description: str | None = None
) -> uuid.UUID:
    """An image, by its URL."""
    return _create("image", _text("image_url", image_url), key, description)


def create_progress_artifact(
    progress: float, key: str | None = None, description: str | None = None
) -> uuid.UUID:
    """A progress bar at `progress` percent (0 to 100)."""
    return _create("progress", _percent(progress), key, description)


def update_progress_artifact(
    artifact_id: uuid.UUID | str, progress: float, description: str | None = None
) -> uuid.UUID:
    """Move the progress bar `artifact_id` to `progress` percent."""
    data = json.dumps(_percent(progress))
    if not current_store().update_artifact(str(artifact_id), data, description):
        raise UsageError(f"no artifact {artifact_id}")
    return uuid.UUID(str(artifact_id))


# -- writing --------------------------------------------------------------------------------


def _create(kind: str, data: Any, key: str | None, description: str | None) -> uuid.UUID:
    from .context import flow_run_var, task_run_var
    from .store import Artifact

    if key is not None and (not isinstance(key, str) or not _KEY.fullmatch(key)):
        raise UsageError(f"invalid artifact key {key!r}: use lowercase letters, digits and dashes")
    if description is not None and not isinstance(description, str):
        raise UsageError("an artifact's description must be a string")
    flow_ctx, task_ctx = flow_run_var.get(), task_run_var.get()
    artifact_id = uuid.uuid4()
    now = time.time()
    try:
        text = json.dumps(data, allow_nan=False, default=str)
    except ValueError as exc:
        raise UsageError(f"cannot store the {kind} artifact: {exc}") from None
    current_store().add_artifact(
        Artifact(
            id=str(artifact_id),
            key=key,
            type=kind,
            data=text,
            description=description,
            flow_run_id=flow_ctx.run_id if flow_ctx is not None else None,
            task_run_id=task_ctx.task_run.id if task_ctx is not None else None,
            created=now,
            updated=now,
        )
    )
    return artifact_id


def _text(what: str, value: Any) -> str:
    if not isinstance(value, str):
        raise UsageError(f"{what} must be a string, not {type(value).__name__}")
    return value


def _percent(progress: Any) -> float:
    if isinstance(progress, bool) or not isinstance(progress, (int, float)):
        raise UsageError(f"progress must be a number from 0 to 100, not {progress!r}")
    if not 0 <= progress <= 100:
        raise UsageError(f"progress must be from 0 to 100, not {progress:g}")
    return float(progress)


def _without_nan(value: Any) -> Any:
    if isinstance(value, float) and math.isnan(value):
        return None
    if isinstance(value, dict):
        return {k: _without_nan(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_without_nan(v) for v in value]
    return value
