"""The engine in-process: states, retries, timeouts, caching, resume within a run, hooks, logs."""

from __future__ import annotations

import asyncio
import inspect
import itertools
import json
import logging
import threading
import time
from collections.abc import AsyncIterator
from datetime import timedelta
from pathlib import Path

import pytest

from orchlite import flow, get_run_logger, task
from orchlite.cache_policies import INPUTS, NO_CACHE, TASK_SOURCE
from orchlite.context import open_store
from orchlite.errors import TaskTimeoutError, UnhashableInputError
from orchlite.flows import Flow, FlowOptions
from orchlite.logging import MissingContextError, setup_logging
from orchlite.states import StateName
from orchlite.tasks import Task, TaskOptions, exponential_backoff, task_input_hash
from tests.helpers.recorded import last_run, store


@pytest.fixture(autouse=True)
def home(orch_home: Path) -> Path:
    setup_logging(console=False)
    return orch_home


def states_of(run_id: str, position: int | None = None) -> list[str]:
    entries = store().history(run_id, position)
    if position is None:
        return [e.state for e in entries if e.position is None]
    return [e.state for e in entries]


def test_flow_and_task_record_runs_and_return_values() -> None:
    @task
    def add(a: int, b: int = 1) -> int:
        return a + b

    @flow
    def pipeline(x: int = 1) -> int:
        return add(x) + add(x, b=10)

    assert pipeline(2) == 15
    run = last_run()
    assert run.state == "COMPLETED"
    assert run.flow_name == "pipeline"
    assert states_of(run.id) == ["PENDING", "RUNNING", "COMPLETED"]
    tasks = store().task_runs(run.id)
    assert [(t.name, t.state, t.attempts) for t in tasks] == [
        ("add-0", "COMPLETED", 1),
        ("add-1", "COMPLETED", 1),
    ]
    assert states_of(run.id, 0) == ["PENDING", "RUNNING", "COMPLETED"]


def test_failed_task_propagates_and_records_the_error() -> None:
    @task
    def explode() -> None:
        raise ValueError("bad row 7")

    @flow
    def pipeline() -> None:
        explode()

    with pytest.raises(ValueError, match="bad row 7"):
        pipeline()
    run = last_run()
    assert run.state == "FAILED"
    assert "bad row 7" in (run.state_message or "")
    (task_run,) = store().task_runs(run.id)
    assert task_run.state == "FAILED"
    assert task_run.error_type == "ValueError"
    assert task_run.error_message == "bad row 7"
    assert "Traceback" in (task_run.traceback or "")


def test_retries_follow_the_delay_list_and_record_retrying() -> None:
    calls: list[float] = []

    @task(retries=3, retry_delay_seconds=[0.01, 0.05])
    def flaky() -> str:
        calls.append(time.monotonic())
        if len(calls) < 4:
            raise ConnectionError(f"attempt {len(calls)}")
        return "ok"

    @flow
    def pipeline() -> str:
        return flaky()

    assert pipeline() == "ok"
    run = last_run()
    (task_run,) = store().task_runs(run.id)
    assert task_run.attempts == 4
    history = store().history(run.id, 0)
    retrying = [e.message or "" for e in history if e.state == "RETRYING"]
    assert len(retrying) == 3
    assert "retrying in 0.01 s" in retrying[0]
    assert "retrying in 0.05 s" in retrying[1]
    assert "retrying in 0.05 s" in retrying[2]  # the last delay repeats
    assert "ConnectionError: attempt 1" in retrying[0]
    gaps = [b - a for a, b in itertools.pairwise(calls)]
    assert gaps[1] >= 0.05


def test_callable_delays_and_exponential_backoff() -> None:
    assert exponential_backoff(2)(3) == [2, 4, 8]
    attempts: list[int] = []

    @task(retries=2, retry_delay_seconds=lambda n: [0.0] * n, retry_jitter_factor=0.5)
    def flaky() -> int:
        attempts.append(1)
        if len(attempts) < 3:
            raise RuntimeError("again")
        return len(attempts)

    @flow
    def pipeline() -> int:
        return flaky()

    assert pipeline() == 3


