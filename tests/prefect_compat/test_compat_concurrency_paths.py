"""Prefect's module paths for global concurrency and rate limits, as its "Global concurrency
limits" docs use them: `from prefect.concurrency.sync import concurrency, rate_limit` in
sync code, `from prefect.concurrency.asyncio import concurrency, rate_limit` in async code.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from orchlite import limits
from orchlite.concurrency import asyncio as async_limits
from orchlite.concurrency.sync import AcquireConcurrencySlotTimeoutError, concurrency, rate_limit
from orchlite.context import open_store
from orchlite.limits import ConcurrencySlotAcquisitionError, limit_rows
from orchlite.logging import setup_logging


@pytest.fixture(autouse=True)
def home(orch_home: Path) -> Path:
    setup_logging(console=False)
    store = open_store()[0]
    store.set_concurrency_limit("db", 1)
    store.set_concurrency_limit("api", 100, per_second=True)
    return orch_home


def in_use(name: str) -> int:
    rows = {row["name"]: row for row in limit_rows(open_store()[0])}
    return int(rows[name]["in_use"])


def test_sync_path_holds_a_slot_for_the_block() -> None:
    with concurrency("db", occupy=1):
        assert in_use("db") == 1
        with (
            pytest.raises(AcquireConcurrencySlotTimeoutError),
            concurrency("db", timeout_seconds=0.2),
        ):
            pass
    assert in_use("db") == 0
    rate_limit("api")
    with pytest.raises(ConcurrencySlotAcquisitionError, match="not a rate limit"):
        rate_limit("db")


def test_from_orchlite_import_concurrency_still_works_once_the_package_is_imported() -> None:
    import orchlite.concurrency.sync  # noqa: F401 (makes the package an attribute of orchlite)
    from orchlite import concurrency as top_level

    with top_level("db"):
        assert in_use("db") == 1
    assert in_use("db") == 0


def test_async_concurrency_waits_without_blocking_the_event_loop() -> None:
    ticks: list[int] = []

    async def ticker(stop: asyncio.Event) -> None:
        while not stop.is_set():
            ticks.append(1)
            await asyncio.sleep(0.01)

    async def main() -> None:
        stop = asyncio.Event()
        ticking = asyncio.create_task(ticker(stop))
        async with async_limits.concurrency("db"):
            assert in_use("db") == 1
            before = len(ticks)
            with pytest.raises(AcquireConcurrencySlotTimeoutError):
                async with async_limits.concurrency("db", timeout_seconds=0.3):
                    pass
            assert len(ticks) > before  # the loop ran while the second one waited
        stop.set()
        await ticking
        await async_limits.rate_limit("api")

    asyncio.run(main())
    assert in_use("db") == 0


def test_a_cancelled_async_wait_gives_back_the_slot_it_gets() -> None:
    async def use_db() -> None:
        async with async_limits.concurrency("db"):
            raise AssertionError("a cancelled waiter must not enter the block")

    async def main() -> None:
        held = limits.concurrency("db")
        held.__enter__()
        waiter = asyncio.create_task(use_db())
        for _ in range(3):
            await asyncio.sleep(0)  # let the waiter start waiting in its thread
        waiter.cancel()
        with pytest.raises(asyncio.CancelledError):
            await waiter
        held.__exit__(None, None, None)
        # The cancelled waiter's thread may take the slot now: it must give it back.
        async with async_limits.concurrency("db", timeout_seconds=10):
            assert in_use("db") == 1

    asyncio.run(main())
    assert in_use("db") == 0
