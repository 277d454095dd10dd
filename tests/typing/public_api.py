"""What a user's type checker sees of the public API: checked by mypy, never run.

`mypy orchlite tests/typing` fails if a type below drifts (`assert_type`), or if a call
marked as wrong stops being an error (`warn_unused_ignores` then flags its ignore comment).
A decorated function keeps its parameters by name, kind and default: the calls below use
them positionally and by keyword, and leave out the defaulted ones.
"""

from __future__ import annotations

from typing_extensions import assert_type

from orchlite import State, flow, task
from orchlite.futures import PrefectFuture, PrefectFutureList, TaskRunFuture, as_completed, wait


@task
def add(x: int, y: int = 1) -> int:
    return x + y


@task(retries=2, retry_delay_seconds=[1, 2])
def greet(name: str, *, loud: bool = False) -> str:
    return name.upper() if loud else name


@flow
def pipeline(n: int) -> list[int]:
    return [add(n)]


@flow(name="etl", retries=1)
def etl(source: str) -> dict[str, int]:
    return {source: 1}


def calls_keep_parameters_and_return_type() -> None:
    assert_type(add(1), int)
    assert_type(add(1, 2), int)
    assert_type(add(x=1, y=2), int)
    assert_type(greet("a"), str)
    assert_type(greet("a", loud=True), str)
    assert_type(pipeline(3), list[int])
    assert_type(pipeline(n=3), list[int])
    assert_type(etl("db"), dict[str, int])
    assert_type(add.fn(1), int)


def return_state_gives_a_state() -> None:
    assert_type(add(1, return_state=True), State[int])
    assert_type(pipeline(3, return_state=True), State[list[int]])
    assert_type(add(1, return_state=True).result(), int)
    assert_type(add(1, return_state=True).result(raise_on_failure=False), int | BaseException)


def submit_gives_a_typed_future() -> None:
    future = add.submit(1, y=2)
    assert_type(future, TaskRunFuture[int])
    assert_type(future.result(), int)
    assert_type(future.result(timeout=5), int)
    assert_type(greet.submit("a", loud=True).result(), str)
    prefect_named: PrefectFuture[int] = future
    assert_type(prefect_named, TaskRunFuture[int])
    for done in as_completed([future]):
        assert_type(done.result(), int)
    wait([future, greet.submit("b")])


def map_gives_a_typed_future_list() -> None:
    futures = add.map([1, 2, 3])
    assert_type(futures, PrefectFutureList[int])
    assert_type(futures.result(), list[int])
    assert_type(futures[0], TaskRunFuture[int])
    assert_type(greet.map(["a", "b"], loud=True).result(), list[str])


def with_options_keeps_the_signature() -> None:
    quick = add.with_options(retries=0, name="plus")
    assert_type(quick(1, y=2), int)
    assert_type(quick.submit(x=1), TaskRunFuture[int])
    assert_type(quick.map([1, 2]).result(), list[int])
    other = pipeline.with_options(name="other", timeout_seconds=5)
    assert_type(other(n=3), list[int])
    assert_type(etl.with_options(retries=0).with_options(log_prints=True)("db"), dict[str, int])


def wait_for_is_a_keyword_of_calls_submit_and_map() -> None:
    first = add.submit(1)
    assert_type(add(1, 2, wait_for=[first]), int)
    assert_type(add.submit(1, wait_for=[first]), TaskRunFuture[int])
    assert_type(add.map([1, 2], wait_for=[first]), PrefectFutureList[int])
    assert_type(add(1, return_state=True, wait_for=[first]), State[int])


def wrong_calls_are_errors() -> None:
    add("one")  # type: ignore[call-overload]
    add(1, z=2)  # type: ignore[call-overload]
    pipeline()  # type: ignore[call-overload]
    add.submit("one")  # type: ignore[call-overload]
    add.submit(1, 2, 3)  # type: ignore[call-overload]
    greet.submit("a", shout=True)  # type: ignore[call-overload]
    add.with_options(name="plus").submit(y=2)  # type: ignore[call-overload]
    add.submit(1).result().upper()  # type: ignore[attr-defined]
    add.map([1]).result()[0].upper()  # type: ignore[attr-defined]
    add.with_options(retrys=3)  # type: ignore[call-arg]
    pipeline.with_options(retries="2")  # type: ignore[arg-type]
    task(retries="3")  # type: ignore[call-overload]
    flow(schedules=5)  # type: ignore[call-overload]


def hooks_keep_their_type() -> None:
    def notify(task: object, run: object, state: State) -> None: ...

    hook = add.on_failure(notify)  # the decorator gives back the function as it was
    hook(add, None, "FAILED")  # type: ignore[arg-type]
    add.on_running(notify)(add, None, "RUNNING")  # type: ignore[arg-type]
    pipeline.on_running(notify)(pipeline, None, "RUNNING")  # type: ignore[arg-type]
    pipeline.on_crashed(notify)(pipeline, None, "CRASHED")  # type: ignore[arg-type]
    flow_hook = pipeline.on_cancellation(notify)
    flow_hook(pipeline, None, "CANCELLED")  # type: ignore[arg-type]
