"""A run's task runs as a dependency graph, from the upstream positions each one recorded.

A task run records the call positions of the task runs whose futures it waited for (its
arguments and `wait_for`); those are the edges. Consecutive calls of one task that do not
wait on each other (a `.map()`, or a loop of calls) are one node, a map group, with the
count of its task runs in each state, so a run of 10,000 mapped task runs is a graph of a
few nodes. A subflow run is a node at its call position (a subflow's result is a value,
not a future, so nothing records an edge to it). Nodes are layered by their longest path
from a node with no upstream: a node sits one layer below the lowest of those it waits for.

Pure: records in, a `RunGraph` out; nothing here reads the store or draws.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from .states import TERMINAL, StateName
from .store import FlowRun, TaskRun, upstream_positions

NodeKind = Literal["task", "map", "subflow"]

_TERMINAL = frozenset(state.value for state in TERMINAL)
_BAD = frozenset({"CRASHED", "FAILED", "TIMED_OUT", "CANCELLED"})
_WORST_FIRST = ("CRASHED", "FAILED", "TIMED_OUT", "CANCELLED", "COMPLETED", "CACHED")
"""The state a finished map group shows: that of its worst task run."""
_NO_UPSTREAM = "[]"


@dataclass(slots=True)
class Node:
    """A task run, a map group of task runs, or a subflow run."""

    id: str
    """`t<position>` (a task run), `m<first position>` (a map group), `s<position>`
    (a subflow run): stable while a live run grows."""
    kind: NodeKind
    name: str
    """The task run's name, the task's name for a map group, the subflow run's name."""
    state: str
    first: int
    """Its call position (the first of a map group's)."""
    last: int
    """The last call position of a map group; `first` otherwise."""
    counts: dict[str, int] = field(default_factory=dict)
    """How many of its task runs are in each state (a map group's; one for a task run)."""
    started: float | None = None
    ended: float | None = None
    """When its first task run started and its last ended (None while any is going)."""
    run_id: str | None = None
    """The task run's id, a map group's first task run's, or the subflow run's."""
    focus: int = 0
    """The call position of the task run that opening the node shows: a map group's first
    that did not end well, else its first."""
    task_key: str | None = None
    """The task's key (`function@file.py`); None for a subflow run."""
    flow_name: str | None = None
    """A subflow run's flow."""
    layer: int = 0

    @property
    def size(self) -> int:
        return sum(self.counts.values()) if self.kind == "map" else 1

    def view(self) -> dict[str, Any]:
        """The node as `orch show --graph --json` prints it."""
        view: dict[str, Any] = {
            "id": self.id,
            "kind": self.kind,
            "name": self.name,
            "state": self.state,
            "layer": self.layer,
            "positions": [self.first, self.last],
            "size": self.size,
            "counts": dict(sorted(self.counts.items())),
        }
        if self.kind == "subflow":
            view["run"] = self.run_id
            view["flow"] = self.flow_name
        else:
            view["task_run"] = self.run_id
            view["task_key"] = self.task_key
        return view


@dataclass(frozen=True, slots=True)
class Edge:
    """`source` → `target`: the target's task runs waited for `count` of the source's
    (counted per pair: a map group that each waited for its own upstream counts its size)."""

    source: str
    target: str
    count: int = 1

    def view(self) -> dict[str, Any]:
        return {"from": self.source, "to": self.target, "count": self.count}


@dataclass(slots=True)
class RunGraph:
    nodes: list[Node]
    """In layer order, then call order."""
    edges: list[Edge]
    task_runs: int = 0
    """How many task runs the nodes stand for."""
    _by_id: dict[str, Node] = field(default_factory=dict, repr=False)
    _up: dict[str, list[str]] = field(default_factory=dict, repr=False)
    _down: dict[str, list[str]] = field(default_factory=dict, repr=False)

    def __post_init__(self) -> None:
        self._by_id = {node.id: node for node in self.nodes}
        for edge in self.edges:
            self._up.setdefault(edge.target, []).append(edge.source)
            self._down.setdefault(edge.source, []).append(edge.target)

    @property
    def layers(self) -> int:
        return self.nodes[-1].layer + 1 if self.nodes else 0

    def node(self, node_id: str) -> Node | None:
        return self._by_id.get(node_id)

    def upstream(self, node_id: str) -> list[Node]:
        """The nodes `node_id` waits for, in layer order."""
        return [self._by_id[i] for i in self._up.get(node_id, ())]

    def downstream(self, node_id: str) -> list[Node]:
        """The nodes that wait for `node_id`, in layer order."""
        return sorted(
            (self._by_id[i] for i in self._down.get(node_id, ())),
            key=lambda n: (n.layer, n.first),
        )

    def view(self) -> dict[str, Any]:
        """The graph as `orch show --graph --json` prints it."""
        return {
            "nodes": [node.view() for node in self.nodes],
            "edges": [edge.view() for edge in self.edges],
        }


