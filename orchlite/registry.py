"""`@task` and `@flow`: wrap plain functions in Task and Flow objects, keeping signatures.

The options and their names follow Prefect 3, so a Prefect flow file moves over by changing
its imports. Calling a Task or Flow hands it to the engine; the function itself stays
available as `.fn`.
"""

from __future__ import annotations

import functools
import inspect
import os
from collections.abc import Callable, Coroutine, Iterable
from datetime import timedelta
from typing import (
    TYPE_CHECKING,
    Any,
    Generic,
    Literal,
    ParamSpec,
    Protocol,
    TypedDict,
    TypeVar,
    overload,
)

from . import timeouts
from .names import default_flow_name
from .retries import RetryDelay

if TYPE_CHECKING:
    from typing_extensions import Unpack

    from .cache_policies import CachePolicy
    from .futures import PrefectFutureList, TaskRunFuture
    from .schedules import Schedule
    from .serving import Deployment
    from .states import State
    from .task_runners import TaskRunner
    from .triggers import Trigger

P = ParamSpec("P")
R = TypeVar("R")
Hook = TypeVar("Hook", bound=Callable[..., Any])
TransactionHook = TypeVar("TransactionHook", bound=Callable[..., Any])

SERIALIZER_NAMES = ("cloudpickle", "json")


def _callable_list(hooks: Callable[..., Any] | Iterable[Callable[..., Any]] | None) -> list[Any]:
    if hooks is None:
        return []
    if callable(hooks):
        return [hooks]
    return list(hooks)


def _check_serializer(name: str | None) -> None:
    if name is not None and name not in SERIALIZER_NAMES:
        raise ValueError(
            f"result_serializer must be one of {', '.join(SERIALIZER_NAMES)}, not {name!r}"
        )


def _check_retries(retries: int | None, timeout: float | None) -> None:
    if retries is not None and retries < 0:
        raise ValueError(f"retries must be 0 or more, not {retries}")
    if timeout is not None and timeout <= 0:
        raise ValueError(f"timeout_seconds must be positive, not {timeout}")


def _refuse_async_generators(fn: Callable[..., Any], kind: str) -> None:
    if inspect.isasyncgenfunction(fn):
        raise TypeError(
            f"@{kind} cannot decorate the async generator {fn.__qualname__!r}: "
            "return a value instead of yielding"
        )


def _identity(fn: Callable[..., Any]) -> str:
    """A stable identity for a function: its qualified name and its file's name.

    The module name is not used because the same file is `__main__` under `python file.py`
    and a named module under `orch run file.py:flow`; cache keys must not change with it.
    """
    code = getattr(fn, "__code__", None)
    filename = os.path.basename(code.co_filename) if code else getattr(fn, "__module__", "")
    return f"{fn.__qualname__}@{filename}"


_SIMPLE_KINDS = (
    inspect.Parameter.POSITIONAL_OR_KEYWORD,
    inspect.Parameter.KEYWORD_ONLY,
)


def _fast_binder(
    signature: inspect.Signature,
) -> Callable[[tuple[Any, ...], dict[str, Any]], dict[str, Any] | None] | None:
    """A binder ~5x cheaper than `Signature.bind` for signatures made of named parameters.

    It returns None whenever the call is not plainly valid, and the caller falls back to
    `Signature.bind`, which raises the usual TypeError.
    """
    params = list(signature.parameters.values())
    if not all(p.kind in _SIMPLE_KINDS for p in params):
        return None
    names = tuple(p.name for p in params)
    name_set = frozenset(names)
    positional = sum(1 for p in params if p.kind is inspect.Parameter.POSITIONAL_OR_KEYWORD)
    defaults = {p.name: p.default for p in params if p.default is not p.empty}

    def bind(args: tuple[Any, ...], kwargs: dict[str, Any]) -> dict[str, Any] | None:
        if len(args) > positional:
            return None
        arguments = dict(zip(names, args, strict=False))
        if kwargs:
            for key in kwargs:
                if key not in name_set or key in arguments:
                    return None
            arguments.update(kwargs)
        if len(arguments) < len(names):
            for name in names:
                if name not in arguments:
                    if name not in defaults:
                        return None
                    arguments[name] = defaults[name]
        return arguments

    return bind


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


