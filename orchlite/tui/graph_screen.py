"""A run's task runs as a dependency graph, layer by layer (`orchlite.run_graph`): up and
down pick a node, enter opens a task run's detail or a subflow's run."""

from __future__ import annotations

from typing import Any, ClassVar

from rich.text import Text
from textual import on
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.widgets import OptionList, Static
from textual.widgets.option_list import Option

from ..graph_render import layer_rule, node_line, summary, waits_line
from ..run_graph import Node, RunGraph
from ..views import printable
from .header import Header
from .keys import APP_KEYS, compact_footer
from .poller import Poller
from .polling import PollingScreen
from .run_reader import GraphFollower, GraphSnapshot

LAYER_PREFIX = "layer-"
"""The ids of the (disabled) options that head each layer."""


class RunGraphScreen(PollingScreen):
    AUTO_FOCUS = "#graph"
    BINDINGS: ClassVar[list[BindingType]] = [
        *APP_KEYS,
        Binding("escape", "app.pop_screen", "Back"),
        Binding("l", "logs", "Logs"),
    ]

    def __init__(self, run_id: str) -> None:
        super().__init__()
        self.run_id = run_id
        self.graph: RunGraph | None = None
        self._shown: list[tuple[str, Text]] = []
        """The options shown: (id, prompt) each, to update only the prompts that changed."""
        self._width = 0

    def compose(self) -> ComposeResult:
        yield Header()
        yield Static(id="graph-summary")
        yield OptionList(id="graph")
        yield Static(id="graph-links")
        yield compact_footer()

    def on_mount(self) -> None:
        self.title = f"graph of run {self.run_id[:8]}"
        super().on_mount()

    def make_poller(self) -> Poller[Any]:
        return Poller(self.app.home, GraphFollower(self.run_id))  # type: ignore[attr-defined]

    def show(self, snapshot: GraphSnapshot) -> None:
        run, graph = snapshot.run, snapshot.graph
        self.graph = graph
        self.sub_title = printable(f"{run.flow_name} / {run.name}")
        head = Text.assemble((f"{run.state} ", ""), (summary(graph), "dim"))
        self.query_one("#graph-summary", Static).update(head)
        self._show_nodes()

    def on_resize(self) -> None:
        if self.graph is not None:
            self._show_nodes()

    def _show_nodes(self) -> None:
        """Replace the options when the nodes changed, else only the prompts that did."""
        graph = self.graph
        assert graph is not None
        graph_list = self.query_one("#graph", OptionList)
        width = max(20, (graph_list.size.width or self.size.width) - 2)
        now = self.app.clock()  # type: ignore[attr-defined]
        options = list(_options(graph, width, now))
        ids = [option_id for option_id, _ in options]
        if ids == [option_id for option_id, _ in self._shown]:
            for (option_id, prompt), (_, before) in zip(options, self._shown, strict=True):
                if prompt != before:
                    graph_list.replace_option_prompt(option_id, prompt)
        else:
            highlighted = self.highlighted_node
            graph_list.set_options(
                Option(prompt, id=option_id, disabled=option_id.startswith(LAYER_PREFIX))
                for option_id, prompt in options
            )
            keep = highlighted.id if highlighted is not None and highlighted.id in ids else None
            first = next((i for i in ids if not i.startswith(LAYER_PREFIX)), None)
            if keep or first:
                graph_list.highlighted = graph_list.get_option_index(keep or first or "")
        self._shown = options
        self._show_links()

    @property
    def highlighted_node(self) -> Node | None:
        graph_list = self.query_one("#graph", OptionList)
        if self.graph is None or graph_list.highlighted is None:
            return None
        option = graph_list.get_option_at_index(graph_list.highlighted)
        return self.graph.node(option.id or "")

    @on(OptionList.OptionHighlighted, "#graph")
    def _show_links(self) -> None:
        """Under the graph: what the highlighted node waits for, and what waits for it."""
        node = self.highlighted_node
        links = Text()
        if node is not None and self.graph is not None:
            width = max(20, self.size.width - 2)
            for arrow, nodes in (
                ("←", self.graph.upstream(node.id)),
                ("→", self.graph.downstream(node.id)),
            ):
                names = ", ".join(n.name for n in nodes) or "none"
                line = Text(f"{arrow} {printable(names)}", no_wrap=True, overflow="ellipsis")
                line.truncate(width, overflow="ellipsis")
                links.append_text(line).append("\n")
        self.query_one("#graph-links", Static).update(links)

    @on(OptionList.OptionSelected, "#graph")
    def _open(self, event: OptionList.OptionSelected) -> None:
        """Enter: a subflow's run, or a task run's detail (a map group's first that failed,
        else its first)."""
        node = self.graph.node(event.option.id or "") if self.graph else None
        if node is None:
            return
        if node.kind == "subflow" and node.run_id:
            self.app.open_run(node.run_id)  # type: ignore[attr-defined]
        else:
            self.app.open_task(self.run_id, node.focus)  # type: ignore[attr-defined]

    def action_logs(self) -> None:
        self.app.open_logs(self.run_id)  # type: ignore[attr-defined]


def _options(graph: RunGraph, width: int, now: float) -> list[tuple[str, Text]]:
    """(id, prompt) of each option: a rule heading each layer, then its nodes, each with
    the nodes it waits for on a second line."""
    options: list[tuple[str, Text]] = []
    layer = -1
    for node in graph.nodes:
        if node.layer != layer:
            layer = node.layer
            options.append((f"{LAYER_PREFIX}{layer}", layer_rule(layer, width)))
        prompt = node_line(node, width, now)
        waits = waits_line(graph, node, width, indent="  ")
        if waits is not None:
            prompt.append("\n").append_text(waits)
        options.append((node.id, prompt))
    return options