def build_graph(tasks: Sequence[TaskRun], children: Sequence[FlowRun] = ()) -> RunGraph:
    """The graph of a flow run's task runs (any order) and subflow runs."""
    ordered = sorted(tasks, key=lambda t: t.position)
    nodes: list[Node] = []
    node_of: dict[int, Node] = {}
    """The node of each task run's position."""
    sources: dict[int, dict[int, int]] = {}
    """For each node (by its first position): the nodes it waits for, and how many of its
    task runs wait for each."""
    group: Node | None = None
    for task in ordered:
        upstream = [] if task.upstream == _NO_UPSTREAM else upstream_positions(task)
        if group is not None and _extends(group, task, upstream):
            _add_to_group(group, task)
        else:
            group = _task_node(task)
            nodes.append(group)
        node_of[task.position] = group
        waits = sources.setdefault(group.first, {})
        for position in upstream:
            source = node_of.get(position)
            if source is not None and source is not group:
                waits[source.first] = waits.get(source.first, 0) + 1
    for child in children:
        if child.parent_position is not None:
            nodes.append(_subflow_node(child))
    nodes.sort(key=lambda n: n.first)
    _layer(nodes, sources)
    nodes.sort(key=lambda n: (n.layer, n.first))
    order = {node.first: i for i, node in enumerate(nodes) if node.kind != "subflow"}
    ids = {node.first: node.id for node in nodes if node.kind != "subflow"}
    pairs = [(t, s, n) for t, waits in sources.items() for s, n in waits.items()]
    pairs.sort(key=lambda p: (order[p[0]], order[p[1]]))
    edges = [Edge(ids[source], ids[target], count) for target, source, count in pairs]
    return RunGraph(nodes, edges, len(ordered))


def _extends(group: Node, task: TaskRun, upstream: list[int]) -> bool:
    """Whether `task` is the next call of the map group (or single task run) `group`: the
    same task, at the next position, waiting for none of the group's task runs."""
    if task.position != group.last + 1 or task.task_key != group.task_key:
        return False
    return all(p < group.first for p in upstream)


def _task_node(task: TaskRun) -> Node:
    return Node(
        id=f"t{task.position}",
        kind="task",
        name=task.name,
        state=task.state,
        first=task.position,
        last=task.position,
        counts={task.state: 1},
        started=task.started,
        ended=task.ended,
        run_id=task.id,
        focus=task.position,
        task_key=task.task_key,
    )


def _add_to_group(group: Node, task: TaskRun) -> None:
    if group.kind == "task":
        group.kind, group.id = "map", f"m{group.first}"
        group.name = _task_name(group.name, group.task_key or "")
    group.last = task.position
    if task.state in _BAD and _BAD.isdisjoint(group.counts):
        group.focus = task.position
    group.counts[task.state] = group.counts.get(task.state, 0) + 1
    group.state = _group_state(group.counts)
    if task.started is not None and (group.started is None or task.started < group.started):
        group.started = task.started
    if group.ended is not None:
        group.ended = None if task.ended is None else max(group.ended, task.ended)


def _task_name(run_name: str, task_key: str) -> str:
    """The task's name, from its first task run's name (`name-0`), else from its key."""
    base, dash, n = run_name.rpartition("-")
    if dash and n.isdigit() and base:
        return base
    return task_key.partition("@")[0] or run_name


def _group_state(counts: dict[str, int]) -> str:
    """RUNNING while any task run is going (PENDING before any started), then the worst."""
    going = [state for state in counts if state not in _TERMINAL]
    if going:
        started = any(s != StateName.PENDING.value and s != "SCHEDULED" for s in going)
        return StateName.RUNNING.value if started else StateName.PENDING.value
    for state in _WORST_FIRST:
        if state in counts:
            return state
    return min(counts)


def _subflow_node(child: FlowRun) -> Node:
    position = child.parent_position or 0
    return Node(
        id=f"s{position}",
        kind="subflow",
        name=child.name,
        state=child.state,
        first=position,
        last=position,
        counts={child.state: 1},
        started=child.started,
        ended=child.ended,
        run_id=child.id,
        focus=position,
        flow_name=child.flow_name,
    )


def _layer(nodes: list[Node], sources: dict[int, dict[int, int]]) -> None:
    """Each node one layer below the lowest of those it waits for (longest path).

    `nodes` are in call order, which is a topological order: a task run can only wait for
    futures that existed when it was called. An edge that points forward (never recorded
    so) is left out of the layering rather than trusted.
    """
    seen: dict[int, int] = {}
    for node in nodes:
        if node.kind == "subflow":
            continue
        layers = [seen[s] for s in sources.get(node.first, ()) if s in seen]
        node.layer = max(layers) + 1 if layers else 0
        seen[node.first] = node.layer