def test_retry_condition_fn_can_stop_retrying() -> None:
    seen: list[tuple[str, str]] = []

    def only_timeouts(task_obj, task_run, state) -> bool:
        try:
            state.result()
        except TimeoutError:
            return True
        except Exception as exc:
            seen.append((task_obj.name, type(exc).__name__))
            return False
        return False

    @task(retries=5, retry_condition_fn=only_timeouts)
    def broken() -> None:
        raise KeyError("missing")

    @flow
    def pipeline() -> None:
        broken()

    with pytest.raises(KeyError):
        pipeline()
    (task_run,) = store().task_runs(last_run().id)
    assert task_run.attempts == 1
    assert seen == [("broken", "KeyError")]


def test_flow_retries_reuse_tasks_completed_in_the_first_attempt() -> None:
    executions: list[str] = []
    failures = iter([True, False])

    @task
    def step(name: str) -> str:
        executions.append(name)
        return name

    @task
    def sometimes_fails() -> None:
        if next(failures):
            raise RuntimeError("first time")

    @flow(retries=1, retry_delay_seconds=0)
    def pipeline() -> str:
        a = step("a")
        sometimes_fails()
        return a + step("b")

    assert pipeline() == "ab"
    assert executions == ["a", "b"]
    run = last_run()
    assert run.attempts == 2
    assert states_of(run.id) == ["PENDING", "RUNNING", "RETRYING", "RUNNING", "COMPLETED"]


def test_task_timeout_stops_waiting_on_a_blocking_call() -> None:
    release = threading.Event()

    @task(timeout_seconds=0.3)
    def blocked() -> None:
        release.wait(30)

    @flow
    def pipeline() -> None:
        blocked()

    started = time.monotonic()
    with pytest.raises(TaskTimeoutError, match=r"timeout of 0\.3 s"):
        pipeline()
    assert time.monotonic() - started < 10  # not the 30 s the body would block
    release.set()
    run = last_run()
    assert run.state == "FAILED"
    (task_run,) = store().task_runs(run.id)
    assert task_run.state == "TIMED_OUT"


def test_flow_timeout_records_timed_out_and_refuses_later_tasks() -> None:
    release = threading.Event()
    after: list[str] = []

    @task
    def later() -> None:
        after.append("ran")

    @flow(timeout_seconds=0.3)
    def pipeline() -> None:
        release.wait(30)
        later()

    with pytest.raises(TaskTimeoutError):
        pipeline()
    assert last_run().state == "TIMED_OUT"
    release.set()
    time.sleep(0.1)
    assert after == []


def test_default_policy_of_a_persisting_task_caches_within_a_run_only() -> None:
    executions: list[int] = []

    @task(persist_result=True)
    def square(x: int) -> int:
        executions.append(x)
        return x * x

    @flow
    def pipeline() -> int:
        return square(3) + square(3) + square(4)

    assert pipeline() == 34
    assert pipeline() == 34
    assert executions == [3, 4, 3, 4]
    states = [t.state for t in store().task_runs(last_run().id)]
    assert states == ["COMPLETED", "CACHED", "COMPLETED"]


def test_inputs_policy_caches_across_runs_with_expiration_and_refresh() -> None:
    executions: list[int] = []

    @task(cache_policy=INPUTS + TASK_SOURCE, cache_expiration=timedelta(seconds=0.4))
    def square(x: int) -> int:
        executions.append(x)
        return x * x

    @flow
    def pipeline(x: int) -> int:
        return square(x)

    assert pipeline(5) == 25
    assert pipeline(5) == 25
    assert executions == [5]
    (cached,) = store().task_runs(last_run().id)
    assert cached.state == "CACHED"
    time.sleep(0.5)
    assert pipeline(5) == 25
    assert executions == [5, 5]
    assert pipeline.with_options()(5) == 25
    assert executions == [5, 5]
    refreshing = square.with_options(refresh_cache=True)

    @flow
    def refresh(x: int) -> int:
        return refreshing(x)

    assert refresh(5) == 25
    assert executions == [5, 5, 5]