class FlowOptions(TypedDict, total=False):
    """The options `Flow.with_options(...)` takes: those of `@flow(...)`."""

    name: str | None
    version: str | None
    flow_run_name: str | Callable[[], str] | None
    description: str | None
    retries: int | None
    retry_delay_seconds: float | int | None
    timeout_seconds: float | None
    validate_parameters: bool
    persist_result: bool | None
    result_serializer: str | None
    log_prints: bool | None
    task_runner: TaskRunner | None
    on_completion: Iterable[Callable[..., Any]] | None
    on_failure: Iterable[Callable[..., Any]] | None
    on_cancellation: Iterable[Callable[..., Any]] | None
    on_crashed: Iterable[Callable[..., Any]] | None
    on_running: Iterable[Callable[..., Any]] | None
    schedules: Iterable[Schedule] | None
    triggers: Iterable[Trigger] | None
    secrets: Iterable[str] | None


class _HookDecorators:
    """The decorator forms of the hooks a task and a flow share: `@my_task.on_failure`
    registers the function as `on_failure=[fn]` would, and returns it."""

    on_completion_hooks: list[Callable[..., Any]]
    on_failure_hooks: list[Callable[..., Any]]
    on_running_hooks: list[Callable[..., Any]]

    def on_completion(self, fn: Hook) -> Hook:
        """Called as `fn(task_or_flow, run, state)` when a run completes."""
        self.on_completion_hooks.append(fn)
        return fn

    def on_failure(self, fn: Hook) -> Hook:
        """Called as `fn(task_or_flow, run, state)` when a run fails."""
        self.on_failure_hooks.append(fn)
        return fn

    def on_running(self, fn: Hook) -> Hook:
        """Called as `fn(task_or_flow, run, state)` each time a run enters RUNNING (each
        attempt)."""
        self.on_running_hooks.append(fn)
        return fn


class Task(_HookDecorators, Generic[P, R]):
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
        _refuse_async_generators(fn, "task")
        _check_retries(retries, timeout_seconds)
        _check_serializer(result_serializer)
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
        self.on_completion_hooks = _callable_list(on_completion)
        self.on_failure_hooks = _callable_list(on_failure)
        self.on_running_hooks = _callable_list(on_running)
        self.on_commit_hooks = _callable_list(on_commit)
        self.on_rollback_hooks = _callable_list(on_rollback)
        self.task_key = _identity(fn)
        self.signature = inspect.signature(fn)
        self._fast_bind = _fast_binder(self.signature)
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


