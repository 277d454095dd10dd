"""Cache policies: what a task's cache key is made of. Mirrors `prefect.cache_policies`.

    INPUTS            the task's bound arguments (`Inputs(exclude=[...])`, or `INPUTS - "name"`)
    TASK_SOURCE       the source code of the task's function
    RUN_ID            the flow run id (the task run id for a task called outside a flow)
    FLOW_PARAMETERS   the parameters of the flow run
    NO_CACHE          no key: the task is never cached
    DEFAULT           INPUTS + TASK_SOURCE + RUN_ID

`compute_key(task_ctx, inputs, flow_parameters)` returns a key in the `hashing.hash_parts`
format (`"v1:sha256:<hex>"`), or None for "do not cache this call". The engine passes a
`task_ctx` with `.task` (`.fn`, `.name`, `.task_key`), `.task_run` (`.id`, `.flow_run_id`,
None outside a flow) and `.parameters`.

Composition follows Prefect 3:

- `a + b` is a CompoundCachePolicy; compounds flatten, and their Inputs policies merge into
  one whose `exclude` is the union. `NO_CACHE + x` and `x + NO_CACHE` are `x`.
- A compound hashes the keys of its members together, skipping members that return None;
  it returns None only when every member does. The members are labelled by class name, so
  `INPUTS + TASK_SOURCE` and `TASK_SOURCE + INPUTS` give the same key.
- `policy - "name"` excludes an argument from Inputs policies and is a no-op for the others.
- Inputs returns None for a task called without arguments; FlowParameters returns None when
  there are no flow parameters; RunId and TaskSource return None without a `task_ctx`.
- CacheKeyFnPolicy calls `cache_key_fn(task_ctx, inputs)` (Prefect's `cache_key_fn(context,
  parameters)`); a None return means no caching, a str is folded into a tagged key, anything
  else is a UsageError.

Keys do not include the task's identity: as in Prefect, two tasks with the same key share a
cache entry. An argument that cannot be hashed raises UnhashableInputError naming it.
"""

from __future__ import annotations

import functools
import inspect
import threading
import types
import weakref
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from .errors import UsageError
from .hashing import canonical_bytes, hash_arguments, hash_parts

CacheKeyFn = Callable[[Any, dict[str, Any]], "str | None"]


@dataclass
class CachePolicy:
    """Base class of every cache policy."""

    @classmethod
    def from_cache_key_fn(cls, cache_key_fn: CacheKeyFn) -> CacheKeyFnPolicy:
        """A policy whose key is computed by `cache_key_fn(context, parameters)`."""
        return CacheKeyFnPolicy(cache_key_fn=cache_key_fn)

    def compute_key(
        self,
        task_ctx: Any,
        inputs: dict[str, Any],
        flow_parameters: dict[str, Any],
        **kwargs: Any,
    ) -> str | None:
        """The cache key of one task call, or None to not cache it."""
        raise NotImplementedError

    def key_part(
        self, task_ctx: Any, inputs: dict[str, Any], flow_parameters: dict[str, Any]
    ) -> str | bytes | None:
        """What this policy contributes inside a compound key (hashed once, by the compound).

        Defaults to the policy's own key; the built-in policies return their raw material
        so a compound of them costs one hash instead of one per member.
        """
        return self.compute_key(task_ctx, inputs, flow_parameters)

    def __add__(self, other: CachePolicy) -> CachePolicy:
        if not isinstance(other, CachePolicy):
            return NotImplemented
        if isinstance(other, _None):
            return self
        return CompoundCachePolicy(policies=[self, other])

    def __sub__(self, other: str) -> CachePolicy:
        if not isinstance(other, str):
            raise TypeError("only argument names (str) can be subtracted from a cache policy")
        return self


