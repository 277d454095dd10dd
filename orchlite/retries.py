"""Retry delays: Prefect's `retry_delay_seconds` forms, jitter, and exponential backoff."""

from __future__ import annotations

import random
from collections.abc import Callable, Sequence

RetryDelay = float | int | Sequence[float] | Callable[[int], Sequence[float]] | None


def exponential_backoff(backoff_factor: float) -> Callable[[int], list[float]]:
    """Delays of `backoff_factor * 2**n` seconds for retry n (Prefect's helper of that name)."""

    def retry_backoff_callable(retries: int) -> list[float]:
        # Cap the exponent the way Prefect does, so 50 retries do not wait for years.
        return [backoff_factor * max(0, 2**r) for r in range(min(retries, 50))]

    return retry_backoff_callable


def delays_for(option: RetryDelay, retries: int) -> list[float]:
    """The list of delays, one per retry, that `retry_delay_seconds` means."""
    if option is None:
        return [0.0]
    if callable(option):
        option = option(retries)
    if isinstance(option, (int, float)):
        return [float(option)]
    delays = [float(d) for d in option]
    return delays or [0.0]


def delay_before_retry(
    delays: Sequence[float],
    retry_number: int,
    jitter_factor: float | None = None,
    rng: Callable[[], float] = random.random,
) -> float:
    """Seconds to wait before retry `retry_number` (1-based).

    The last delay in the list repeats when there are more retries than delays. With a
    jitter factor f, the delay is drawn uniformly from [d, d * (1 + f)], so a fleet of
    failing tasks does not retry in lockstep.
    """
    base = delays[min(retry_number - 1, len(delays) - 1)]
    if jitter_factor:
        base += base * jitter_factor * rng()
    return max(0.0, base)
