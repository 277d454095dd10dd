"""Cache policies: Prefect 3's composition rules and orchlite's keys (see cache_policies.py)."""

from __future__ import annotations

import importlib.util
import re
import threading
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

from orchlite import cache_policies
from orchlite.cache_policies import (
    DEFAULT,
    FLOW_PARAMETERS,
    INPUTS,
    NO_CACHE,
    RUN_ID,
    TASK_SOURCE,
    CacheKeyFnPolicy,
    CachePolicy,
    CompoundCachePolicy,
    FlowParameters,
    Inputs,
    RunId,
    TaskSource,
    _None,
)
from orchlite.errors import UnhashableInputError, UsageError

KEY = re.compile(r"v1:sha256:[0-9a-f]{64}")


@dataclass
class FakeTask:
    fn: Any
    name: str = "task"
    task_key: str = "tests.task"


@dataclass
class FakeTaskRun:
    id: str = "task-run-1"
    flow_run_id: str | None = "flow-run-1"


@dataclass
class Ctx:
    task: FakeTask
    task_run: FakeTaskRun = field(default_factory=FakeTaskRun)
    parameters: dict[str, Any] = field(default_factory=dict)


def double(x: int) -> int:
    return 2 * x


def triple(x: int) -> int:
    return 3 * x


def ctx_for(fn: Any = double, **run: Any) -> Ctx:
    return Ctx(task=FakeTask(fn=fn), task_run=FakeTaskRun(**run))


def key(policy: CachePolicy, inputs: dict[str, Any] | None = None, **kw: Any) -> str | None:
    ctx = kw.pop("ctx", ctx_for())
    return policy.compute_key(ctx, inputs if inputs is not None else {"x": 1}, kw)


# -- composition ------------------------------------------------------------------------------


def test_default_is_inputs_task_source_and_run_id() -> None:
    assert isinstance(DEFAULT, CompoundCachePolicy)
    assert {type(p) for p in DEFAULT.policies} == {Inputs, TaskSource, RunId}
    assert KEY.fullmatch(key(DEFAULT) or "")


def test_no_cache_gives_no_key_and_adds_nothing() -> None:
    assert key(NO_CACHE) is None
    assert isinstance(NO_CACHE, _None)
    assert NO_CACHE + INPUTS is INPUTS
    assert INPUTS + NO_CACHE is INPUTS
    assert DEFAULT + NO_CACHE is DEFAULT
    assert NO_CACHE + NO_CACHE is NO_CACHE
    assert CompoundCachePolicy(policies=[NO_CACHE, RUN_ID]).policies == [RUN_ID]


def test_compounds_flatten_and_merge_inputs() -> None:
    policy = (Inputs(exclude=["a"]) + RUN_ID) + (TASK_SOURCE + Inputs(exclude=["b"]))
    assert isinstance(policy, CompoundCachePolicy)
    assert [type(p) for p in policy.policies] == [RunId, TaskSource, Inputs]
    assert policy.policies[-1] == Inputs(exclude=["a", "b"])


def test_compound_key_hashes_the_member_keys_in_any_order() -> None:
    assert key(INPUTS + TASK_SOURCE) == key(TASK_SOURCE + INPUTS)
    assert key(RUN_ID + TASK_SOURCE) == key(TASK_SOURCE + RUN_ID)
    assert key(INPUTS + TASK_SOURCE) != key(INPUTS)
    assert key(INPUTS + TASK_SOURCE) != key(INPUTS + RUN_ID)


def test_compound_skips_members_without_a_key() -> None:
    # No inputs: Inputs gives None, the compound keys on the rest.
    assert key(INPUTS, {}) is None
    assert key(INPUTS + TASK_SOURCE, {}) == key(CompoundCachePolicy(policies=[TASK_SOURCE]), {})
    assert key(INPUTS + FLOW_PARAMETERS, {}) is None


def test_subtracting_a_name_excludes_it_from_inputs() -> None:
    assert Inputs(exclude=["y"]) == INPUTS - "y"
    assert key(INPUTS - "y", {"x": 1, "y": 1}) == key(INPUTS - "y", {"x": 1, "y": 2})
    assert key(INPUTS - "y", {"x": 1, "y": 1}) == key(INPUTS, {"x": 1})
    assert key(INPUTS - "y", {"x": 1, "y": 1}) != key(INPUTS - "y", {"x": 2, "y": 1})
    loose = DEFAULT - "y"
    assert key(loose, {"x": 1, "y": 1}) == key(loose, {"x": 1, "y": 2})
    assert key(DEFAULT, {"x": 1, "y": 1}) != key(DEFAULT, {"x": 1, "y": 2})
    assert TASK_SOURCE - "y" is TASK_SOURCE
    assert (TASK_SOURCE + RUN_ID) - "y" == TASK_SOURCE + RUN_ID
    with pytest.raises(TypeError):
        INPUTS - 1  # type: ignore[operator]


def test_base_policy_has_no_key() -> None:
    with pytest.raises(NotImplementedError):
        CachePolicy().compute_key(None, {}, {})


# -- members ----------------------------------------------------------------------------------