class Flow(_HookDecorators, Generic[P, R]):
    """A function whose calls are recorded as flow runs; tasks called inside belong to it."""

    __orch_flow__ = True

    def __init__(
        self,
        fn: Callable[P, R],
        *,
        name: str | None = None,
        version: str | None = None,
        flow_run_name: str | Callable[[], str] | None = None,
        description: str | None = None,
        retries: int | None = None,
        retry_delay_seconds: float | int | None = None,
        timeout_seconds: float | None = None,
        validate_parameters: bool = True,
        persist_result: bool | None = None,
        result_serializer: str | None = None,
        log_prints: bool | None = None,
        task_runner: TaskRunner | None = None,
        on_completion: Iterable[Callable[..., Any]] | None = None,
        on_failure: Iterable[Callable[..., Any]] | None = None,
        on_cancellation: Iterable[Callable[..., Any]] | None = None,
        on_crashed: Iterable[Callable[..., Any]] | None = None,
        on_running: Iterable[Callable[..., Any]] | None = None,
        schedules: Iterable[Schedule] | None = None,
        triggers: Iterable[Trigger] | None = None,
        secrets: Iterable[str] | None = None,
    ) -> None:
        if not callable(fn):
            raise TypeError("@flow must decorate a function")
        _refuse_async_generators(fn, "flow")
        _check_retries(retries, timeout_seconds)
        _check_serializer(result_serializer)
        self.fn = fn
        self.is_async = inspect.iscoroutinefunction(fn)
        self.name = name or default_flow_name(fn.__name__)
        self.version = version
        self.flow_run_name = flow_run_name
        self.description = description or inspect.getdoc(fn)
        self.retries = retries or 0
        self.retry_delay_seconds = retry_delay_seconds
        self.timeout_seconds = timeout_seconds
        self.validate_parameters = validate_parameters
        self.persist_result = persist_result
        self.result_serializer = result_serializer
        self.log_prints = log_prints
        self.task_runner = task_runner
        self.on_completion_hooks = _callable_list(on_completion)
        self.on_failure_hooks = _callable_list(on_failure)
        self.on_cancellation_hooks = _callable_list(on_cancellation)
        self.on_crashed_hooks = _callable_list(on_crashed)
        self.on_running_hooks = _callable_list(on_running)
        self.schedules = _schedule_list(schedules)
        self.triggers = _trigger_list(triggers)
        self.secrets = _secret_names(secrets)
        self.signature = inspect.signature(fn)
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
        """Run the flow now; `return_state=True` returns its final State instead of raising,
        `wait_for=[futures]` waits for those task runs first (a failed one fails the run
        before its body starts). Calling an `async def` flow gives a coroutine to await."""
        from .engine import run_flow, run_flow_async

        if self.is_async:
            return run_flow_async(self, args, kwargs)
        return timeouts.orchestrate(run_flow, self, args, kwargs)

    def to_deployment(
        self,
        name: str | None = None,
        *,
        cron: str | Iterable[str] | None = None,
        interval: float | timedelta | Iterable[float | timedelta] | None = None,
        schedules: Iterable[Schedule] | None = None,
        parameters: dict[str, Any] | None = None,
        timezone: str = "UTC",
    ) -> Deployment:
        """This flow with schedules, for `orchlite.serve(...)` (see `orchlite.serving`)."""
        from .serving import to_deployment

        return to_deployment(
            self,
            name,
            cron=cron,
            interval=interval,
            schedules=schedules,
            parameters=parameters,
            timezone=timezone,
        )

    def serve(
        self,
        name: str | None = None,
        *,
        cron: str | Iterable[str] | None = None,
        interval: float | timedelta | Iterable[float | timedelta] | None = None,
        schedules: Iterable[Schedule] | None = None,
        parameters: dict[str, Any] | None = None,
        timezone: str = "UTC",
        limit: int | None = None,
        print_starting_message: bool = True,
    ) -> None:
        """Serve this flow's schedules in the foreground until Ctrl-C, as Prefect's
        `flow.serve(...)`, with the daemon's loop (see `orchlite.serving`)."""
        from .serving import serve

        deployment = self.to_deployment(
            name,
            cron=cron,
            interval=interval,
            schedules=schedules,
            parameters=parameters,
            timezone=timezone,
        )
        serve(deployment, limit=limit, print_starting_message=print_starting_message)

    def with_options(self, **changes: Unpack[FlowOptions]) -> Flow[P, R]:
        """A copy of this flow with some options changed (same names as `@flow`)."""
        options = self._options()
        unknown = set(changes) - set(options)
        if unknown:
            raise TypeError(f"unknown flow option(s): {', '.join(sorted(unknown))}")
        merged: FlowOptions = {**options, **changes}
        return Flow(self.fn, **merged)

    def _options(self) -> FlowOptions:
        return {
            "name": self.name,
            "version": self.version,
            "flow_run_name": self.flow_run_name,
            "description": self.description,
            "retries": self.retries,
            "retry_delay_seconds": self.retry_delay_seconds,
            "timeout_seconds": self.timeout_seconds,
            "validate_parameters": self.validate_parameters,
            "persist_result": self.persist_result,
            "result_serializer": self.result_serializer,
            "log_prints": self.log_prints,
            "task_runner": self.task_runner,
            "on_completion": list(self.on_completion_hooks),
            "on_failure": list(self.on_failure_hooks),
            "on_cancellation": list(self.on_cancellation_hooks),
            "on_crashed": list(self.on_crashed_hooks),
            "on_running": list(self.on_running_hooks),
            "schedules": list(self.schedules),
            "triggers": list(self.triggers),
            "secrets": list(self.secrets),
        }

    def on_cancellation(self, fn: Hook) -> Hook:
        """Decorator form of `on_cancellation=[fn]`: `@my_flow.on_cancellation`."""
        self.on_cancellation_hooks.append(fn)
        return fn

    def on_crashed(self, fn: Hook) -> Hook:
        """Decorator form of `on_crashed=[fn]`: `@my_flow.on_crashed`."""
        self.on_crashed_hooks.append(fn)
        return fn

    def __repr__(self) -> str:
        return f"Flow(name={self.name!r})"


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


