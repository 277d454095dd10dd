"""A run graph (`run_graph.RunGraph`) as text: a line per node, layer by layer, each with a
mark for its state and the nodes it waits for below it (`← extract-0, load-0`).

Lines are rich `Text`, cut to a width by their cells on screen, so the same lines serve
`orch show RUN --graph` (printed through a rich console, which leaves out colour when the
output is not a terminal or NO_COLOR is set) and the TUI's graph screen.
"""

from __future__ import annotations

from typing import TextIO

from rich.text import Text

from .run_graph import Node, RunGraph
from .store import FlowRun
from .views import format_duration, printable

MARKS: dict[str, tuple[str, str]] = {
    "COMPLETED": ("✓", "green"),
    "CACHED": ("✓", "cyan"),
    "FAILED": ("✗", "red"),
    "CRASHED": ("✗", "bright_red"),
    "TIMED_OUT": ("✗", "red"),
    "CANCELLED": ("⊘", "yellow"),
    "CANCELLING": ("⊘", "yellow"),
    "RUNNING": ("●", "blue"),
    "RETRYING": ("↻", "magenta"),
    "PAUSED": ("‖", "yellow"),
}
"""The mark and colour of each state; the others (waiting to start) are `○`."""
_WAITING = ("○", "")
_COUNT_ORDER = ("✓", "✗", "●", "↻", "‖", "○", "⊘")
WIDTH = 80
"""The width of printed lines when the output is not a terminal."""


def mark(state: str) -> Text:
    glyph, colour = MARKS.get(state, _WAITING)
    return Text(glyph, style=colour)


def node_label(node: Node) -> Text:
    """`✗ double ×100 (98 ✓ 2 ✗)`, `✓ load-0`, `✓ subflow report-1`."""
    text = Text.assemble(mark(node.state), " ")
    if node.kind == "subflow":
        text.append("subflow ", style="dim")
    text.append(printable(node.name))
    if node.kind == "map":
        text.append(f" ×{node.size} (")
        text.append_text(_counts(node.counts))
        text.append(")")
    return text


def _counts(counts: dict[str, int]) -> Text:
    """`98 ✓ 2 ✗`: the task runs by mark, each in its colour."""
    by_mark: dict[str, tuple[int, str]] = {}
    for state, n in counts.items():
        glyph, colour = MARKS.get(state, _WAITING)
        total, _ = by_mark.get(glyph, (0, colour))
        by_mark[glyph] = (total + n, colour)
    parts = [
        Text(f"{by_mark[g][0]} {g}", style=by_mark[g][1]) for g in _COUNT_ORDER if g in by_mark
    ]
    return Text(" ").join(parts)


def node_duration(node: Node, now: float) -> str:
    if node.started is None:
        return ""
    return format_duration(max(0.0, (node.ended if node.ended is not None else now) - node.started))


def node_line(node: Node, width: int, now: float) -> Text:
    """The node's label, and its duration at the right edge of `width` cells."""
    label = node_label(node)
    duration = node_duration(node, now)
    room = width - len(duration) - 1 if duration else width
    label.truncate(max(room, 1), overflow="ellipsis")
    if duration:
        label.pad_right(width - label.cell_len - len(duration))
        label.append(duration, style="dim")
    return label


def waits_line(graph: RunGraph, node: Node, width: int, indent: str = "    ") -> Text | None:
    """`← extract-0, load-0`: the nodes `node` waits for, cut to `width` cells."""
    upstream = graph.upstream(node.id)
    if not upstream:
        return None
    text = Text(f"{indent}← ", style="dim")
    text.append(printable(", ".join(_short_name(n) for n in upstream)), style="dim")
    text.truncate(width, overflow="ellipsis")
    return text


def _short_name(node: Node) -> str:
    return f"{node.name} ×{node.size}" if node.kind == "map" else node.name


def layer_rule(layer: int, width: int) -> Text:
    head = f"layer {layer + 1} "
    return Text(head + "─" * max(0, width - len(head)), style="dim")


def summary(graph: RunGraph) -> str:
    """`104 task runs, 1 subflow: 5 nodes in 3 layers`."""
    subflows = sum(1 for n in graph.nodes if n.kind == "subflow")
    runs = f"{graph.task_runs} task run{'' if graph.task_runs == 1 else 's'}"
    if subflows:
        runs += f", {subflows} subflow{'' if subflows == 1 else 's'}"
    nodes = len(graph.nodes)
    layers = graph.layers
    return (
        f"{runs}: {nodes} node{'' if nodes == 1 else 's'}"
        f" in {layers} layer{'' if layers == 1 else 's'}"
    )


def graph_lines(run: FlowRun, graph: RunGraph, width: int, now: float) -> list[Text]:
    """The whole graph as lines of at most `width` cells: a head naming the run, then each
    layer's nodes, each followed by what it waits for."""
    head = Text.assemble(
        (printable(f"{run.flow_name} / {run.name}"), "bold"),
        "  ",
        mark(run.state),
        f" {run.state}  ",
        (run.id[:8], "dim"),
    )
    head.truncate(width, overflow="ellipsis")
    lines = [head, Text(summary(graph), style="dim")]
    if not graph.nodes:
        lines.append(Text("no task runs", style="dim"))
    layer = -1
    for node in graph.nodes:
        if node.layer != layer:
            layer = node.layer
            lines.append(layer_rule(layer, width))
        line = node_line(node, width - 2, now)
        lines.append(Text("  ").append_text(line))
        waits = waits_line(graph, node, width)
        if waits is not None:
            lines.append(waits)
    return lines


def print_graph(
    run: FlowRun, graph: RunGraph, out: TextIO, now: float, width: int | None = None
) -> None:
    """Print the graph to `out` in `width` cells (a terminal's), or `WIDTH` when None."""
    from rich.console import Console

    width = width or WIDTH
    console = Console(file=out, width=width, highlight=False, emoji=False, markup=False)
    for line in graph_lines(run, graph, width, now):
        console.print(line, no_wrap=True, overflow="ellipsis", crop=True)
