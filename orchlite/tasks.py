"""`prefect.tasks` names: the `Task` class and the `@task` decorator, exponential backoff and
the classic input hash."""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable, Coroutine, Iterable
from datetime import timedelta
from typing import TYPE_CHECKING, Any, Generic, Literal, Protocol, TypedDict, overload

from . import timeouts
from .decorating import (
    HookDecorators,
    P,
    R,
    TransactionHook,
    callable_list,
    check_retries,
    check_serializer,
    fast_binder,
    function_identity,
    refuse_async_generators,
)
from .hashing import hash_parts, hash_value
from .retries import RetryDelay, exponential_backoff

if TYPE_CHECKING:
    from typing_extensions import Unpack

    from .cache_policies import CachePolicy
    from .futures import PrefectFutureList, TaskRunFuture
    from .states import State


class _TaskEngine(Protocol):
    """What a Task calls in `orchlite.task_engine` (the module itself is the implementation)."""

    def run_task(
        self, task: Task[..., Any], args: tuple[Any, ...], kwargs: dict[str, Any]
    ) -> Any: ...

    def run_task_async(
        self, task: Task[..., Any], args: tuple[Any, ...], kwargs: dict[str, Any]
    ) -> Coroutine[Any, Any, Any]: ...

    def submit_task(
        self, task: Task[..., Any], args: tuple[Any, ...], kwargs: dict[str, Any]
    ) -> TaskRunFuture[Any]: ...

    def map_task(
        self, task: Task[..., Any], args: tuple[Any, ...], kwargs: dict[str, Any]
    ) -> PrefectFutureList[Any]: ...


@functools.cache
def _task_engine() -> _TaskEngine:
    """The task engine, imported on the first task call (it sits above this module): an
    import statement in `Task.__call__` would cost each call a trip through importlib."""
    from . import task_engine

    return task_engine


class TaskOptions(TypedDict, total=False):
    """The options `Task.with_options(...)` takes: those of `@task(...)`."""

    name: str | None
    description: str | None
    tags: Iterable[str] | None
    version: str | None
    retries: int | None
    retry_delay_seconds: RetryDelay
    retry_jitter_factor: float | None
    retry_condition_fn: Callable[[Task[..., Any], Any, State], bool] | None
    timeout_seconds: float | None
    cache_policy: CachePolicy | None
    cache_key_fn: Callable[[Any, dict[str, Any]], str | None] | None
    cache_expiration: timedelta | None
    refresh_cache: bool | None
    persist_result: bool | None
    result_serializer: str | None
    log_prints: bool | None
    task_run_name: str | Callable[[], str] | None
    on_completion: Iterable[Callable[..., Any]] | None
    on_failure: Iterable[Callable[..., Any]] | None
    on_running: Iterable[Callable[..., Any]] | None
    on_commit: Iterable[Callable[..., Any]] | None
    on_rollback: Iterable[Callable[..., Any]] | None


