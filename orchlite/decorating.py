"""What `@task` and `@flow` share: the checks of their options, the decorator forms of their
hooks, a stable identity for a function and a fast argument binder.

The options and their names follow Prefect 3, so a Prefect flow file moves over by changing
its imports. The `Task` class lives in `orchlite.tasks` and `Flow` in `orchlite.flows`, as in
Prefect; calling either hands it to the engine, and the function itself stays available as
`.fn`.
"""

from __future__ import annotations

import inspect
import os
from collections.abc import Callable, Iterable
from typing import Any, ParamSpec, TypeVar

P = ParamSpec("P")
R = TypeVar("R")
Hook = TypeVar("Hook", bound=Callable[..., Any])
TransactionHook = TypeVar("TransactionHook", bound=Callable[..., Any])

SERIALIZER_NAMES = ("cloudpickle", "json")


def callable_list(hooks: Callable[..., Any] | Iterable[Callable[..., Any]] | None) -> list[Any]:
    if hooks is None:
        return []
    if callable(hooks):
        return [hooks]
    return list(hooks)


def check_serializer(name: str | None) -> None:
    if name is not None and name not in SERIALIZER_NAMES:
        raise ValueError(
            f"result_serializer must be one of {', '.join(SERIALIZER_NAMES)}, not {name!r}"
        )


def check_retries(retries: int | None, timeout: float | None) -> None:
    if retries is not None and retries < 0:
        raise ValueError(f"retries must be 0 or more, not {retries}")
    if timeout is not None and timeout <= 0:
        raise ValueError(f"timeout_seconds must be positive, not {timeout}")


def refuse_async_generators(fn: Callable[..., Any], kind: str) -> None:
    if inspect.isasyncgenfunction(fn):
        raise TypeError(
            f"@{kind} cannot decorate the async generator {fn.__qualname__!r}: "
            "return a value instead of yielding"
        )


def function_identity(fn: Callable[..., Any]) -> str:
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


def fast_binder(
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


class HookDecorators:
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
