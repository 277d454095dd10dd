"""`concurrency` and `rate_limit` for synchronous code, at Prefect's module path
(`prefect.concurrency.sync`): the limits set with `orch limit set`, held across every
process that uses the same `.orch/`."""

from __future__ import annotations

from ..limits import (
    AcquireConcurrencySlotTimeoutError,
    ConcurrencySlotAcquisitionError,
    concurrency,
    rate_limit,
)

__all__ = [
    "AcquireConcurrencySlotTimeoutError",
    "ConcurrencySlotAcquisitionError",
    "concurrency",
    "rate_limit",
]
