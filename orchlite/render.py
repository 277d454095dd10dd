"""Terminal rendering of views: aligned columns like `docker ps`, coloured states on a TTY.

Tables are formatted by hand rather than with rich: `orch runs` must answer in well under
0.2 s, and importing and laying out rich tables alone costs ~80 ms.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Sequence
from datetime import datetime
from typing import Any, TextIO

from .views import format_duration, printable

_COLOURS = {
    "COMPLETED": "32",
    "CACHED": "36",
    "FAILED": "31",
    "CRASHED": "1;31",
    "TIMED_OUT": "31",
    "CANCELLED": "33",
    "CANCELLING": "33",
    "RUNNING": "34",
    "RETRYING": "35",
    "LATE": "33",
}


def _colour(out: TextIO) -> bool:
    """Colour only on a terminal that has it and a user who wants it (no-color.org)."""
    if os.environ.get("NO_COLOR") or os.environ.get("TERM") == "dumb":
        return False
    return out.isatty()


def state_text(state: str, out: TextIO) -> str:
    code = _COLOURS.get(state)
    return f"\x1b[{code}m{state}\x1b[0m" if code and _colour(out) else state


def table(
    headers: Sequence[str], rows: Sequence[Sequence[str]], out: TextIO, state_column: int = -1
) -> None:
    """Print left-aligned columns separated by two spaces; the last column is not padded.

    Cells are shown `printable()`: control characters in them never reach the terminal."""
    rows = [[printable(cell) for cell in row] for row in rows]
    widths = [len(h) for h in headers]
    for row in rows:
        for i, cell in enumerate(row):
            widths[i] = max(widths[i], len(cell))
    last = len(headers) - 1

    def line(cells: Sequence[str]) -> str:
        parts = []
        for i, cell in enumerate(cells):
            shown = state_text(cell, out) if i == state_column else cell
            parts.append(shown if i == last else shown + " " * (widths[i] - len(cell)))
        return "  ".join(parts).rstrip()

    out.write(line(headers) + "\n")
    for row in rows:
        out.write(line(row) + "\n")


def when(iso_time: str | None) -> str:
    if not iso_time:
        return "-"
    return datetime.fromisoformat(iso_time).astimezone().strftime("%Y-%m-%d %H:%M:%S")


def task_counts(counts: dict[str, int]) -> str:
    total = sum(counts.values())
    if not total:
        return "-"
    ok = counts.get("COMPLETED", 0) + counts.get("CACHED", 0)
    others = [f"{n} {s.lower()}" for s, n in sorted(counts.items()) if s not in ("COMPLETED",)]
    return f"{ok}/{total}" + (f" ({', '.join(others)})" if others else "")


def print_runs(rows: list[dict[str, Any]], out: TextIO = sys.stdout) -> None:
    if not rows:
        print("no runs", file=sys.stderr)
        return
    table(
        ("ID", "FLOW", "STATE", "TRIGGER", "STARTED", "DURATION", "TASKS"),
        [
            (
                row["id"][:8],
                row["flow"],
                row["state"],
                row["trigger"],
                when(row["started"] or row["created"]),
                format_duration(row["duration"]),
                task_counts(row["task_counts"]),
            )
            for row in rows
        ],
        out,
        state_column=2,
    )


def print_run(detail: dict[str, Any], out: TextIO = sys.stdout) -> None:
    params = ", ".join(f"{k}={v!r}" for k, v in detail["parameters"].items()) or "-"
    message = f"  {printable(detail['message'])}" if detail["message"] else ""
    fields = [
        ("run", printable(f"{detail['id']}  ({detail['name']})")),
        (
            "flow",
            printable(detail["flow"] + (f"  [{detail['target']}]" if detail["target"] else "")),
        ),
        ("state", state_text(detail["state"], out) + message),
        ("trigger", detail["trigger"]),
        ("retry of", detail["retry_of"]),
        ("parent", detail["parent"]),
        ("started", when(detail["started"])),
        ("duration", format_duration(detail["duration"])),
        ("parameters", printable(params)),
        ("tags", printable(", ".join(detail.get("tags", [])))),
        ("result", printable(" ".join((detail["result"] or "").split()))),
    ]
    for label, value in fields:
        if value:
            out.write(f"{label + ':':<12}{value}\n")
    if detail["tasks"]:
        out.write("\n")
        table(
            ("#", "TASK", "STATE", "ATTEMPTS", "DURATION", "CACHED", "ERROR / MESSAGE"),
            [
                (
                    str(task["position"]),
                    task["name"],
                    task["state"],
                    str(task["attempts"]),
                    format_duration(task["duration"]),
                    "yes" if task["cached"] else "",
                    (task["error"] or task["message"] or "").splitlines()[0]
                    if (task["error"] or task["message"])
                    else "",
                )
                for task in detail["tasks"]
            ],
            out,
            state_column=2,
        )
    if detail.get("artifacts"):
        out.write("\n")
        table(
            ("ARTIFACT", "TYPE", "TASK", "CONTENT"),
            [
                (a["key"] or a["id"][:8], a["type"], a["task"] or "-", artifact_summary(a))
                for a in detail["artifacts"]
            ],
            out,
        )
    if detail["children"]:
        out.write("\nchild runs:\n")
        for child in detail["children"]:
            flow = printable(child["flow"])
            out.write(f"  {child['id'][:8]}  {flow}  {state_text(child['state'], out)}\n")
    if detail["error"]:
        out.write("\n" + printable(detail["error"]) + "\n")


def print_flows(rows: list[dict[str, Any]], out: TextIO = sys.stdout) -> None:
    if not rows:
        print("no flows found", file=sys.stderr)
        return
    table(
        ("FLOW", "TARGET", "PARAMETERS"),
        [
            (
                row["name"],
                row["target"],
                ", ".join(
                    p["name"] + (f"={p['default']}" if p["default"] is not None else "")
                    for p in row["parameters"]
                )
                or "-",
            )
            for row in rows
        ],
        out,
    )


def print_cache(rows: list[dict[str, Any]], out: TextIO = sys.stdout) -> None:
    if not rows:
        print("cache is empty", file=sys.stderr)
        return
    table(
        ("TASK", "KEY", "CREATED", "EXPIRES"),
        [(r["task"], r["key"][-16:], when(r["created"]), when(r["expires"])) for r in rows],
        out,
    )


def artifact_summary(view: dict[str, Any], width: int = 60) -> str:
    """One line of an artifact's content (as `views.artifact_view` gives it), for tables."""
    data, kind = view["data"], view["type"]
    if kind == "progress":
        text = f"{data:g}%"
    elif kind == "link":
        text = f"{data['text']} <{data['link']}>" if data["text"] else data["link"]
    elif kind == "table":
        rows = data if isinstance(data, list) else list(zip(*data.values(), strict=False))
        text = f"{len(rows)} row(s)"
    else:
        text = " ".join(str(data).split())
    return text if len(text) <= width else text[: width - 1] + "…"
