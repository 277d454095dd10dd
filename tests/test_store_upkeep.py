"""The store's cache entries, log lines, retention (`orch gc`) and the checks of `orch doctor`."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from orchlite.states import StateName
from orchlite.store import Store
from tests.helpers.store_rows import flow_run, task_run

RUN = "aa" * 16
DIGEST = "ab" * 32


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Store]:
    with Store(tmp_path / ".orch") as store:
        yield store


def test_a_cache_entry_is_saved_with_its_task_run_and_expires(store: Store) -> None:
    flow_run(store, RUN, StateName.RUNNING)
    cached = task_run(RUN, 0, ended=10.0)
    store.save_task_run(cached, [("COMPLETED", None, 10.0)], cache=("v1:a", 100.0))
    store.save_task_run(task_run(RUN, 1, task_key="u@f.py"), [], cache=("v1:b", None))
    stored = store.cached_result("v1:a", now=50.0)
    assert stored is not None and (stored.serializer, stored.data) == ("json", b"0")
    assert store.cached_result("v1:a", now=100.0) is None  # expired
    entries = store.list_cache_entries()
    assert [(e.key, e.task_run_id, e.created) for e in entries] == [
        ("v1:b", task_run(RUN, 1).id, 102.0),  # when it ended
        ("v1:a", cached.id, 10.0),
    ]
    assert all(e.result.data is None for e in store.list_cache_entries())  # never read there
    assert store.clear_cache("u@f.py") == 1
    assert store.clear_cache() == 1


def test_a_task_run_without_a_result_stores_no_cache_entry(store: Store) -> None:
    flow_run(store, RUN, StateName.RUNNING)
    failed = task_run(RUN, 0, "FAILED", result_serializer=None, result_data=None)
    store.save_task_run(failed, [("FAILED", None, 1.0)], cache=("v1:a", None))
    assert store.cached_result("v1:a") is None


def test_log_lines_are_filtered_by_task_level_and_literal_text(store: Store) -> None:
    store.write_logs(
        [
            (RUN, None, None, 1.0, 20, "orchlite.flow_runs", "flow at 50%"),
            (RUN, "t0", "t-0", 2.0, 10, "orchlite.task_runs", "debug line"),
            (RUN, "t0", "t-0", 3.0, 40, "orchlite.task_runs", "Error at 50 rows"),
            ("bb" * 16, None, None, 4.0, 20, "orchlite.flow_runs", "another run"),
        ]
    )

    def messages(**filters: Any) -> list[str]:
        return [record.message for record in store.logs(RUN, **filters)]

    assert messages() == ["flow at 50%", "debug line", "Error at 50 rows"]
    assert messages(min_level=20) == ["flow at 50%", "Error at 50 rows"]
    assert messages(task_run_id="t0") == messages(task_name="t-0") == messages()[1:]
    assert messages(flow_only=True) == ["flow at 50%"]
    assert messages(text="50%") == ["flow at 50%"]
    assert messages(text="ERROR") == ["Error at 50 rows"]
    first = store.logs(RUN)[0]
    assert messages(after_id=first.id, limit=1) == ["debug line"]


def test_gc_keeps_unfinished_runs_and_the_runs_they_retry(store: Store) -> None:
    flow_run(store, RUN, StateName.FAILED, now=1.0)
    flow_run(store, "ac" * 16, StateName.COMPLETED, parent_run_id=RUN, now=1.5)  # its subflow
    flow_run(store, "bb" * 16, StateName.COMPLETED, now=2.0)
    flow_run(store, "cc" * 16, StateName.RUNNING, retry_of=RUN, now=3.0)
    store.save_task_run(task_run("bb" * 16, 0, result_ref=DIGEST), [("COMPLETED", None, 2.0)])
    store.write_logs([("bb" * 16, None, None, 2.0, 20, "x", "gone with its run")])
    assert store.delete_runs_before(10.0) == 1
    assert sorted(r.id for r in store.list_flow_runs()) == ["aa" * 16, "ac" * 16, "cc" * 16]
    assert store.logs("bb" * 16) == [] and store.history("bb" * 16) == []
    assert store.referenced_blobs() == set()
    store.set_flow_run_state("cc" * 16, StateName.COMPLETED)
    assert store.delete_runs_before(10.0) == 3


def test_blob_references_name_each_row_that_holds_one(store: Store) -> None:
    flow_run(store, RUN, StateName.RUNNING)
    store.save_task_run(
        task_run(RUN, 3, result_ref=DIGEST, result_data=None),
        [("COMPLETED", None, 1.0)],
        cache=("v1:k", None),
    )
    assert sorted(store.blob_references()) == [
        ("cache entry", "v1:k", DIGEST),
        ("task run", f"{RUN}#3", DIGEST),
    ]
    assert store.referenced_blobs() == {DIGEST}
    assert store.delete_cache_entries_for_blobs([DIGEST, "cd" * 32]) == 1
    assert store.integrity_check() == "ok" and store.integrity_problems() == []


def test_doctor_ends_the_task_runs_an_ended_flow_run_left_unfinished(store: Store) -> None:
    flow_run(store, RUN, StateName.RUNNING)
    store.save_task_run(task_run(RUN, 0, "RUNNING"), [("RUNNING", None, 1.0)])
    with store.transaction() as conn:  # as an older orchlite left a crashed run
        conn.execute("UPDATE flow_runs SET state = 'CRASHED', ended = 2.0 WHERE id = ?", (RUN,))
    assert store.orphaned_task_runs() == [(RUN, 0, "t-0", "RUNNING", "CRASHED")]
    assert store.end_orphaned_task_runs([RUN, RUN, "bb" * 16], now=3.0) == 1
    assert store.orphaned_task_runs() == []
    ended = store.task_runs(RUN)[0]
    assert (ended.state, ended.ended) == ("CRASHED", 3.0)
    assert "ended by orch doctor" in (ended.state_message or "")
