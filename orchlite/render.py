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

from .health import WINDOW_LABELS, FlowHealth, duration_label, failure_label, rate_label
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


def terminal_width(out: TextIO) -> int | None:
    """The width to fit tables in: `COLUMNS` when set, else the terminal's; None (no limit)
    when `out` is not a terminal."""
    columns = os.environ.get("COLUMNS", "")
    if columns.isdigit() and int(columns) > 0:
        return int(columns)
    if out.isatty():
        import shutil

        return shutil.get_terminal_size().columns
    return None


def table(
    headers: Sequence[str],
    rows: Sequence[Sequence[str]],
    out: TextIO,
    state_column: int = -1,
    *,
    shrink: Sequence[int] = (),
) -> None:
    """Print left-aligned columns separated by two spaces; the last column is not padded.

    Cells are shown `printable()`: control characters in them never reach the terminal.
    The columns in `shrink` are cut (ending in "…"), widest first, so that a line fits the
    `terminal_width`."""
    rows = [[printable(cell) for cell in row] for row in rows]
    widths = [len(h) for h in headers]
    for row in rows:
        for i, cell in enumerate(row):
            widths[i] = max(widths[i], len(cell))
    limit = terminal_width(out) if shrink else None
    if limit is not None:
        _fit(widths, headers, shrink, limit)
        rows = [[_cut(cell, widths[i]) for i, cell in enumerate(row)] for row in rows]
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


def _fit(widths: list[int], headers: Sequence[str], shrink: Sequence[int], limit: int) -> None:
    """Narrow the `shrink` columns of `widths`, the widest first, until a line of them fits
    `limit` or each is down to its header (at least 6)."""
    excess = sum(widths) + 2 * (len(widths) - 1) - limit
    floors = {i: max(6, len(headers[i])) for i in shrink}
    while excess > 0:
        wide = [i for i in shrink if widths[i] > floors[i]]
        if not wide:
            return
        widest = max(wide, key=lambda i: widths[i])
        widths[widest] -= 1
        excess -= 1


def _cut(cell: str, width: int) -> str:
    return cell if len(cell) <= width else cell[: width - 1] + "…"


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
    """The runs as a table; a SLOT column (the schedule slot a run was for) only when some
    row has one."""
    if not rows:
        print("no runs", file=sys.stderr)
        return
    slots = any(row.get("slot") for row in rows)
    table(
        (
            "ID",
            "FLOW",
            "STATE",
            "TRIGGER",
            *(("SLOT",) if slots else ()),
            "STARTED",
            "DURATION",
            "TASKS",
        ),
        [
            (
                row["id"][:8],
                row["flow"],
                row["state"],
                row["trigger"],
                *((when(row.get("slot")),) if slots else ()),
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


def print_health(flows: Sequence[FlowHealth], window: str, out: TextIO = sys.stdout) -> None:
    """Each flow's health over `window` as a table (the last failure's message cut to fit)."""
    if not flows:
        print(f"no runs in the last {WINDOW_LABELS[window]}", file=sys.stderr)
        return
    table(
        ("FLOW", "RUNS", "FAILED", "P50", "P95", "LATE", "SKIPPED", "LAST FAILURE"),
        [
            (
                h.flow,
                str(h.runs),
                rate_label(h),
                duration_label(h.p50, h.p50_change),
                duration_label(h.p95, h.p95_change),
                str(h.late),
                str(h.skipped),
                failure_label(h),
            )
            for h in flows
        ],
        out,
        shrink=(7, 0),
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
