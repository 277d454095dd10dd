"""Persisting run results: small values inline in the row, larger ones as blobs.

A value is serialized (cloudpickle by default, JSON on request) and, when it is at most
`INLINE_LIMIT` bytes, kept inside the task-run row itself, so a small result costs no file
and is committed atomically with its state. Larger values go to the content-addressed blob
store first; the row that references the blob is committed only after the blob is whole.

Beside the bytes, every persisted result gets a text preview: the start of its `repr()`
(at most `PREVIEW_CHARS` characters), with the values of secrets masked. Listings, `orch show`
and the TUI show that text. Nothing that only looks at a run unpickles it: a pickle is code,
so loading a stored value (`load`) is for the run that resumes from it and for the TUI's
explicit, confirmed "load results" action, and only from a store the user owns
(`check_owned`).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from . import serialize
from .blobs import BlobStore
from .errors import StoreError
from .redaction import check_result, redact, redact_cut, secrets_known
from .store import DB_NAME, StoredResult

INLINE_LIMIT = 4096
PREVIEW_CHARS = 300
_SHORT = 10**100
"""Integers below this in size have a repr shorter than a preview."""


_none_results: dict[str, StoredResult] = {}
"""`None` persisted, per serializer: what most tasks run for their effects return."""


def persist(value: Any, serializer: str, blobs: BlobStore) -> StoredResult:
    """Serialize `value`; SerializationError if it cannot be, SecretInResultError (one)
    if it holds a secret's value."""
    if value is None and not secrets_known():
        stored = _none_results.get(serializer)
        if stored is None:
            data = serialize.dumps(None, serializer)
            stored = _none_results[serializer] = StoredResult(serializer, data, None, "None")
        return stored
    data = serialize.dumps(value, serializer)
    check_result(data)
    shown = text_preview(value)
    if len(data) <= INLINE_LIMIT:
        return StoredResult(serializer, data=data, preview=shown)
    return StoredResult(serializer, blob=blobs.put(data), preview=shown)


def text_preview(value: Any) -> str:
    """The start of `repr(value)`, secrets masked, cut with `…` past `PREVIEW_CHARS`."""
    kind = type(value)
    if value is None or kind is bool or kind is float or (kind is int and -_SHORT < value < _SHORT):
        return redact(repr(value))  # short by construction (most task results)
    try:
        text, cut = serialize.repr_head(value, PREVIEW_CHARS - 1)
    except Exception as exc:  # a user's __repr__ that raises
        return redact(f"<{type(value).__qualname__}: repr() failed with {type(exc).__name__}>")
    return redact_cut(text) + "…" if cut else redact(text)


def load(stored: StoredResult, blobs: BlobStore) -> Any:
    """The value back; BlobError if its blob is missing or corrupt."""
    data = stored.data if stored.data is not None else blobs.get(stored.blob or "")
    return serialize.loads(data, stored.serializer)


def raw(stored: StoredResult, blobs: BlobStore) -> bytes:
    """The serialized bytes, without deserializing."""
    return stored.data if stored.data is not None else blobs.get(stored.blob or "")


def check_owned(home: Path) -> None:
    """StoreError unless this user owns the store at `home`: its folder, its database and
    its blob folder. Whoever owns a store can put any pickle in it, and a pickle runs code
    as whoever loads it, so results are loaded only from one's own store."""
    me = os.geteuid()
    for path in (home, home / DB_NAME, home / "blobs"):
        try:
            owner = path.stat().st_uid
        except FileNotFoundError:
            continue
        except OSError as exc:
            raise StoreError(f"cannot check who owns {path}: {exc.strerror or exc}") from None
        if owner != me:
            raise StoreError(
                f"{path} belongs to uid {owner}, not to you (uid {me}): results in a store "
                "someone else owns are never loaded, since loading one runs their code"
            )
