"""Prefect's module paths for concurrency and rate limits: `orchlite.concurrency.sync` and
`orchlite.concurrency.asyncio`, each with `concurrency` and `rate_limit` (see
`orchlite.limits` for what a limit is and how slots are held).

`orchlite.concurrency` is also what `from orchlite import concurrency` gives, and that name
has always been the context manager: this package is callable, as `concurrency("db")`.
Importing a submodule makes the package an attribute of `orchlite`, so a plain function of
that name could not stay there once `orchlite.concurrency.sync` is imported.
"""

from __future__ import annotations

import sys
import types
from contextlib import AbstractContextManager
from typing import Any

from ..limits import concurrency as _concurrency


class _CallableModule(types.ModuleType):
    def __call__(self, *args: Any, **kwargs: Any) -> AbstractContextManager[None]:
        """`orchlite.concurrency.sync.concurrency(...)`: hold slots while a block runs."""
        return _concurrency(*args, **kwargs)


sys.modules[__name__].__class__ = _CallableModule
