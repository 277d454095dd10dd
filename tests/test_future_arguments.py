"""Futures and states inside a task's arguments: found where Prefect finds them, waited for,
replaced by their results and recorded as upstream dependencies."""

from __future__ import annotations

import dataclasses
import json
from collections import OrderedDict
from pathlib import Path
from typing import Any, NamedTuple

import pydantic
import pytest

from orchlite import allow_failure, flow, task, unmapped
from orchlite.annotations import quote
from orchlite.futures import TaskRunFuture
from orchlite.logging import setup_logging
from orchlite.task_runners import ThreadPoolTaskRunner
from tests.helpers.recorded import last_run, store


@pytest.fixture(autouse=True)
def home(orch_home: Path) -> Path:
    setup_logging(console=False)
    return orch_home


@task
def rate(x: float) -> float:
    return x


@task
def broken() -> float:
    raise ValueError("no rate today")


@dataclasses.dataclass
class Loan:
    principal: float
    adjusted_rate: Any


@dataclasses.dataclass(frozen=True)
class FrozenLoan:
    principal: float
    adjusted_rate: Any
    label: str = dataclasses.field(init=False, default="fixed")


class Terms(pydantic.BaseModel):
    principal: float
    adjusted_rate: Any
    _note: str = pydantic.PrivateAttr(default="")


class FrozenTerms(pydantic.BaseModel):
    model_config = pydantic.ConfigDict(frozen=True, extra="allow")
    principal: float


class Pair(NamedTuple):
    left: Any
    right: Any


def upstream_of(name: str) -> list[int]:
    runs = {r.name: r for r in store().task_runs(last_run().id)}
    return json.loads(runs[name].upstream or "[]")


def test_a_future_in_a_dataclass_is_waited_for_and_recorded_as_upstream() -> None:
    @task
    def interest(loan: Loan) -> float:
        assert type(loan) is Loan
        return loan.principal * loan.adjusted_rate

    @flow(task_runner=ThreadPoolTaskRunner(max_workers=2))
    def pipeline() -> float:
        return interest(Loan(100.0, rate.submit(0.05)))

    assert pipeline() == pytest.approx(5.0)
    assert upstream_of("interest-0") == [0]


def test_a_frozen_dataclass_is_copied_with_fields_outside_init_kept() -> None:
    seen: list[FrozenLoan] = []

    @task
    def keep(loan: FrozenLoan) -> None:
        seen.append(loan)

    @flow
    def pipeline() -> None:
        original = FrozenLoan(100.0, rate.submit(0.05))
        object.__setattr__(original, "label", "renegotiated")
        keep(original)
        assert isinstance(original.adjusted_rate, TaskRunFuture)  # the caller's is untouched

    pipeline()
    (loan,) = seen
    assert (loan.principal, loan.adjusted_rate, loan.label) == (100.0, 0.05, "renegotiated")


def test_futures_in_pydantic_models_are_resolved_without_validation() -> None:
    received: list[Any] = []

    @task
    def price(terms: Terms, extra: FrozenTerms) -> None:
        received.extend([terms, extra])

    @flow
    def pipeline() -> None:
        terms = Terms(principal=100.0, adjusted_rate=rate.submit(0.05))
        terms._note = "kept"
        price(terms, FrozenTerms(principal=1.0, bonus=rate.submit(2.0)))  # type: ignore[call-arg]

    pipeline()
    terms, extra = received
    assert type(terms) is Terms and terms.adjusted_rate == 0.05 and terms._note == "kept"
    assert type(extra) is FrozenTerms and extra.bonus == 2.0  # an extra field
    assert upstream_of("price-0") == [0, 1]