@overload
def flow(__fn: Callable[P, R]) -> Flow[P, R]: ...


@overload
def flow(
    __fn: None = None,
    *,
    name: str | None = None,
    version: str | None = None,
    flow_run_name: str | Callable[[], str] | None = None,
    description: str | None = None,
    retries: int | None = None,
    retry_delay_seconds: float | int | None = None,
    timeout_seconds: float | None = None,
    validate_parameters: bool = True,
    persist_result: bool | None = None,
    result_serializer: str | None = None,
    log_prints: bool | None = None,
    task_runner: TaskRunner | None = None,
    on_completion: Iterable[Callable[..., Any]] | None = None,
    on_failure: Iterable[Callable[..., Any]] | None = None,
    on_cancellation: Iterable[Callable[..., Any]] | None = None,
    on_crashed: Iterable[Callable[..., Any]] | None = None,
    on_running: Iterable[Callable[..., Any]] | None = None,
    schedules: Iterable[Schedule] | None = None,
    triggers: Iterable[Trigger] | None = None,
    secrets: Iterable[str] | None = None,
) -> Callable[[Callable[P, R]], Flow[P, R]]: ...


def flow(__fn: Callable[P, R] | None = None, **options: Any) -> Any:
    """Make a function a flow; use bare (`@flow`) or with options (`@flow(retries=2)`)."""
    if __fn is not None:
        return Flow(__fn, **options)
    return lambda fn: Flow(fn, **options)


def _schedule_list(schedules: Iterable[Schedule] | None) -> list[Schedule]:
    """`schedules=` as a list, each a `cron(...)` or `interval(...)` (read by `orch daemon`)."""
    from .schedules import Cron, Interval

    if schedules is None:
        return []
    if isinstance(schedules, (Cron, Interval)):
        schedules = [schedules]
    items = list(schedules)
    for item in items:
        if not isinstance(item, (Cron, Interval)):
            raise TypeError(f"schedules must hold cron(...) or interval(...), not {item!r}")
    return items


def _trigger_list(triggers: Iterable[Trigger] | None) -> list[Trigger]:
    """`triggers=` as a list of `on_files(...)` / `on_flow(...)` (read by `orch daemon`)."""
    from .triggers import trigger_list

    return trigger_list(triggers)


def _secret_names(secrets: Iterable[str] | None) -> tuple[str, ...]:
    """`secrets=` as a tuple of names the flow may read with `orchlite.secret()`."""
    from .secret_store import check_name

    if secrets is None:
        return ()
    if isinstance(secrets, str):
        secrets = [secrets]
    return tuple(dict.fromkeys(check_name(name) for name in secrets))
