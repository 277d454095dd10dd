"""`tags(...)`, as Prefect's `prefect.tags`: every flow run and task run created inside the
block carries these tags, on top of a task's own `@task(tags=...)`.

    with tags("nightly", "eu"):
        etl()           # the flow run and its task runs are tagged nightly and eu

Blocks nest, adding to the tags around them. Tags are recorded on the runs (`orch show`,
`orch runs --tag NAME`), and a task run's tags, from the block too, take slots of the
concurrency limits of those names.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar

_current: ContextVar[frozenset[str]] = ContextVar("orch_tags", default=frozenset())


@contextmanager
def tags(*names: str) -> Iterator[set[str]]:
    """Tag the runs created in the block; yields every tag in effect."""
    for name in names:
        if not isinstance(name, str) or not name.strip():
            raise ValueError(f"a tag must be a non-empty string, not {name!r}")
    token = _current.set(_current.get() | frozenset(names))
    try:
        yield set(_current.get())
    finally:
        _current.reset(token)


def current_tags() -> frozenset[str]:
    """The tags of the enclosing `tags(...)` blocks."""
    return _current.get()
