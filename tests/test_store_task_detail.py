"""`Store.task_run_detail`: one task run with its attempts, neighbours and cache entry."""

from __future__ import annotations

from pathlib import Path

from orchlite.states import StateName
from orchlite.store import Store, TaskRunSave
from orchlite.store.task_detail import LINKS_SHOWN
from tests.helpers.store_rows import flow_run, task_run

RUN = "e" * 32


def test_attempts_upstream_downstream_and_an_expired_cache_entry(orch_home: Path) -> None:
    store = Store(orch_home)
    flow_run(store, RUN, StateName.RUNNING)
    store.save_task_run(task_run(RUN, 0, result_preview="[1, 2]"))
    retried = task_run(RUN, 1, "FAILED", upstream="[0]", attempts=2, cache_key="k1")
    store.save_task_run(
        retried,
        [
            ("PENDING", None, 100.0),
            ("RUNNING", None, 100.0),
            ("RETRYING", "attempt 1 failed (ValueError: x); retrying in 1 s", 100.5),
            ("RUNNING", "attempt 2", 101.5),
            ("FAILED", "ValueError: x", 102.0),
        ],
    )
    waiting = [task_run(RUN, p, upstream=f"[0, 1, {p - 1}]") for p in range(2, LINKS_SHOWN + 7)]
    store.save_task_runs([TaskRunSave(run) for run in waiting])
    cached = task_run(RUN, 1000, cache_key="k2")
    store.save_task_run(cached, cache=("k2", 50.0))  # expired long ago: still shown

    detail = store.task_run_detail(RUN, 1)
    assert detail is not None
    assert [(a.number, a.state, a.started, a.ended) for a in detail.attempts] == [
        (1, "RETRYING", 100.0, 100.5),
        (2, "FAILED", 101.5, 102.0),
    ]
    assert detail.attempts[0].message == "attempt 1 failed (ValueError: x); retrying in 1 s"
    assert [t.position for t in detail.upstream] == [0]
    assert detail.upstream[0].result_preview == "[1, 2]"
    assert detail.upstream[0].result_data is None  # previews only
    assert detail.downstream_count == LINKS_SHOWN + 5
    assert [t.position for t in detail.downstream] == list(range(2, LINKS_SHOWN + 2))
    assert detail.cache_entry is None  # a key, but no entry under it

    entry = store.task_run_detail(RUN, 1000)
    assert entry is not None and entry.cache_entry is not None
    assert entry.cache_entry.expires == 50.0 and entry.cache_entry.task_run_id == cached.id
    assert entry.cache_entry.result.data is None
    assert entry.attempts == []  # recorded without running
    assert store.task_run_detail(RUN, 5000) is None
    assert store.task_run_detail("f" * 32, 0) is None
    store.close()
