"""Variables, as Prefect 3's `prefect.variables.Variable`: named, mutable JSON values kept in
the project's `.orch/` (not in a server), for configuration that changes without a code
change.

    from orchlite.variables import Variable

    Variable.set("batch_size", 500)
    Variable.get("batch_size", default=100)       # 500
    Variable.set("batch_size", 1000, overwrite=True)
    Variable.unset("batch_size")                  # True

`orch variable set/get/ls/rm` does the same from the shell. Names follow Prefect's rules
(lowercase letters, digits, `_` and `-`; at most 255 characters); values are any JSON value
whose JSON text is at most 5,000 characters. Variables are not secrets: use
`orchlite.secret()` for those.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from .context import current_store, existing_store
from .errors import UsageError

if TYPE_CHECKING:
    from .store import Store

MAX_NAME = 255
MAX_VALUE = 5000
_NAME = re.compile(r"[a-z0-9_-]+")


@dataclass
class Variable:
    """A variable as stored: its name, JSON value and tags."""

    name: str
    value: Any
    tags: list[str] = field(default_factory=list)

    @classmethod
    def set(
        cls,
        name: str,
        value: Any,
        tags: Iterable[str] | None = None,
        overwrite: bool = False,
    ) -> Variable:
        """Store `value` under `name`; ValueError if it exists and `overwrite` is False."""
        return set_in(current_store(), name, value, tags, overwrite)

    @classmethod
    def get(cls, name: str, default: Any = None) -> Any:
        """The value of `name`, or `default` when there is no such variable."""
        return get_in(existing_store(), name, default)

    @classmethod
    def unset(cls, name: str) -> bool:
        """Delete `name`; False if there was no such variable."""
        return unset_in(existing_store(), name)

    @classmethod
    async def aset(
        cls,
        name: str,
        value: Any,
        tags: Iterable[str] | None = None,
        overwrite: bool = False,
    ) -> Variable:
        return cls.set(name, value, tags, overwrite)

    @classmethod
    async def aget(cls, name: str, default: Any = None) -> Any:
        return cls.get(name, default)

    @classmethod
    async def aunset(cls, name: str) -> bool:
        return cls.unset(name)


# The same, in a given store (`orch variable` passes the one its command line names).


def set_in(
    store: Store,
    name: str,
    value: Any,
    tags: Iterable[str] | None = None,
    overwrite: bool = False,
) -> Variable:
    """`Variable.set` in `store`."""
    check_name(name)
    text = _to_json(name, value)
    tag_list = sorted({str(t) for t in tags or ()})
    if not store.set_variable(name, text, json.dumps(tag_list), overwrite=overwrite):
        raise ValueError(f"Variable {name!r} already exists. Use `overwrite=True` to update it.")
    return Variable(name, json.loads(text), tag_list)


def get_in(store: Store | None, name: str, default: Any = None) -> Any:
    """`Variable.get` in `store` (None: nothing was ever recorded)."""
    row = store.get_variable(name) if store is not None else None
    return default if row is None else json.loads(row[0])


def unset_in(store: Store | None, name: str) -> bool:
    """`Variable.unset` in `store` (None: nothing was ever recorded)."""
    return store is not None and store.delete_variable(name)


def check_name(name: str) -> None:
    if not isinstance(name, str) or not _NAME.fullmatch(name) or len(name) > MAX_NAME:
        raise UsageError(
            f"invalid variable name {name!r}: use lowercase letters, digits, _ and -"
            f" (at most {MAX_NAME} characters)"
        )


def _to_json(name: str, value: Any) -> str:
    try:
        text = json.dumps(value, separators=(",", ":"), allow_nan=False)
    except (TypeError, ValueError) as exc:
        raise UsageError(f"variable {name!r}: the value must be JSON ({exc})") from None
    if len(text) > MAX_VALUE:
        raise UsageError(
            f"variable {name!r}: the value is {len(text):,} characters of JSON"
            f" (at most {MAX_VALUE:,})"
        )
    return text
