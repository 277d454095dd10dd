"""Persisting run results: small values inline in the row, larger ones as blobs.

A value is serialized (cloudpickle by default, JSON on request) and, when it is at most
`INLINE_LIMIT` bytes, kept inside the task-run row itself, so a small result costs no file
and is committed atomically with its state. Larger values go to the content-addressed blob
store first; the row that references the blob is committed only after the blob is whole.
"""

from __future__ import annotations

from typing import Any

from . import serialize
from .blobs import BlobStore
from .redaction import check_result
from .store import StoredResult

INLINE_LIMIT = 4096


def persist(value: Any, serializer: str, blobs: BlobStore) -> StoredResult:
    """Serialize `value`; SerializationError if it cannot be, SecretInResultError (one)
    if it holds a secret's value."""
    data = serialize.dumps(value, serializer)
    check_result(data)
    if len(data) <= INLINE_LIMIT:
        return StoredResult(serializer, data=data)
    return StoredResult(serializer, blob=blobs.put(data))


def load(stored: StoredResult, blobs: BlobStore) -> Any:
    """The value back; BlobError if its blob is missing or corrupt."""
    data = stored.data if stored.data is not None else blobs.get(stored.blob or "")
    return serialize.loads(data, stored.serializer)


def raw(stored: StoredResult, blobs: BlobStore) -> bytes:
    """The serialized bytes, without deserializing."""
    return stored.data if stored.data is not None else blobs.get(stored.blob or "")