def test_named_tuples_nested_dicts_lists_sets_and_dict_keys_are_rebuilt() -> None:
    received: list[Any] = []

    @task
    def take(value: Any) -> None:
        received.append(value)

    @flow
    def pipeline() -> None:
        a, b, c = rate.submit(1.0), rate.submit(2.0), rate.submit(3.0)
        take(
            {
                "pair": Pair(a, [b, {"deep": (c,)}]),
                "sets": ({a, 5.0}, frozenset({b})),
                "ordered": OrderedDict([("x", c)]),
                c: "key",
            }
        )

    pipeline()
    (value,) = received
    assert value["pair"] == Pair(1.0, [2.0, {"deep": (3.0,)}])
    assert type(value["pair"]) is Pair
    assert value["sets"] == ({1.0, 5.0}, frozenset({2.0}))
    assert type(value["ordered"]) is OrderedDict and value["ordered"] == {"x": 3.0}
    assert value[3.0] == "key"
    assert upstream_of("take-0") == [0, 1, 2]


def test_containers_without_futures_are_passed_themselves() -> None:
    rows = [{"id": i} for i in range(1000)]
    loan = Loan(1.0, [1, 2])
    terms = Terms(principal=1.0, adjusted_rate=None)
    received: list[Any] = []

    @task
    def take(rows: list[dict[str, int]], loan: Loan, terms: Terms, call: int) -> None:
        received.extend([rows, loan, terms])

    @flow
    def pipeline() -> None:
        take(rows, loan, terms, 1)
        take.submit(rows, loan, terms, 2).wait()

    pipeline()
    assert all(a is b for a, b in zip(received, [rows, loan, terms] * 2, strict=True))


def test_a_failed_future_in_a_dataclass_stops_the_task_like_a_bare_one() -> None:
    ran: list[str] = []

    @task
    def interest(loan: Loan) -> float:
        ran.append("interest")
        return 0.0

    @task
    def tolerant(loan: Loan) -> str:
        return type(loan.adjusted_rate).__name__

    @flow
    def pipeline() -> str:
        failed = broken.submit()
        downstream = interest.submit(Loan(100.0, failed))
        error = downstream.result(raise_on_failure=False)
        assert type(error).__name__ == "UpstreamTaskError"
        assert downstream.state.is_failed()
        assert "upstream task run 'broken-0' ended FAILED" in (downstream.state.message or "")
        return tolerant(allow_failure(Loan(100.0, failed)))

    assert pipeline() == "ValueError"
    assert ran == []
    assert upstream_of("interest-0") == [0]


def test_states_passed_as_arguments_are_replaced_by_their_results() -> None:
    @task
    def add(values: list[float]) -> float:
        return sum(values)

    @flow
    def pipeline() -> tuple[float, str]:
        done = rate(2.0, return_state=True)
        failed = broken(return_state=True)
        total = add([done, Loan(1.0, done).adjusted_rate])
        refused = add([failed], return_state=True)
        return total, refused.message or ""

    total, message = pipeline()
    assert total == 4.0
    assert message == "a state passed to this task run is FAILED"


def test_quote_passes_a_value_as_it_is() -> None:
    received: list[Any] = []

    @task
    def take(loan: Loan) -> None:
        received.append(loan.adjusted_rate)

    @flow
    def pipeline() -> None:
        future = rate.submit(1.0)
        future.wait()
        take(quote(Loan(1.0, future)))

    pipeline()
    assert isinstance(received[0], TaskRunFuture)
    assert upstream_of("take-0") == []


def test_map_with_unmapped_dataclasses_resolves_each_call() -> None:
    @task
    def scale(x: float, loan: Loan) -> float:
        return x * loan.adjusted_rate

    @flow
    def pipeline() -> list[float]:
        return scale.map([1.0, 2.0], loan=unmapped(Loan(0.0, rate.submit(10.0)))).result()

    assert pipeline() == [10.0, 20.0]


def test_a_dataclass_that_refers_to_itself_is_walked_once() -> None:
    @dataclasses.dataclass
    class Node:
        value: Any
        parent: Any = None

    received: list[Any] = []

    @task
    def take(node: Node) -> None:
        received.append(node)

    @flow
    def pipeline() -> None:
        node = Node(rate.submit(1.0))
        node.parent = node
        take(node)

    pipeline()
    assert received[0].value == 1.0
