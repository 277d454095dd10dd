"""The engine's per-task console line: a record like the one `Logger.log` makes."""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterator

import pytest

from orchlite.logging import narrate

# What may differ: where the line comes from, and when.
_CALLER_AND_TIME = {
    "pathname",
    "filename",
    "module",
    "lineno",
    "funcName",
    "created",
    "msecs",
    "relativeCreated",
}


class Keep(logging.Handler):
    def __init__(self) -> None:
        super().__init__()
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


@pytest.fixture
def kept() -> Iterator[tuple[logging.Logger, Keep]]:
    logger = logging.getLogger("orchlite.test_narrate")
    handler = Keep()
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    logger.propagate = False
    try:
        yield logger, handler
    finally:
        logger.removeHandler(handler)


def test_a_narrated_record_holds_what_logger_log_puts_in_one(
    kept: tuple[logging.Logger, Keep],
) -> None:
    logger, handler = kept
    narrate(logger, logging.INFO, "Finished in state %s", "Completed()", extra={"run_label": "x"})
    logger.info("Finished in state %s", "Completed()", extra={"run_label": "x"})
    narrated, logged = (record.__dict__ for record in handler.records)
    assert narrated.keys() == logged.keys()
    differing = {key for key in logged if narrated[key] != logged[key]}
    assert differing <= _CALLER_AND_TIME
    assert handler.records[0].getMessage() == "Finished in state Completed()"
    assert abs(narrated["created"] - logged["created"]) < 5
    assert narrated["relativeCreated"] <= logged["relativeCreated"] + 1


def test_each_record_is_new_and_names_its_own_thread(kept: tuple[logging.Logger, Keep]) -> None:
    logger, handler = kept
    narrate(logger, logging.INFO, "line %s", 1, extra={"run_label": "a"})
    thread = threading.Thread(
        target=lambda: narrate(logger, logging.WARNING, "line %s", 2, extra={"run_label": "b"}),
        name="elsewhere",
    )
    thread.start()
    thread.join()
    first, second = handler.records
    assert first is not second
    assert (first.getMessage(), first.levelname, first.threadName) == (
        "line 1",
        "INFO",
        threading.current_thread().name,
    )
    assert (second.getMessage(), second.levelname, second.threadName) == (
        "line 2",
        "WARNING",
        "elsewhere",
    )
    assert (first.__dict__["run_label"], second.__dict__["run_label"]) == ("a", "b")


def test_a_custom_record_factory_makes_every_record(kept: tuple[logging.Logger, Keep]) -> None:
    logger, handler = kept
    default = logging.getLogRecordFactory()

    def factory(*args: object, **kwargs: object) -> logging.LogRecord:
        record = default(*args, **kwargs)
        record.stamped = True
        return record

    logging.setLogRecordFactory(factory)
    try:
        narrate(logger, logging.INFO, "line", extra={"run_label": "a"})
    finally:
        logging.setLogRecordFactory(default)
    assert handler.records[0].__dict__.get("stamped") is True