def test_inputs_key_follows_the_arguments() -> None:
    assert key(INPUTS, {"x": 1}) == key(INPUTS, {"x": 1})
    assert key(INPUTS, {"x": 1}) != key(INPUTS, {"x": 2})
    assert key(INPUTS, {"x": 1}) != key(INPUTS, {"x": 1.0})
    assert key(INPUTS, {"x": {"b", "a"}}) == key(INPUTS, {"x": {"a", "b"}})


def test_unhashable_input_names_the_argument() -> None:
    with pytest.raises(UnhashableInputError, match=r"argument 'lock'.*cache_key_fn.*NO_CACHE"):
        key(DEFAULT, {"x": 1, "lock": threading.Lock()})
    assert key(DEFAULT - "lock", {"x": 1, "lock": threading.Lock()}) is not None


def test_run_id_is_the_flow_run_or_else_the_task_run() -> None:
    in_flow = key(RUN_ID, ctx=ctx_for(id="t1", flow_run_id="f1"))
    assert in_flow == key(RUN_ID, ctx=ctx_for(id="t2", flow_run_id="f1"))
    assert in_flow != key(RUN_ID, ctx=ctx_for(id="t1", flow_run_id="f2"))
    alone = key(RUN_ID, ctx=ctx_for(id="t1", flow_run_id=None))
    assert alone != key(RUN_ID, ctx=ctx_for(id="t2", flow_run_id=None))
    assert RUN_ID.compute_key(None, {}, {}) is None


def test_flow_parameters() -> None:
    assert FLOW_PARAMETERS.compute_key(ctx_for(), {"x": 1}, {}) is None
    a = FLOW_PARAMETERS.compute_key(ctx_for(), {}, {"day": "2026-11-20"})
    b = FLOW_PARAMETERS.compute_key(ctx_for(), {}, {"day": "2026-11-21"})
    assert a and b and a != b
    assert isinstance(FLOW_PARAMETERS, FlowParameters)


def test_cache_key_fn_gets_context_and_inputs() -> None:
    seen: list[tuple[Any, dict[str, Any]]] = []

    def by_x(context: Any, parameters: dict[str, Any]) -> str | None:
        seen.append((context, parameters))
        return None if parameters["x"] < 0 else f"x={parameters['x']}"

    policy = CachePolicy.from_cache_key_fn(by_x)
    assert isinstance(policy, CacheKeyFnPolicy)
    ctx = ctx_for()
    first = policy.compute_key(ctx, {"x": 1}, {})
    assert seen == [(ctx, {"x": 1})]
    assert KEY.fullmatch(first or "")
    assert first == policy.compute_key(ctx_for(triple), {"x": 1}, {})
    assert first != policy.compute_key(ctx, {"x": 2}, {})
    assert policy.compute_key(ctx, {"x": -1}, {}) is None
    with pytest.raises(UsageError, match="cache_key_fn returned a value of type 'int'"):
        CacheKeyFnPolicy(lambda c, p: 7).compute_key(ctx, {}, {})  # type: ignore[arg-type,return-value]


# -- task source ------------------------------------------------------------------------------


def test_task_source_follows_the_function() -> None:
    assert key(TASK_SOURCE, ctx=ctx_for(double)) == key(TASK_SOURCE, ctx=ctx_for(double))
    assert key(TASK_SOURCE, ctx=ctx_for(double)) != key(TASK_SOURCE, ctx=ctx_for(triple))
    assert TASK_SOURCE.compute_key(None, {}, {}) is None


def test_task_source_without_source_uses_bytecode() -> None:
    def compiled(body: str) -> Any:
        namespace: dict[str, Any] = {}
        exec(f"def f(x):\n    return {body}", namespace)
        return namespace["f"]

    plus_one = key(TASK_SOURCE, ctx=ctx_for(compiled("x + 1")))
    assert plus_one and plus_one == key(TASK_SOURCE, ctx=ctx_for(compiled("x + 1")))
    assert plus_one != key(TASK_SOURCE, ctx=ctx_for(compiled("x + 2")))
    assert plus_one != key(TASK_SOURCE, ctx=ctx_for(compiled("{x, 'a'}")))


def _load(path: Path, name: str) -> ModuleType:
    spec = importlib.util.spec_from_file_location(name, path)
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_task_source_is_memoized_per_function_object(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    source = tmp_path / "flows_for_source_test.py"
    source.write_text("def work(x):\n    return x\n")
    first = _load(source, "flows_for_source_test").work
    before = key(TASK_SOURCE, ctx=ctx_for(first))

    source.write_text("def work(x):\n    return x * 100  # edited\n")
    # The same function object keeps its key: its code did not change.
    assert key(TASK_SOURCE, ctx=ctx_for(first)) == before
    # A function loaded from the edited file gets a new key.
    second = _load(source, "flows_for_source_test").work
    assert key(TASK_SOURCE, ctx=ctx_for(second)) != before

    def no_recompute(fn: object) -> None:
        raise AssertionError(f"source of {fn} read again")

    monkeypatch.setattr(cache_policies, "_compute_source_key", no_recompute)
    assert TASK_SOURCE.compute_key(ctx_for(first), {}, {}) == before