@dataclass
class CompoundCachePolicy(CachePolicy):
    """Several policies whose keys are hashed together; None keys are skipped."""

    policies: list[CachePolicy] = field(default_factory=list)

    def __post_init__(self) -> None:
        flat: list[CachePolicy] = []
        for policy in self.policies:
            if isinstance(policy, CompoundCachePolicy):
                flat.extend(policy.policies)
            elif not isinstance(policy, _None):
                flat.append(policy)
        inputs = [policy for policy in flat if isinstance(policy, Inputs)]
        self.policies = [policy for policy in flat if not isinstance(policy, Inputs)]
        if inputs:
            excluded = sorted({name for policy in inputs for name in policy.exclude})
            self.policies.append(Inputs(exclude=excluded))
        self._labels: list[str] = []
        for policy in self.policies:
            label = name = type(policy).__name__
            count = 1
            while label in self._labels:
                count += 1
                label = f"{name}#{count}"
            self._labels.append(label)

    def compute_key(
        self,
        task_ctx: Any,
        inputs: dict[str, Any],
        flow_parameters: dict[str, Any],
        **kwargs: Any,
    ) -> str | None:
        keys: dict[str, str | bytes] = {}
        for label, policy in zip(self._labels, self.policies, strict=True):
            key = policy.key_part(task_ctx, inputs, flow_parameters)
            if key is not None:
                keys[label] = key
        if not keys:
            return None
        return hash_parts(keys)

    def __add__(self, other: CachePolicy) -> CachePolicy:
        if not isinstance(other, CachePolicy):
            return NotImplemented
        if isinstance(other, _None):
            return self
        return CompoundCachePolicy(policies=[*self.policies, other])

    def __sub__(self, other: str) -> CachePolicy:
        if not isinstance(other, str):
            raise TypeError("only argument names (str) can be subtracted from a cache policy")
        if not any(isinstance(policy, Inputs) for policy in self.policies):
            return self
        return CompoundCachePolicy(policies=[*self.policies, Inputs(exclude=[other])])


@dataclass
class _None(CachePolicy):
    """No key: the task is never cached. Adding it to a policy changes nothing."""

    def compute_key(
        self,
        task_ctx: Any,
        inputs: dict[str, Any],
        flow_parameters: dict[str, Any],
        **kwargs: Any,
    ) -> str | None:
        return None

    def __add__(self, other: CachePolicy) -> CachePolicy:
        if not isinstance(other, CachePolicy):
            return NotImplemented
        return other


@dataclass
class Inputs(CachePolicy):
    """The task's bound arguments, minus the names in `exclude`."""

    exclude: list[str] = field(default_factory=list)

    def compute_key(
        self,
        task_ctx: Any,
        inputs: dict[str, Any],
        flow_parameters: dict[str, Any],
        **kwargs: Any,
    ) -> str | None:
        part = self.key_part(task_ctx, inputs, flow_parameters)
        return None if part is None else hash_parts({"inputs": part})

    def key_part(
        self, task_ctx: Any, inputs: dict[str, Any], flow_parameters: dict[str, Any]
    ) -> str | None:
        if not inputs:
            return None
        if not self.exclude:
            # The engine has already hashed these very arguments for the task run.
            known = getattr(getattr(task_ctx, "task_run", None), "inputs_hash", None)
            if known is not None:
                return str(known)
        selected = {name: value for name, value in inputs.items() if name not in self.exclude}
        return hash_arguments(selected)

    def __sub__(self, other: str) -> CachePolicy:
        if not isinstance(other, str):
            raise TypeError("only argument names (str) can be subtracted from a cache policy")
        return Inputs(exclude=[*self.exclude, other])


@dataclass
class TaskSource(CachePolicy):
    """The source code of the task's function (its bytecode when the source is unavailable).

    Computed once per function object: the source of a function object cannot change.
    """

    def compute_key(
        self,
        task_ctx: Any,
        inputs: dict[str, Any],
        flow_parameters: dict[str, Any],
        **kwargs: Any,
    ) -> str | None:
        if task_ctx is None:
            return None
        return _source_key(task_ctx.task.fn)


