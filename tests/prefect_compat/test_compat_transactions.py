"""`orchlite.transactions`, as Prefect 3's "transactional workflows" docs describe them: task
runs in a `with transaction()` block are staged as they complete and commit together at the
end of the block; a failure rolls them back (their `on_rollback` hooks run, their cache
entries are never written); a keyed transaction runs at most once; SERIALIZABLE isolation
makes concurrent transactions with one key wait for each other.
"""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

import pytest

from orchlite import flow, task
from orchlite.cache_policies import INPUTS
from orchlite.logging import setup_logging
from orchlite.transactions import (
    CommitMode,
    IsolationLevel,
    Transaction,
    get_transaction,
    transaction,
)
from tests.helpers.recorded import last_run


@pytest.fixture(autouse=True)
def home(orch_home: Path) -> Path:
    setup_logging(console=False)
    return orch_home


def test_a_failure_in_the_transaction_rolls_back_the_tasks_that_completed(
    tmp_path: Path,
) -> None:
    side_effect = tmp_path / "side-effect.txt"
    failed: list[str] = []

    @task(on_failure=[lambda t, run, state: failed.append(t.name)])
    def write_file(contents: str) -> None:
        side_effect.write_text(contents)

    @write_file.on_rollback
    def del_file(txn: Transaction) -> None:
        side_effect.unlink()

    @task
    def quality_test() -> None:
        if len(side_effect.read_text().splitlines()) < 2:
            raise ValueError("Not enough data!")

    @flow
    def pipeline(contents: str) -> None:
        with transaction():
            write_file(contents)
            quality_test()

    with pytest.raises(ValueError, match="Not enough data"):
        pipeline("hello world")
    assert not side_effect.exists()
    assert failed == []  # write_file completed: it is rolled back, and did not fail
    assert last_run().state == "FAILED"


def test_commit_hooks_run_when_the_block_ends_and_read_its_values() -> None:
    events: list[str] = []

    @task
    def write_row(n: int) -> int:
        events.append(f"ran {n}")
        return n

    @write_row.on_commit
    def confirm(txn: Transaction) -> None:
        events.append(f"commit {txn.get('table')}")

    @flow
    def pipeline() -> None:
        with transaction() as txn:
            txn.set("table", "sales")
            write_row(1)
            write_row(2)
            events.append("block done")
        events.append("after block")

    pipeline()
    assert events == [
        "ran 1",
        "ran 2",
        "block done",
        "commit sales",
        "commit sales",
        "after block",
    ]


def test_rollback_hooks_read_values_set_in_the_transaction(tmp_path: Path) -> None:
    @task
    def write_file(filename: str, contents: str) -> None:
        Path(filename).write_text(contents)

    @write_file.on_rollback
    def del_file(txn: Transaction) -> None:
        Path(txn.get("filename")).unlink()

    @task
    def quality_test(filename: str) -> None:
        raise ValueError(f"Not enough data in {filename}")

    @flow
    def pipeline(filename: str, contents: str) -> None:
        with transaction() as txn:
            txn.set("filename", filename)
            write_file(filename, contents)
            quality_test(filename)

    target = tmp_path / "out.txt"
    with pytest.raises(ValueError):
        pipeline(str(target), "hello world")
    assert not target.exists()


def test_a_keyed_transaction_runs_at_most_once() -> None:
    downloads: list[str] = []

    @task
    def download_data() -> str:
        downloads.append("x")
        return "some data"

    @flow
    def pipeline() -> str:
        with transaction(key="download-and-write-data") as txn:
            if txn.is_committed():
                return "exited early"
            download_data()
        return "wrote"

    assert pipeline() == "wrote"
    assert pipeline() == "exited early"
    assert downloads == ["x"]


def test_overwrite_runs_a_committed_keyed_transaction_again() -> None:
    @flow
    def pipeline(overwrite: bool) -> bool:
        with transaction(key="nightly", overwrite=overwrite) as txn:
            return txn.is_committed()

    assert pipeline(False) is False
    assert pipeline(False) is True
    assert pipeline(True) is False


def test_serializable_transactions_with_one_key_run_one_after_the_other() -> None:
    winners: list[str] = []
    inside = threading.Lock()
    overlaps: list[str] = []

    @task
    def write_file(contents: str) -> None:
        winners.append(contents)

    @flow
    def pipeline(transaction_key: str) -> None:
        with transaction(key=transaction_key, isolation_level=IsolationLevel.SERIALIZABLE) as txn:
            if not inside.acquire(blocking=False):
                overlaps.append(threading.current_thread().name)
                return
            try:
                if txn.is_committed():
                    return
                write_file(f"{threading.current_thread().name} is the winner!")
            finally:
                inside.release()

    threads = [
        threading.Thread(target=pipeline, name=f"Thread {i}", args=("race-key",)) for i in (1, 2)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    assert overlaps == []
    assert len(winners) == 1


def test_a_rolled_back_task_never_answers_from_the_cache() -> None:
    ran: list[int] = []

    @task(cache_policy=INPUTS)
    def load(n: int) -> int:
        ran.append(n)
        return n

    @flow
    def pipeline(fail: bool) -> None:
        with transaction():
            load(1)
            if fail:
                raise RuntimeError("quality check failed")

    with pytest.raises(RuntimeError):
        pipeline(True)
    pipeline(False)  # not answered by the rolled-back run: runs, and commits
    pipeline(False)  # answered from the committed entry
    assert ran == [1, 1]


def test_nested_transactions_roll_back_together_and_eager_commits_at_once() -> None:
    events: list[str] = []

    @task(
        on_commit=[lambda txn: events.append("commit")],
        on_rollback=[lambda txn: events.append("rollback")],
    )
    def step(name: str) -> str:
        events.append(name)
        return name

    @flow
    def nested() -> None:
        with transaction():
            step("outer")
            with transaction():
                step("inner")
            raise RuntimeError("after the inner block")

    with pytest.raises(RuntimeError):
        nested()
    assert events == ["outer", "inner", "rollback", "rollback"]

    events.clear()

    @flow
    def eager() -> None:
        with transaction(commit_mode=CommitMode.EAGER):
            step("a")
            raise RuntimeError("too late to roll back a")

    with pytest.raises(RuntimeError):
        eager()
    assert events == ["a", "commit"]


def test_commit_mode_off_never_commits() -> None:
    events: list[str] = []

    @task(
        on_commit=[lambda txn: events.append("commit")],
        on_rollback=[lambda txn: events.append("rollback")],
    )
    def step() -> None:
        events.append("ran")

    @flow
    def pipeline() -> None:
        with transaction(commit_mode=CommitMode.OFF):
            step()

    pipeline()
    assert events == ["ran", "rollback"]


def test_outside_a_transaction_a_task_commits_when_it_completes() -> None:
    events: list[Any] = []

    @task(on_commit=[lambda txn: events.append(("commit", txn.is_committed()))])
    def step() -> None:
        events.append("ran")

    @flow
    def pipeline() -> None:
        assert get_transaction() is None
        step()
        events.append("after")

    pipeline()
    assert events == ["ran", ("commit", False), "after"]


def test_get_transaction_and_unknown_values() -> None:
    with transaction() as txn:
        assert get_transaction() is txn
        txn.set("a", 1)
        with transaction() as inner:
            assert inner.get("a") == 1
            assert inner.get("missing", "default") == "default"
            with pytest.raises(ValueError, match="unknown key: missing"):
                inner.get("missing")
    assert get_transaction() is None
    assert txn.is_committed()