def test_path_arguments_are_hashed_by_content(tmp_path: Path) -> None:
    data = tmp_path / "rows.csv"
    data.write_text("a,b\n1,2\n")
    reads: list[str] = []

    @task(cache_policy=INPUTS)
    def count_lines(path: Path) -> int:
        reads.append(path.read_text())
        return len(path.read_text().splitlines())

    @flow
    def pipeline(path: Path) -> int:
        return count_lines(path)

    assert pipeline(data) == 2
    assert pipeline(data) == 2
    data.write_text("a,b\n1,2\n3,4\n")
    assert pipeline(data) == 3
    assert len(reads) == 2


def test_cache_key_fn_and_task_input_hash() -> None:
    executions: list[str] = []

    @task(cache_key_fn=lambda context, params: params["name"].lower())
    def greet(name: str) -> str:
        executions.append(name)
        return f"hi {name}"

    @task(cache_key_fn=task_input_hash)
    def echo(value: str) -> str:
        executions.append(value)
        return value

    @flow
    def pipeline() -> list[str]:
        return [greet("Ada"), greet("ADA"), echo("x"), echo("x")]

    assert pipeline() == ["hi Ada", "hi Ada", "x", "x"]
    assert executions == ["Ada", "x"]


def test_unhashable_input_with_an_explicit_policy_fails_naming_the_argument() -> None:
    @task(cache_policy=INPUTS)
    def use(lock: object) -> None:
        return None

    @flow
    def pipeline() -> None:
        use(threading.Lock())

    with pytest.raises(UnhashableInputError, match="argument 'lock'") as info:
        pipeline()
    assert "cache_key_fn" in str(info.value)
    (task_run,) = store().task_runs(last_run().id)
    assert task_run.state == "FAILED"


def test_unhashable_input_with_the_default_policy_just_runs() -> None:
    @task
    def use(lock: object) -> str:
        return "ran"

    @flow
    def pipeline() -> str:
        return use(threading.Lock())

    assert pipeline() == "ran"


def test_unpicklable_result_fails_the_task_naming_the_type() -> None:
    @task
    def make_generator():
        return (i for i in range(3))

    @flow
    def pipeline() -> None:
        make_generator()

    with pytest.raises(Exception, match="generator"):
        pipeline()
    (task_run,) = store().task_runs(last_run().id)
    assert task_run.state == "FAILED"
    assert "generator" in (task_run.state_message or "")


def test_no_persist_and_json_serializer() -> None:
    @task(persist_result=False, cache_policy=NO_CACHE)
    def volatile() -> int:
        return 1

    @task(result_serializer="json")
    def as_json() -> dict[str, int]:
        return {"a": 1}

    @flow
    def pipeline() -> tuple[int, dict[str, int]]:
        return volatile(), as_json()

    assert pipeline() == (1, {"a": 1})
    first, second = store().task_runs(last_run().id)
    assert first.result_serializer is None
    assert second.result_serializer == "json"
    stored = store().task_run_result(last_run().id, 1)
    assert stored is not None and stored.data == b'{"a": 1}'


