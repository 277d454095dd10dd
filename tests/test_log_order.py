"""Buffered log rows reach the store in the order they were taken: a task run's commit that
takes rows waits for a flush already writing earlier ones, so `orch logs` (ordered by row
id) never shows a task's line before the flow line logged ahead of it."""

from __future__ import annotations

import threading
from typing import Any

from orchlite.logging import _LogBuffer


class SlowStore:
    """Records the rows each write commits; a write waits until the test lets it end."""

    def __init__(self) -> None:
        self.committed: list[str] = []
        self.writing = threading.Event()
        self.finish = threading.Event()

    def write_logs(self, rows: list[Any]) -> None:
        self.writing.set()
        assert self.finish.wait(10)
        self.committed += [row[-1] for row in rows]


def row(message: str) -> tuple[Any, ...]:
    return ("run", None, None, 0.0, 20, "test", message)


def test_rows_taken_for_a_commit_wait_for_a_flush_of_earlier_rows() -> None:
    buffer, store = _LogBuffer(), SlowStore()
    buffer.add(store, row("starting"))  # type: ignore[arg-type]
    flush = threading.Thread(target=buffer.flush)
    flush.start()
    assert store.writing.wait(10)  # the flush took "starting" and is writing it
    buffer.add(store, row("loaded part 1"))  # type: ignore[arg-type]

    def commit() -> None:
        with buffer.taken(store) as rows:  # type: ignore[arg-type]
            store.committed += [r[-1] for r in rows]

    task = threading.Thread(target=commit)
    task.start()
    task.join(0.2)
    assert task.is_alive()  # held back behind the flush
    store.finish.set()
    flush.join(10)
    task.join(10)
    assert store.committed == ["starting", "loaded part 1"]


def test_a_commit_with_nothing_buffered_waits_for_nothing() -> None:
    buffer, store = _LogBuffer(), SlowStore()
    buffer.add(store, row("starting"))  # type: ignore[arg-type]
    flush = threading.Thread(target=buffer.flush)
    flush.start()
    assert store.writing.wait(10)
    with buffer.taken(store) as rows:  # type: ignore[arg-type]
        assert rows == []  # did not block on the flush
    store.finish.set()
    flush.join(10)
    assert store.committed == ["starting"]
