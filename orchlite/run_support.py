"""What flow runs and task runs share: ids, names, error descriptions, hooks, result
persistence, and the listeners that hear about state changes (the live view of `orch run`).
"""

from __future__ import annotations

import json
import logging
import os
import random
import sys
import traceback
from collections.abc import Callable
from typing import Any

from . import results
from .context import FlowRunContext
from .redaction import redact
from .states import State
from .store import StoredResult, TaskRun

log = logging.getLogger("orchlite.engine")

_listeners: list[Callable[[str, Any], None]] = []


def add_listener(fn: Callable[[str, Any], None]) -> None:
    """Call `fn(kind, record)` on each flow ("flow") and task ("task") state change."""
    _listeners.append(fn)


def remove_listener(fn: Callable[[str, Any], None]) -> None:
    if fn in _listeners:
        _listeners.remove(fn)


def listening() -> bool:
    """Whether anyone listens (checked before building a notification on the hot path)."""
    return bool(_listeners)


def notify_listeners(kind: str, record: Any) -> None:
    for fn in list(_listeners):
        try:
            fn(kind, record)
        except Exception:
            log.debug("listener failed", exc_info=True)


_ids = random.Random()
"""Seeded from os.urandom, private so that a flow calling `random.seed()` cannot make two
processes draw the same ids, and reseeded in a forked child, which would otherwise repeat
its parent's ids. Cheaper than a `getrandom` system call per id."""
os.register_at_fork(after_in_child=_ids.seed)


def new_run_id() -> str:
    """128 random bits as 32 hex digits (the entropy of a uuid4)."""
    return f"{_ids.getrandbits(128):032x}"


# -- flows --------------------------------------------------------------------------------


def persist_result(
    value: Any, serializer: str | None, persist: bool | None, ctx: FlowRunContext
) -> StoredResult | None:
    if persist is False:
        return None
    return results.persist(value, serializer or "cloudpickle", ctx.blobs)


# -- helpers ------------------------------------------------------------------------------


def run_hooks(
    hooks: list[Callable[..., Any]], owner: Any, run: Any, state: State, ctx: Any = None
) -> None:
    for hook in hooks:
        try:
            hook(owner, run, state)
        except Exception as exc:
            log.error("Hook %r failed: %s", getattr(hook, "__name__", hook), describe(exc))


def render_name(template: str | Callable[[], str] | None, values: dict[str, Any]) -> str | None:
    if template is None:
        return None
    try:
        name = str(template()) if callable(template) else template.format(**values)
        return redact(name)
    except Exception as exc:
        log.warning("Could not render run name %r: %s", template, describe(exc))
        return None


def error_text(exc: BaseException) -> str:
    """The error's message, secret values redacted: a state message for orchlite's own errors."""
    return redact(str(exc))


def describe(exc: BaseException) -> str:
    """ "Type: message", secret values redacted: what state messages say about an error."""
    text = redact(str(exc))
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


_PACKAGE_DIR = os.path.dirname(os.path.abspath(__file__))


def error_fields(exc: BaseException) -> tuple[str, str, str]:
    """(type, message, traceback), the traceback without orchlite's own frames, secret
    values redacted (in messages, notes and the source lines the traceback quotes)."""
    frames = [
        frame
        for frame in traceback.extract_tb(exc.__traceback__)
        if not frame.filename.startswith(_PACKAGE_DIR)
    ]
    text = "Traceback (most recent call last):\n" if frames else ""
    text += "".join(traceback.format_list(frames))
    text += "".join(traceback.format_exception_only(exc))
    if sys.version_info < (3, 11):  # from 3.11 on, format_exception_only prints the notes
        text += "".join(f"{note}\n" for note in getattr(exc, "__notes__", ()))
    return type(exc).__name__, redact(str(exc)), redact(text.rstrip())


def run_label(ctx: FlowRunContext, run: TaskRun | None = None) -> dict[str, Any]:
    if run is not None:
        return {"run_label": f"Task run {run.name!r}"}
    return {"run_label": f"Flow run {ctx.run_name!r}"}


def to_json(value: Any) -> str:

    return json.dumps(value, separators=(",", ":"), default=str)
