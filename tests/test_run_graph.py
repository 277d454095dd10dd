"""`orchlite.run_graph`: task runs and subflow runs as a layered dependency graph."""

from __future__ import annotations

import json
import time

from orchlite.run_graph import build_graph
from orchlite.store import FlowRun, TaskRun
from tests.helpers.store_rows import flow_run_record, task_run

RUN = "a" * 32


def call(position: int, task: str, state: str = "COMPLETED", upstream: object = ()) -> TaskRun:
    """Task run `position` of `RUN`, a call of `task`, waiting for `upstream` positions."""
    return task_run(
        RUN,
        position,
        state,
        task_key=f"{task}@flows.py",
        name=f"{task}-{position}",
        upstream=json.dumps(list(upstream)) if not isinstance(upstream, str) else upstream,
    )


def subflow(position: int, state: str = "COMPLETED") -> FlowRun:
    return flow_run_record(
        id=f"{position:032x}",
        flow_name="report",
        name=f"report-{position}",
        target=None,
        state=state,
        state_message=None,
        trigger="subflow",
        parent_run_id=RUN,
        parent_position=position,
        created=200.0,
        started=200.0,
        ended=201.0,
    )


def shape(tasks: list[TaskRun]) -> list[tuple[str, int, str]]:
    return [(n.id, n.layer, n.name) for n in build_graph(tasks).nodes]


def test_a_map_collapses_to_one_node_with_counts_and_its_worst_state() -> None:
    tasks = [call(0, "extract")]
    tasks += [
        call(p, "double", "FAILED" if p in (3, 7) else "COMPLETED", [0]) for p in range(1, 101)
    ]
    tasks.append(call(101, "total", "FAILED", range(1, 101)))
    graph = build_graph(tasks)
    assert [(n.id, n.kind, n.layer) for n in graph.nodes] == [
        ("t0", "task", 0),
        ("m1", "map", 1),
        ("t101", "task", 2),
    ]
    double = graph.nodes[1]
    assert (
        double.name == "double" and double.size == 100 and (double.first, double.last) == (1, 100)
    )
    assert double.counts == {"COMPLETED": 98, "FAILED": 2} and double.state == "FAILED"
    assert double.run_id == tasks[1].id
    assert double.focus == 3  # its first task run that failed: what opening it shows
    assert build_graph(tasks[1:3]).nodes[0].focus == 1  # none failed: its first
    assert [(e.source, e.target, e.count) for e in graph.edges] == [
        ("t0", "m1", 100),
        ("m1", "t101", 100),
    ]
    assert graph.task_runs == 102 and graph.layers == 3
    assert [n.name for n in graph.upstream("m1")] == ["extract-0"]
    assert [n.name for n in graph.downstream("m1")] == ["total-101"]


def test_a_live_map_group_is_running_while_any_of_it_runs_and_pending_before() -> None:
    going = [call(0, "t", "COMPLETED"), call(1, "t", "RUNNING"), call(2, "t", "FAILED")]
    assert build_graph(going).nodes[0].state == "RUNNING"
    assert build_graph([going[0], call(1, "t", "PENDING")]).nodes[0].state == "PENDING"
    group = build_graph(going).nodes[0]
    assert group.started == 100.0 and group.ended is None  # its last task run still going
    done = build_graph([call(0, "t"), call(1, "t", "CACHED")]).nodes[0]
    assert done.state == "COMPLETED" and (done.started, done.ended) == (100.0, 102.0)


def test_a_chain_of_one_task_is_not_collapsed_and_each_call_is_a_layer() -> None:
    tasks = [call(0, "inc"), call(1, "inc", upstream=[0]), call(2, "inc", upstream=[1])]
    assert shape(tasks) == [("t0", 0, "inc-0"), ("t1", 1, "inc-1"), ("t2", 2, "inc-2")]


def test_calls_of_one_task_split_by_another_call_or_a_wait_inside_the_group() -> None:
    tasks = [call(0, "a"), call(1, "a"), call(2, "b"), call(3, "a"), call(4, "a", upstream=[3])]
    assert [n.id for n in build_graph(tasks).nodes] == ["m0", "t2", "t3", "t4"]