@dataclass
class RunId(CachePolicy):
    """The flow run id, or the task run id for a task called outside a flow."""

    def compute_key(
        self,
        task_ctx: Any,
        inputs: dict[str, Any],
        flow_parameters: dict[str, Any],
        **kwargs: Any,
    ) -> str | None:
        part = self.key_part(task_ctx, inputs, flow_parameters)
        return None if part is None else _run_id_key(part)

    def key_part(
        self, task_ctx: Any, inputs: dict[str, Any], flow_parameters: dict[str, Any]
    ) -> str | None:
        if task_ctx is None:
            return None
        run_id = task_ctx.task_run.flow_run_id
        if run_id is None:
            run_id = task_ctx.task_run.id
        return str(run_id)


@dataclass
class FlowParameters(CachePolicy):
    """The parameters of the flow run the task runs in."""

    def compute_key(
        self,
        task_ctx: Any,
        inputs: dict[str, Any],
        flow_parameters: dict[str, Any],
        **kwargs: Any,
    ) -> str | None:
        if not flow_parameters:
            return None
        return hash_parts({"flow_parameters": hash_arguments(flow_parameters)})


@dataclass
class CacheKeyFnPolicy(CachePolicy):
    """A key computed by the user: `cache_key_fn(task_ctx, inputs) -> str | None`."""

    cache_key_fn: CacheKeyFn | None = None

    def compute_key(
        self,
        task_ctx: Any,
        inputs: dict[str, Any],
        flow_parameters: dict[str, Any],
        **kwargs: Any,
    ) -> str | None:
        if self.cache_key_fn is None:
            return None
        key = self.cache_key_fn(task_ctx, inputs)
        if key is None:
            return None
        if not isinstance(key, str):
            raise UsageError(
                f"cache_key_fn returned a value of type '{type(key).__qualname__}'; "
                "it must return a str, or None to not cache the call"
            )
        return hash_parts({"cache_key_fn": key})


@functools.lru_cache(maxsize=256)
def _run_id_key(run_id: str) -> str:
    """Memoized: every task call of a run asks for the same key."""
    return hash_parts({"run_id": run_id})


# -- task source --------------------------------------------------------------------------------

_source_keys: weakref.WeakKeyDictionary[Any, str | None] = weakref.WeakKeyDictionary()
_source_lock = threading.Lock()


def _source_key(fn: Any) -> str | None:
    """The TASK_SOURCE key of a function, memoized per function object."""
    try:
        return _source_keys[fn]
    except KeyError:
        pass
    except TypeError:  # not weak-referenceable (or unhashable): compute every time
        return _compute_source_key(fn)
    key = _compute_source_key(fn)
    with _source_lock:
        _source_keys[fn] = key
    return key


def _compute_source_key(fn: Any) -> str | None:
    target = inspect.unwrap(fn)
    while isinstance(target, functools.partial):
        target = inspect.unwrap(target.func)
    candidates = [target]
    if not isinstance(target, (types.FunctionType, types.MethodType, type)):
        candidates.append(type(target))  # a callable instance: the source of its class
    for candidate in candidates:
        try:
            return hash_parts({"source": inspect.getsource(candidate)})
        except (OSError, TypeError):
            continue
    code = getattr(getattr(target, "__func__", target), "__code__", None)
    if isinstance(code, types.CodeType):
        return hash_parts({"code": _code_bytes(code)})
    return None


def _code_bytes(code: types.CodeType) -> bytes:
    """Bytecode, names and constants of a code object and of the code objects it holds."""
    parts = [code.co_code, canonical_bytes(list(code.co_names))]
    for const in code.co_consts:
        if isinstance(const, types.CodeType):
            parts.append(_code_bytes(const))
        else:
            parts.append(canonical_bytes(const))
    return b"".join(b"%d:%s" % (len(part), part) for part in parts)


INPUTS = Inputs()
NONE = _None()
NO_CACHE = _None()
TASK_SOURCE = TaskSource()
FLOW_PARAMETERS = FlowParameters()
RUN_ID = RunId()
DEFAULT = INPUTS + TASK_SOURCE + RUN_ID
