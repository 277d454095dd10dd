"""Build a declaration like `cron("0 3 * * *")` from a flow file's source without running it.

The daemon and `orch schedules` read `@flow(schedules=[...], triggers=[...])` with `ast`, so
only calls with literal arguments can be understood; anything else is a clear error that
points at orch.toml, where the same declaration needs no code at all.
"""

from __future__ import annotations

import ast
from collections.abc import Callable, Mapping
from typing import Any

from .errors import UsageError


def build_literal_call(
    node: ast.expr,
    aliases: Mapping[str, str],
    builders: Mapping[str, Callable[..., Any]],
    what: str,
) -> Any:
    """Call the builder `node` names (directly, through an import alias in `aliases`, or as
    `module.name`) with `node`'s literal arguments; UsageError when that is not possible."""
    func = node.func if isinstance(node, ast.Call) else None
    if isinstance(func, ast.Name):
        kind = aliases.get(func.id)
    elif isinstance(func, ast.Attribute):
        kind = func.attr
    else:
        kind = None
    source = ast.unparse(node)
    if not isinstance(node, ast.Call) or kind is None or kind not in builders:
        expected = " or ".join(f"{name}(...)" for name in builders)
        raise UsageError(f"cannot read {source!r}: expected {expected}")
    try:
        args = [ast.literal_eval(a) for a in node.args]
        kwargs = {kw.arg: ast.literal_eval(kw.value) for kw in node.keywords if kw.arg}
    except (ValueError, TypeError, SyntaxError, MemoryError, RecursionError):
        raise UsageError(
            f"cannot read {source!r} without running the file: "
            f"use literal arguments only (or declare the {what} in orch.toml)"
        ) from None
    if len(kwargs) != len(node.keywords):
        raise UsageError(f"cannot read {source!r}: **kwargs are not supported")
    try:
        return builders[kind](*args, **kwargs)
    except TypeError as exc:
        raise UsageError(f"{source}: {exc}") from None
