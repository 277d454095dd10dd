"""Prefect's exception names (`prefect.exceptions`), bound to the classes orchlite raises.

    from orchlite.exceptions import FailedRun, UnfinishedRun

`OrchError` plays the part of Prefect's `PrefectException` for these, except `CancelledRun`,
which is a `BaseException` in orchlite so that an `except Exception:` in a flow does not
swallow a cancellation.
"""

from __future__ import annotations

from .errors import (
    CancelledRun,
    CrashedRun,
    FailedRun,
    FlowPauseTimeout,
    MissingResult,
    OrchError,
    ParameterError,
    PausedRun,
    SerializationError,
    UnfinishedRun,
    UpstreamTaskError,
)

PrefectException = OrchError
"""The base of the run errors below (all but `CancelledRun`)."""

ParameterTypeError = ParameterError
"""Flow parameters that do not fit the flow's signature or type hints."""

__all__ = [
    "CancelledRun",
    "CrashedRun",
    "FailedRun",
    "FlowPauseTimeout",
    "MissingResult",
    "ParameterTypeError",
    "PausedRun",
    "PrefectException",
    "SerializationError",
    "UnfinishedRun",
    "UpstreamTaskError",
]
