"""Whether a task call caches, under which key, and the entry that answers it.

As in Prefect 3, keys are computed, looked up and written only when the task's results are
persisted (`caches`): the user asked for caching (`cache_policy`, `cache_key_fn`,
`persist_result=True` on the task or its flow, or the project setting). Results stored only
so that `orch retry` can resume never answer identical calls.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from .cache_policies import DEFAULT, NO_CACHE, CachePolicy, RunId
from .context import FlowRunContext, TaskRunContext
from .errors import UnhashableInputError
from .run_support import log
from .store import StoredResult

if TYPE_CHECKING:
    from .tasks import Task


def caches(task: Task[..., Any], ctx: FlowRunContext) -> bool:
    """Whether calls of `task` look up and write cache entries.

    Prefect 3's rule: a cache policy takes effect only when results are persisted. A task
    persists them when it says so (`persist_result`), when it asks for caching (a
    `cache_policy` other than NO_CACHE, a `cache_key_fn`) or sets a `result_serializer`;
    otherwise its flow run decides (`FlowRunContext.persists_results`). With
    `persist_result=False` a cache policy is ignored, with a warning.
    """
    if task.persist_result is False:
        if _asks_for_caching(task):
            _warn_ignored_policy(task)
        return False
    if task.persist_result or task.result_serializer is not None or _asks_for_caching(task):
        return True
    return ctx.persists_results()


def _asks_for_caching(task: Task[..., Any]) -> bool:
    if task.cache_key_fn is not None:
        return True
    return task.cache_policy is not None and not isinstance(task.cache_policy, type(NO_CACHE))


def _warn_ignored_policy(task: Task[..., Any]) -> None:
    """Warn once per task object, as Prefect warns once when the task is defined."""
    if task.__dict__.get("_orch_warned_ignored_policy"):
        return
    task.__dict__["_orch_warned_ignored_policy"] = True
    log.warning("Task %r: ignoring its cache policy because persist_result is False", task.name)


def cache_key(
    task: Task[..., Any], task_ctx: TaskRunContext, bound: dict[str, Any], ctx: FlowRunContext
) -> tuple[CachePolicy | None, str | None]:
    """The task's policy and the call's key (None: not cached). UnhashableInputError when
    a policy the user chose cannot hash the inputs."""
    if task.cache_key_fn is not None:
        from .cache_policies import CacheKeyFnPolicy

        policy: CachePolicy = CacheKeyFnPolicy(task.cache_key_fn)
    else:
        policy = task.cache_policy if task.cache_policy is not None else DEFAULT
    try:
        key = policy.compute_key(task_ctx, bound, ctx.parameters)
    except UnhashableInputError:
        if task.cache_policy is None and task.cache_key_fn is None:
            return None, None  # the implicit default quietly skips caching, as in Prefect
        raise
    return policy, key


def run_scoped(policy: CachePolicy | None) -> bool:
    """Whether keys of `policy` include the run id, so entries need not outlive the run.

    Remembered on the policy object: it is asked on every task call.
    """
    if policy is None:
        return False
    scoped: bool | None = policy.__dict__.get("_orch_run_scoped")
    if scoped is None:
        members = getattr(policy, "policies", (policy,))
        scoped = any(isinstance(p, RunId) for p in members)
        policy.__dict__["_orch_run_scoped"] = scoped
    return scoped


def run_cache_hit(key: str, ctx: FlowRunContext) -> StoredResult | None:
    """The stored result that answers a run-scoped `key` from this run's own cache."""
    run = ctx.run_cache.get(key)
    return None if run is None else run.result