def test_large_results_go_to_blobs_answer_hits_and_a_corrupt_blob_is_a_miss(
    home: Path, caplog: pytest.LogCaptureFixture
) -> None:
    executions: list[int] = []

    @task(cache_policy=INPUTS)
    def big(n: int) -> bytes:
        executions.append(n)
        return b"x" * n

    @flow
    def pipeline() -> int:
        return len(big(10_000))

    assert pipeline() == 10_000
    (task_run,) = store().task_runs(last_run().id)
    assert task_run.result_ref is not None
    blob = home / "blobs" / task_run.result_ref[:2] / task_run.result_ref
    assert blob.stat().st_size > 10_000
    assert pipeline() == 10_000
    assert executions == [10_000]
    (hit,) = store().task_runs(last_run().id)
    assert (hit.state, hit.result_ref) == ("CACHED", task_run.result_ref)
    assert [h.state for h in store().history(last_run().id, 0)] == ["PENDING", "CACHED"]
    blob.write_bytes(b"garbage")
    with caplog.at_level(logging.WARNING, logger="orchlite"):
        assert pipeline() == 10_000
    assert executions == [10_000, 10_000]
    assert "unreadable" in caplog.text


def test_an_inline_cached_result_that_cannot_be_read_records_no_hit(
    caplog: pytest.LogCaptureFixture,
) -> None:
    executions: list[int] = []

    @task(cache_policy=INPUTS)
    def small(n: int) -> dict[str, int]:
        executions.append(n)
        return {"n": n}

    @flow
    def pipeline() -> dict[str, int]:
        return small(3)

    assert pipeline() == {"n": 3}
    with store() as s, s.transaction() as conn:
        conn.execute("UPDATE cache_entries SET result_data = x'00'")
    with caplog.at_level(logging.WARNING, logger="orchlite"):
        assert pipeline() == {"n": 3}
    assert executions == [3, 3]
    assert "unreadable" in caplog.text
    states = [h.state for h in store().history(last_run().id, 0)]
    assert states == ["PENDING", "RUNNING", "COMPLETED"]


def test_subflows_are_linked_to_their_parent() -> None:
    @task
    def one() -> int:
        return 1

    @flow
    def child(x: int) -> int:
        return one() + x

    @flow
    def parent() -> int:
        return one() + child(5)

    assert parent() == 7
    s = store()
    top = last_run()
    (sub,) = s.child_flow_runs(top.id)
    assert sub.flow_name == "child"
    assert sub.parent_position == 1
    assert sub.trigger == "subflow"
    assert [t.name for t in s.task_runs(sub.id)] == ["one-0"]


def test_standalone_task_is_recorded() -> None:
    @task
    def lone(x: int) -> int:
        return x + 1

    assert lone(1) == 2
    s = store()
    rows = s.conn.execute("SELECT state, standalone FROM task_runs").fetchall()
    assert rows == [("COMPLETED", 1)]


def test_logs_prints_and_run_names() -> None:
    @task(task_run_name="load-{table}", log_prints=True)
    def load(table: str) -> None:
        get_run_logger().warning("loading %s", table)
        print("printed inside", table)

    @flow(flow_run_name="nightly-{day}")
    def pipeline(day: str) -> None:
        get_run_logger().info("starting %s", day)
        print("not logged: log_prints is off for the flow")
        load("users")

    pipeline("2026-11-20")
    run = last_run()
    assert run.name == "nightly-2026-11-20"
    records = store().logs(run.id)
    lines = [(r.task_name, r.level, r.message) for r in records]
    assert (None, logging.INFO, "starting 2026-11-20") in lines
    assert ("load-users", logging.WARNING, "loading users") in lines
    assert ("load-users", logging.INFO, "printed inside users") in lines
    # Without log_prints a print is the run's stdout, stored as such (not as a log call).
    printed = [(r.logger, r.message) for r in records if r.message.startswith("not logged")]
    assert printed == [("orchlite.stdout", "not logged: log_prints is off for the flow")]
    assert store().logs(run.id, task_name="load-users", min_level=logging.WARNING)[0].message == (
        "loading users"
    )


def test_get_run_logger_outside_a_run_raises() -> None:
    with pytest.raises(MissingContextError):
        get_run_logger()


