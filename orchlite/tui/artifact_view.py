"""A run's artifacts as rich renderables: markdown rendered, tables as tables, a progress bar
as a bar, links and images as links."""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

from rich.console import Group, RenderableType
from rich.markdown import Markdown
from rich.progress_bar import ProgressBar
from rich.table import Table
from rich.text import Text

from ..store import Artifact
from ..views import printable


def render_artifacts(artifacts: Sequence[Artifact], task_names: dict[str, str]) -> Group:
    parts: list[RenderableType] = []
    for artifact in artifacts:
        title = Text(printable(artifact.key or artifact.id[:8]), style="bold")
        title.append(f"  {artifact.type}", style="dim")
        if artifact.task_run_id in task_names:
            title.append(f"  from {printable(task_names[artifact.task_run_id])}", style="dim")
        if artifact.description:
            title.append(f"  {printable(artifact.description)}", style="italic")
        parts += [title, _content(artifact.type, json.loads(artifact.data)), Text("")]
    return Group(*parts)


def _content(kind: str, data: Any) -> RenderableType:
    if kind == "markdown":
        return Markdown(printable(str(data)))
    if kind == "table":
        return _table(data)
    if kind == "progress":
        bar = Table.grid(padding=(0, 1))
        bar.add_row(ProgressBar(total=100, completed=float(data), width=40), f"{data:g}%")
        return bar
    if kind == "link":
        link = printable(data["link"])
        return Text(printable(data.get("text") or link), style=f"link {link} underline")
    if kind == "image":
        return Text(printable(str(data)), style=f"link {printable(str(data))} underline")
    return Text(json.dumps(data))  # JSON escapes control characters itself


def _table(data: Any) -> RenderableType:
    table = Table(show_edge=False, header_style="bold")
    if isinstance(data, dict):
        columns = [str(c) for c in data]
        rows = list(zip(*data.values(), strict=False))
    elif data and all(isinstance(row, dict) for row in data):
        columns = list(dict.fromkeys(str(k) for row in data for k in row))
        rows = [tuple(row.get(c) for c in columns) for row in data]
    else:
        width = max((len(row) for row in data), default=0)
        columns = [str(i) for i in range(width)]
        rows = [tuple(row) for row in data]
    for column in columns:
        table.add_column(Text(printable(column)))
    for row in rows:
        table.add_row(*(Text("" if cell is None else printable(str(cell))) for cell in row))
    return table
