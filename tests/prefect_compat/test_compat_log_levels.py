"""Run loggers drop records below the run log level, as Prefect's do (default INFO).

Prefect's `PREFECT_LOGGING_LEVEL` sets the level of its `prefect` logger, which its run
loggers inherit; here it is `ORCH_LOGGING_LEVEL` and the `orchlite` logger.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator

import pytest

from orchlite import flow, get_run_logger, task
from orchlite.errors import UsageError
from orchlite.logging import setup_logging
from tests.helpers.recorded import last_run, store


class Collect(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.messages: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.messages.append(record.getMessage())


@pytest.fixture
def root_handler() -> Iterator[Collect]:
    """A handler on the root logger that keeps everything it is given."""
    handler = Collect()
    root = logging.getLogger()
    root.addHandler(handler)
    try:
        yield handler
    finally:
        root.removeHandler(handler)
        setup_logging(console=False, level=logging.INFO)


@task
def work() -> int:
    get_run_logger().debug("task debug")
    get_run_logger().info("task info")
    return 1


@flow
def chatty() -> int:
    get_run_logger().debug("flow debug")
    return work()


def stored_messages() -> list[str]:
    return [row.message for row in store().logs(last_run().id)]


def test_debug_records_are_dropped_by_default(root_handler: Collect) -> None:
    setup_logging(console=False)
    assert chatty() == 1
    assert "task info" in root_handler.messages
    assert not {"flow debug", "task debug"} & set(root_handler.messages)
    stored = stored_messages()
    assert "task info" in stored
    assert not {"flow debug", "task debug"} & set(stored)


def test_orch_logging_level_debug_keeps_them(
    monkeypatch: pytest.MonkeyPatch, root_handler: Collect
) -> None:
    monkeypatch.setenv("ORCH_LOGGING_LEVEL", "DEBUG")
    setup_logging(console=False)
    assert chatty() == 1
    assert {"flow debug", "task debug"} <= set(root_handler.messages)
    assert {"flow debug", "task debug", "task info"} <= set(stored_messages())


def test_an_invalid_level_is_a_usage_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ORCH_LOGGING_LEVEL", "verbose")
    with pytest.raises(UsageError) as caught:
        setup_logging(console=False)
    assert str(caught.value) == (
        "ORCH_LOGGING_LEVEL must be one of DEBUG, INFO, WARNING, ERROR, CRITICAL, not 'verbose'"
    )