def test_hooks_receive_prefect_shaped_arguments() -> None:
    events: list[tuple[str, str, str]] = []

    @task(on_completion=[lambda t, run, state: events.append(("task", t.name, state.name))])
    def fine() -> int:
        return 1

    def on_failure(flow_obj, flow_run, state) -> None:
        events.append(("flow", flow_obj.name, state.name))
        raise RuntimeError("hooks may fail without changing the outcome")

    @flow(on_failure=[on_failure])
    def pipeline() -> None:
        fine()
        raise ValueError("boom")

    with pytest.raises(ValueError):
        pipeline()
    assert events == [("task", "fine", "Completed"), ("flow", "pipeline", "Failed")]
    assert last_run().state == "FAILED"


def test_return_state_and_with_options() -> None:
    @task
    def fails() -> None:
        raise OSError("disk")

    @flow
    def pipeline() -> str:
        state = fails(return_state=True)
        assert state.is_failed()
        return state.type.value

    assert pipeline() == StateName.FAILED.value
    renamed = pipeline.with_options(name="renamed")
    renamed()
    assert last_run().flow_name == "renamed"
    with pytest.raises(TypeError, match="unknown flow option"):
        pipeline.with_options(colour="red")


@pytest.mark.parametrize(("cls", "typed"), [(Task, TaskOptions), (Flow, FlowOptions)])
def test_the_types_of_with_options_name_every_option(cls: type, typed: type) -> None:
    """A type checker reads `.with_options(...)` from TaskOptions / FlowOptions: an option
    missing there would be a false error for users, an extra one a missed error."""
    parameters = inspect.signature(cls.__init__).parameters.values()
    options = {p.name for p in parameters if p.kind is inspect.Parameter.KEYWORD_ONLY}
    assert set(typed.__annotations__) == options
    assert set(cls(lambda: None)._options()) == options


def test_flow_parameters_are_validated_and_coerced() -> None:
    @flow
    def pipeline(n: int, when: str = "now") -> int:
        return n * 2

    assert pipeline("21") == 42
    run = last_run()
    assert run.parameters == '{"n":21,"when":"now"}'


def test_async_generators_are_refused_at_decoration() -> None:
    async def fetch() -> AsyncIterator[int]:
        yield 1

    with pytest.raises(TypeError, match="cannot decorate the async generator 'test_async_gen"):
        task(fetch)


def test_system_exit_crashes_the_run_and_calls_on_crashed() -> None:
    crashed: list[str] = []

    @flow(on_crashed=[lambda f, run, state: crashed.append(state.name)])
    def pipeline() -> None:
        raise SystemExit(3)

    with pytest.raises(SystemExit):
        pipeline()
    assert last_run().state == "CRASHED"
    assert crashed == ["Crashed"]


def test_a_timed_out_task_body_does_not_go_on_to_start_more_tasks() -> None:
    release = threading.Event()
    outcome: list[str] = []

    @task
    def inner() -> None:
        outcome.append("inner ran")

    @task(timeout_seconds=0.2)
    def outer() -> None:
        release.wait(10)  # interrupted here, at the deadline
        try:
            inner()
        except BaseException as exc:
            outcome.append(type(exc).__name__)

    @flow
    def pipeline() -> None:
        outer(return_state=True)

    pipeline()
    release.set()
    assert outcome == []
    assert [t.state for t in store().task_runs(last_run().id)] == ["TIMED_OUT"]


def test_a_corrupt_blob_is_quarantined_and_rewritten(home: Path) -> None:
    @task(cache_policy=NO_CACHE)
    def big() -> bytes:
        return b"y" * 20_000

    @flow
    def pipeline() -> None:
        big()

    pipeline()
    (task_run,) = store().task_runs(last_run().id)
    digest = task_run.result_ref
    assert digest is not None
    blob = home / "blobs" / digest[:2] / digest
    blob.write_bytes(b"tampered")
    with pytest.raises(Exception, match="corrupt"):
        open_store()[1].get(digest)
    assert (home / "quarantine" / digest).exists()
    pipeline()
    assert open_store()[1].get(digest) == __import__("pickle").dumps(b"y" * 20_000, protocol=5)


