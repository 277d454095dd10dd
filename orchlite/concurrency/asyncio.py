"""`concurrency` and `rate_limit` for async code, at Prefect's module path
(`prefect.concurrency.asyncio`): `async with concurrency("db"):` and
`await rate_limit("api")`.

Waiting for a slot is the synchronous wait of `orchlite.limits`, run in a worker thread
(`asyncio.to_thread`), so the event loop goes on meanwhile. If the waiting coroutine is
cancelled, the thread still finishes its wait: slots it then gets are given back at once,
and a rate-limit acquisition it gets counts, as any other, for one second. Giving slots back
when the block exits is one short write to the store, done on the loop's thread.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import AbstractContextManager, asynccontextmanager

from .. import limits
from ..limits import AcquireConcurrencySlotTimeoutError, ConcurrencySlotAcquisitionError


@asynccontextmanager
async def concurrency(
    names: str | list[str],
    occupy: int = 1,
    timeout_seconds: float | None = None,
    strict: bool = False,
) -> AsyncIterator[None]:
    """Hold `occupy` slots of each named limit while the block runs (see
    `orchlite.limits.concurrency` for the arguments and errors)."""
    manager = limits.concurrency(names, occupy, timeout_seconds, strict)
    acquiring = asyncio.ensure_future(asyncio.to_thread(manager.__enter__))
    try:
        await asyncio.shield(acquiring)
    except asyncio.CancelledError:
        acquiring.add_done_callback(lambda done: _give_back(manager, done))
        raise
    try:
        yield
    finally:
        manager.__exit__(None, None, None)


def _give_back(manager: AbstractContextManager[None], done: asyncio.Future[None]) -> None:
    """Release the slots a cancelled wait got after all."""
    if not done.cancelled() and done.exception() is None:
        manager.__exit__(None, None, None)


async def rate_limit(
    names: str | list[str],
    occupy: int = 1,
    timeout_seconds: float | None = None,
    strict: bool = False,
) -> None:
    """Wait until `occupy` acquisitions of each named rate limit pass (see
    `orchlite.limits.rate_limit`)."""
    await asyncio.to_thread(limits.rate_limit, names, occupy, timeout_seconds, strict)


__all__ = [
    "AcquireConcurrencySlotTimeoutError",
    "ConcurrencySlotAcquisitionError",
    "concurrency",
    "rate_limit",
]