class Task(HookDecorators, Generic[P, R]):
    """A function whose calls are recorded, retried, timed out and cached.

    Typed as the function it wraps: `P` its parameters, `R` its return type. A call with
    `return_state=True` or `wait_for=[...]` is typed with loose arguments: no parameter may
    stand between `*args: P.args` and `**kwargs: P.kwargs` (PEP 612). Neither keyword is
    passed to the function.
    """

    __orch_task__ = True

    def __init__(
        self,
        fn: Callable[P, R],
        *,
        name: str | None = None,
        description: str | None = None,
        tags: Iterable[str] | None = None,
        version: str | None = None,
        retries: int | None = None,
        retry_delay_seconds: RetryDelay = None,
        retry_jitter_factor: float | None = None,
        retry_condition_fn: Callable[[Task[..., Any], Any, State], bool] | None = None,
        timeout_seconds: float | None = None,
        cache_policy: CachePolicy | None = None,
        cache_key_fn: Callable[[Any, dict[str, Any]], str | None] | None = None,
        cache_expiration: timedelta | None = None,
        refresh_cache: bool | None = None,
        persist_result: bool | None = None,
        result_serializer: str | None = None,
        log_prints: bool | None = None,
        task_run_name: str | Callable[[], str] | None = None,
        on_completion: Iterable[Callable[..., Any]] | None = None,
        on_failure: Iterable[Callable[..., Any]] | None = None,
        on_running: Iterable[Callable[..., Any]] | None = None,
        on_commit: Iterable[Callable[..., Any]] | None = None,
        on_rollback: Iterable[Callable[..., Any]] | None = None,
    ) -> None:
        if not callable(fn):
            raise TypeError("@task must decorate a function")
        refuse_async_generators(fn, "task")
        check_retries(retries, timeout_seconds)
        check_serializer(result_serializer)
        if retry_jitter_factor is not None and retry_jitter_factor < 0:
            raise ValueError("retry_jitter_factor must be 0 or more")
        self.fn = fn
        self.is_async = inspect.iscoroutinefunction(fn)
        self.name = name or fn.__name__
        self.description = description or inspect.getdoc(fn)
        self.tags = set(tags or ())
        self.version = version
        self.retries = retries or 0
        self.retry_delay_seconds = retry_delay_seconds
        self.retry_jitter_factor = retry_jitter_factor
        self.retry_condition_fn = retry_condition_fn
        self.timeout_seconds = timeout_seconds
        self.cache_policy = cache_policy
        self.cache_key_fn = cache_key_fn
        self.cache_expiration = cache_expiration
        self.refresh_cache = refresh_cache
        self.persist_result = persist_result
        self.result_serializer = result_serializer
        self.log_prints = log_prints
        self.task_run_name = task_run_name
        self.on_completion_hooks = callable_list(on_completion)
        self.on_failure_hooks = callable_list(on_failure)
        self.on_running_hooks = callable_list(on_running)
        self.on_commit_hooks = callable_list(on_commit)
        self.on_rollback_hooks = callable_list(on_rollback)
        self.task_key = function_identity(fn)
        self.signature = inspect.signature(fn)
        self._fast_bind = fast_binder(self.signature)
        self.__doc__ = fn.__doc__
        self.__name__ = getattr(fn, "__name__", self.name)
        self.__qualname__ = getattr(fn, "__qualname__", self.name)
        self.__module__ = fn.__module__
        self.__wrapped__ = fn

    @overload
    def __call__(self, *args: Any, return_state: Literal[True], **kwargs: Any) -> State[R]: ...

    @overload
    def __call__(self, *args: Any, wait_for: Iterable[Any], **kwargs: Any) -> R: ...

    @overload
    def __call__(self, *args: P.args, **kwargs: P.kwargs) -> R: ...

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        """Run the task now; `return_state=True` returns its final State instead of raising,
        `wait_for=[futures]` waits for those runs first (see `submit`). Calling an
        `async def` task gives a coroutine to await."""
        if self.is_async:
            return _task_engine().run_task_async(self, args, kwargs)
        return timeouts.orchestrate(_task_engine().run_task, self, args, kwargs)

    @overload
    def submit(self, *args: Any, wait_for: Iterable[Any], **kwargs: Any) -> TaskRunFuture[R]: ...

    @overload
    def submit(self, *args: P.args, **kwargs: P.kwargs) -> TaskRunFuture[R]: ...

    def submit(self, *args: Any, **kwargs: Any) -> TaskRunFuture[R]:
        """Run this task through the flow's task runner; returns a future at once.

        `wait_for=[futures]`: the run starts once those task runs have ended, and records
        them as its upstream; if one failed, this one fails without running (unless it is
        wrapped in `allow_failure(...)`).
        """
        return timeouts.orchestrate(_task_engine().submit_task, self, args, kwargs)

    def map(
        self, *args: Any, wait_for: Iterable[Any] | None = None, **kwargs: Any
    ) -> PrefectFutureList[R]:
        """Submit one run per element of the iterable arguments (zipped, equal lengths);
        wrap an iterable in `unmapped(...)` to pass it whole to every run. Every run waits
        for all of `wait_for`."""
        if wait_for is not None:
            kwargs["wait_for"] = wait_for
        return timeouts.orchestrate(_task_engine().map_task, self, args, kwargs)

    def bind(self, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
        """The call's arguments with defaults applied.

        A plain dict (call as `fn(**arguments)`) for the common signature without `*args`,
        `**kwargs` or positional-only parameters; an `inspect.BoundArguments` otherwise.
        Raises TypeError, as the call itself would, for arguments that do not fit.
        """
        if self._fast_bind is not None:
            arguments = self._fast_bind(args, kwargs)
            if arguments is not None:
                return arguments
        bound = self.signature.bind(*args, **kwargs)
        bound.apply_defaults()
        return bound

    def with_options(self, **changes: Unpack[TaskOptions]) -> Task[P, R]:
        """A copy of this task with some options changed (same names as `@task`)."""
        options = self._options()
        unknown = set(changes) - set(options)
        if unknown:
            raise TypeError(f"unknown task option(s): {', '.join(sorted(unknown))}")
        merged: TaskOptions = {**options, **changes}
        return Task(self.fn, **merged)

    def _options(self) -> TaskOptions:
        return {
            "name": self.name,
            "description": self.description,
            "tags": set(self.tags),
            "version": self.version,
            "retries": self.retries,
            "retry_delay_seconds": self.retry_delay_seconds,
            "retry_jitter_factor": self.retry_jitter_factor,
            "retry_condition_fn": self.retry_condition_fn,
            "timeout_seconds": self.timeout_seconds,
            "cache_policy": self.cache_policy,
            "cache_key_fn": self.cache_key_fn,
            "cache_expiration": self.cache_expiration,
            "refresh_cache": self.refresh_cache,
            "persist_result": self.persist_result,
            "result_serializer": self.result_serializer,
            "log_prints": self.log_prints,
            "task_run_name": self.task_run_name,
            "on_completion": list(self.on_completion_hooks),
            "on_failure": list(self.on_failure_hooks),
            "on_running": list(self.on_running_hooks),
            "on_commit": list(self.on_commit_hooks),
            "on_rollback": list(self.on_rollback_hooks),
        }

    def on_commit(self, fn: TransactionHook) -> TransactionHook:
        """Called as `fn(transaction)` when the transaction of a completed run of this task
        commits: at once, or at the end of the `with transaction()` block it ran in."""
        self.on_commit_hooks.append(fn)
        return fn

    def on_rollback(self, fn: TransactionHook) -> TransactionHook:
        """Called as `fn(transaction)` when a completed run of this task is rolled back:
        the `with transaction()` block it ran in failed after it completed."""
        self.on_rollback_hooks.append(fn)
        return fn

    def __repr__(self) -> str:
        return f"Task(name={self.name!r})"


@overload
def task(__fn: Callable[P, R]) -> Task[P, R]: ...


@overload
def task(
    __fn: None = None,
    *,
    name: str | None = None,
    description: str | None = None,
    tags: Iterable[str] | None = None,
    version: str | None = None,
    retries: int | None = None,
    retry_delay_seconds: RetryDelay = None,
    retry_jitter_factor: float | None = None,
    retry_condition_fn: Callable[[Task[..., Any], Any, State], bool] | None = None,
    timeout_seconds: float | None = None,
    cache_policy: CachePolicy | None = None,
    cache_key_fn: Callable[[Any, dict[str, Any]], str | None] | None = None,
    cache_expiration: timedelta | None = None,
    refresh_cache: bool | None = None,
    persist_result: bool | None = None,
    result_serializer: str | None = None,
    log_prints: bool | None = None,
    task_run_name: str | Callable[[], str] | None = None,
    on_completion: Iterable[Callable[..., Any]] | None = None,
    on_failure: Iterable[Callable[..., Any]] | None = None,
    on_running: Iterable[Callable[..., Any]] | None = None,
    on_commit: Iterable[Callable[..., Any]] | None = None,
    on_rollback: Iterable[Callable[..., Any]] | None = None,
) -> Callable[[Callable[P, R]], Task[P, R]]: ...


def task(__fn: Callable[P, R] | None = None, **options: Any) -> Any:
    """Make a function a task; use bare (`@task`) or with options (`@task(retries=3)`)."""
    if __fn is not None:
        return Task(__fn, **options)
    return lambda fn: Task(fn, **options)


def task_input_hash(context: Any, arguments: dict[str, Any]) -> str | None:
    """A `cache_key_fn` keyed on the task's identity, code and arguments (Prefect's helper)."""
    fn = context.task.fn
    code = getattr(fn, "__code__", None)
    return hash_parts(
        {
            "task": context.task.task_key,
            "code": code.co_code if code is not None else b"",
            "arguments": hash_value(arguments, name="arguments"),
        }
    )


__all__ = ["Task", "TaskOptions", "exponential_backoff", "task", "task_input_hash"]