def test_a_none_default_of_a_typed_parameter_survives_binding_twice() -> None:
    import datetime as dt

    @flow
    def pipeline(day: dt.date = None) -> str:  # type: ignore[assignment]  # noqa: RUF013
        return str(day)

    from orchlite.params import bind_parameters

    bound = bind_parameters(pipeline.fn, {}, flow_name="pipeline")
    assert pipeline(**bound) == "None"


def test_a_task_run_saved_with_many_state_changes_keeps_them_all() -> None:
    from orchlite.store import TaskRun

    s = store()
    s.create_flow_run(run_id="ab" * 16, flow_name="f", name="f", parameters="{}")
    run = TaskRun(
        "ab" * 16,
        0,
        "x" * 32,
        0,
        "k@f.py",
        "k-0",
        "0",
        "COMPLETED",
        None,
        4,
        None,
        None,
        None,
        None,
        None,
        None,
        None,
        1.0,
        1.0,
        2.0,
    )
    changes = [("PENDING", None, 1.0), ("RUNNING", None, 1.0)]
    changes += [("RETRYING", f"attempt {i}", 1.5) for i in range(3)] + [("RUNNING", None, 1.6)]
    s.save_task_run(run, [*changes, ("COMPLETED", None, 2.0)])
    assert [e.state for e in s.history("ab" * 16, 0)] == [c[0] for c in changes] + ["COMPLETED"]


def test_var_positional_parameters_bind_as_a_python_call_does() -> None:
    # As Prefect 3: the values of *args are passed positionally and recorded as a list
    # under the parameter's name; here each is converted by the annotation of *args.
    @flow
    def total(*args: int) -> int:
        return sum(args)

    @flow
    def mixed(base: int, *rest: int, scale: int = 1, **extra: str) -> list[object]:
        return [base, rest, scale, extra]

    @flow
    async def atotal(*args: int) -> int:
        return sum(args)

    assert total(1, 2, "3") == 6
    assert json.loads(last_run().parameters) == {"args": [1, 2, 3]}
    assert total() == 0
    assert mixed(1, 2, "3", scale="2", x="y") == [1, (2, 3), 2, {"x": "y"}]
    assert json.loads(last_run().parameters) == {"base": 1, "rest": [2, 3], "scale": 2, "x": "y"}
    assert asyncio.run(atotal(4, "5")) == 9
    assert total.with_options(validate_parameters=False)(1, 2) == 3


def test_var_keyword_parameters_bind_as_a_python_call_does() -> None:
    @flow
    def kw(**options: object) -> dict[str, object]:
        return options

    @flow
    def mixed(n: int, **options: object) -> dict[str, object]:
        return {"n": n, **options}

    assert kw(a=1) == {"a": 1}
    assert kw(options=5) == {"options": 5}
    assert mixed("2", b="x") == {"n": 2, "b": "x"}
    assert last_run().parameters == '{"n":2,"b":"x"}'
    assert kw.with_options(validate_parameters=False)(a=1) == {"a": 1}


def test_a_failed_attempt_of_a_flow_with_retries_records_when_the_next_is_due() -> None:
    attempts: list[int] = []

    @flow(retries=1, retry_delay_seconds=0.25)
    def flaky() -> None:
        attempts.append(len(attempts) + 1)
        if len(attempts) == 1:
            raise ValueError("the first attempt fails")

    flaky()
    run_id = last_run().id
    retrying = [h for h in store().history(run_id) if h.state == StateName.RETRYING.value]
    query = "SELECT retry_due FROM flow_runs WHERE id = ?"
    (due,) = store().conn.execute(query, (run_id,)).fetchone()
    assert attempts == [1, 2] and len(retrying) == 1
    assert due == pytest.approx(retrying[0].ts + 0.25, abs=0.05)
