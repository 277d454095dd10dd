"""`prefect.flows` names: the `Flow` class and the `@flow` decorator."""

from __future__ import annotations

import inspect
from collections.abc import Callable, Iterable
from datetime import timedelta
from typing import TYPE_CHECKING, Any, Generic, Literal, TypedDict, overload

from . import timeouts
from .decorating import (
    Hook,
    HookDecorators,
    P,
    R,
    callable_list,
    check_retries,
    check_serializer,
    refuse_async_generators,
)
from .names import default_flow_name

if TYPE_CHECKING:
    from typing_extensions import Unpack

    from .schedules import Schedule
    from .serving import Deployment
    from .states import State
    from .task_runners import TaskRunner
    from .triggers import Trigger


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


class Flow(HookDecorators, Generic[P, R]):
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
        refuse_async_generators(fn, "flow")
        check_retries(retries, timeout_seconds)
        check_serializer(result_serializer)
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
        self.on_completion_hooks = callable_list(on_completion)
        self.on_failure_hooks = callable_list(on_failure)
        self.on_cancellation_hooks = callable_list(on_cancellation)
        self.on_crashed_hooks = callable_list(on_crashed)
        self.on_running_hooks = callable_list(on_running)
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


__all__ = ["Flow", "FlowOptions", "flow"]