def test_a_map_over_a_map_is_one_edge_counting_each_pair() -> None:
    tasks = [call(p, "double") for p in range(5)] + [
        call(p, "inc", upstream=[p - 5]) for p in range(5, 10)
    ]
    graph = build_graph(tasks)
    assert [n.id for n in graph.nodes] == ["m0", "m5"]
    assert [(e.source, e.target, e.count) for e in graph.edges] == [("m0", "m5", 5)]


def test_layers_follow_the_longest_path() -> None:
    # 0 → 1 → 2 → 4 and 0 → 3 → 4: 3 is one layer down, 4 below the longest path.
    tasks = [
        call(0, "a"),
        call(1, "b", upstream=[0]),
        call(2, "c", upstream=[1]),
        call(3, "d", upstream=[0]),
        call(4, "e", upstream=[2, 3]),
    ]
    assert shape(tasks) == [
        ("t0", 0, "a-0"),
        ("t1", 1, "b-1"),
        ("t3", 1, "d-3"),
        ("t2", 2, "c-2"),
        ("t4", 3, "e-4"),
    ]


def test_subflows_are_nodes_at_their_call_positions() -> None:
    tasks = [call(0, "a"), call(2, "b", upstream=[0])]
    graph = build_graph(tasks, [subflow(1, "FAILED")])
    assert [(n.id, n.kind, n.layer) for n in graph.nodes] == [
        ("t0", "task", 0),
        ("s1", "subflow", 0),
        ("t2", "task", 1),
    ]
    node = graph.nodes[1]
    assert (node.run_id, node.flow_name, node.state) == (f"{1:032x}", "report", "FAILED")
    assert node.view() == {
        "id": "s1",
        "kind": "subflow",
        "name": "report-1",
        "state": "FAILED",
        "layer": 0,
        "positions": [1, 1],
        "size": 1,
        "counts": {"FAILED": 1},
        "run": f"{1:032x}",
        "flow": "report",
    }


def test_unknown_forward_and_unreadable_upstream_positions_are_left_out() -> None:
    tasks = [
        call(0, "a", upstream=[99]),  # no such task run (one recorded before the store)
        call(1, "b", upstream="not json"),
        call(2, "c", upstream=[3]),  # forward: never recorded so, not trusted for layers
        call(3, "d", upstream=[0]),
    ]
    graph = build_graph(tasks)
    assert [(n.id, n.layer) for n in graph.nodes] == [("t0", 0), ("t1", 0), ("t2", 0), ("t3", 1)]
    assert [(e.source, e.target) for e in graph.edges] == [("t0", "t3")]


def test_the_json_view_lists_nodes_and_edges() -> None:
    graph = build_graph([call(0, "a"), call(1, "b", upstream=[0])])
    view = graph.view()
    assert view["edges"] == [{"from": "t0", "to": "t1", "count": 1}]
    assert view["nodes"][1] == {
        "id": "t1",
        "kind": "task",
        "name": "b-1",
        "state": "COMPLETED",
        "layer": 1,
        "positions": [1, 1],
        "size": 1,
        "counts": {"COMPLETED": 1},
        "task_run": f"{1:032x}",  # as `store_rows.task_run` makes ids
        "task_key": "b@flows.py",
    }
    assert build_graph([]).view() == {"nodes": [], "edges": []}


def test_ten_thousand_mapped_task_runs_are_a_few_nodes_built_at_once() -> None:
    tasks = [call(0, "extract")] + [call(p, "double", upstream=[0]) for p in range(1, 10_001)]
    tasks.append(call(10_001, "total", upstream=range(1, 10_001)))
    started = time.perf_counter()
    graph = build_graph(tasks)
    assert time.perf_counter() - started < 1.0  # ~20 ms here; the TUI builds it per change
    assert [n.id for n in graph.nodes] == ["t0", "m1", "t10001"]
    assert graph.nodes[1].size == 10_000
