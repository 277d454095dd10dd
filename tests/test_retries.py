"""Retry delays: `retry_delay_seconds` in each of its forms, jitter and backoff."""

from __future__ import annotations

import pytest

from orchlite.retries import delay_before_retry, delays_for, exponential_backoff


def test_no_option_means_retry_at_once() -> None:
    assert delays_for(None, retries=3) == [0.0]


@pytest.mark.parametrize("option", [5, 5.0])
def test_a_number_is_one_delay_for_every_retry(option: float) -> None:
    assert delays_for(option, retries=3) == [5.0]
    assert [delay_before_retry([5.0], n) for n in (1, 2, 3)] == [5.0, 5.0, 5.0]


def test_a_list_gives_one_delay_per_retry_and_its_last_repeats() -> None:
    delays = delays_for([1, 2, 4], retries=5)
    assert delays == [1.0, 2.0, 4.0]
    assert [delay_before_retry(delays, n) for n in range(1, 6)] == [1.0, 2.0, 4.0, 4.0, 4.0]


def test_an_empty_list_means_retry_at_once() -> None:
    assert delays_for([], retries=2) == [0.0]


def test_a_callable_is_given_the_number_of_retries() -> None:
    seen: list[int] = []

    def delays(retries: int) -> list[float]:
        seen.append(retries)
        return [0.5] * retries

    assert delays_for(delays, retries=3) == [0.5, 0.5, 0.5]
    assert seen == [3]


def test_exponential_backoff_doubles_from_its_factor() -> None:
    assert exponential_backoff(2)(4) == [2, 4, 8, 16]
    assert delays_for(exponential_backoff(1), retries=3) == [1.0, 2.0, 4.0]
    assert exponential_backoff(1)(0) == []


def test_exponential_backoff_stops_growing_after_fifty_retries() -> None:
    delays = exponential_backoff(1)(1000)
    assert len(delays) == 50 and delays[-1] == 2**49


@pytest.mark.parametrize(("draw", "expected"), [(0.0, 10.0), (0.5, 12.5), (1.0, 15.0)])
def test_jitter_draws_between_the_delay_and_the_delay_times_one_plus_the_factor(
    draw: float, expected: float
) -> None:
    assert delay_before_retry([10.0], 1, jitter_factor=0.5, rng=lambda: draw) == expected


def test_no_jitter_never_draws() -> None:
    def rng() -> float:
        raise AssertionError("drawn without a jitter factor")

    assert delay_before_retry([3.0], 1, jitter_factor=None, rng=rng) == 3.0
    assert delay_before_retry([3.0], 1, jitter_factor=0, rng=rng) == 3.0


def test_a_negative_delay_waits_nothing() -> None:
    assert delay_before_retry([-2.0], 1) == 0.0
