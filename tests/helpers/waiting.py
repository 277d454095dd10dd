"""Waiting on a condition instead of sleeping for a guessed time."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TypeVar

T = TypeVar("T")


def wait_for(
    condition: Callable[[], T],
    timeout: float = 20.0,
    interval: float = 0.02,
    *,
    what: str = "",
    detail: Callable[[], str] | None = None,
) -> T:
    """Poll `condition()` until it returns something truthy, and return that.

    At the timeout, fail with an AssertionError naming `what` (the condition's name if not
    given), followed by `detail()` if given (a daemon's log, say). A condition that raises
    fails the wait at once, which is how a caller stops waiting on a child that died.
    """
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            message = f"timed out after {timeout} s waiting for {what or condition}"
            if detail is not None:
                message += "\n" + detail()
            raise AssertionError(message)
        time.sleep(interval)
