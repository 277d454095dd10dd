"""A short look at a stored result, for the run detail screen; it never raises.

Only small results are loaded (`PREVIEW_MAX_BYTES`), in a worker thread. A blob is read
here and its sha256 compared with its name before anything is deserialized: a blob that
does not match is never unpickled (and, this being a view, not moved either; `orch doctor`
and the next run that reads it quarantine it). Anything that goes wrong, a missing blob, a
class that no longer imports, a `repr()` that raises, becomes one "cannot preview: …" line.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path

from .. import serialize
from ..blobs import BlobStore
from ..errors import OrchError
from ..store import Store, StoredResult

PREVIEW_MAX_BYTES = 64 * 1024
REPR_CHARS = 300
REPR_LINES = 6


class _CannotPreview(Exception):
    pass


@dataclass
class ResultPreview:
    run: str
    """The flow run's result."""
    task: str | None = None
    """The highlighted task run's result (None: no task run)."""


def load_preview(home: Path, run_id: str, position: int | None) -> ResultPreview:
    """Previews of the flow run's result and of its task run at `position`."""
    blobs = BlobStore(home / "blobs")
    try:
        with Store(home, read_only=True) as store:
            run = store.get_flow_run(run_id)
            run_result = store.flow_run_result(run_id)
            task_result = store.task_run_result(run_id, position) if position is not None else None
    except OrchError as exc:  # the store went away, or the run was deleted (`orch gc`)
        return ResultPreview(run=f"cannot preview: {exc}")
    missing = "not finished yet" if run.ended is None else "none stored"
    return ResultPreview(
        run=preview(run_result, blobs, missing),
        task=preview(task_result, blobs, missing) if position is not None else None,
    )


def preview(stored: StoredResult | None, blobs: BlobStore, missing: str = "none stored") -> str:
    """A truncated repr of the stored value, or a line saying why there is none."""
    if stored is None:
        return missing
    try:
        data = _read(stored, blobs)
        value = serialize.loads(data, stored.serializer)
        return _short_repr(value)
    except _CannotPreview as exc:
        return f"cannot preview: {exc}"
    except OrchError as exc:  # SerializationError: corrupt, or a class that no longer imports
        return f"cannot preview: {exc}"


def _read(stored: StoredResult, blobs: BlobStore) -> bytes:
    if stored.data is not None:
        data = stored.data
    else:
        digest = stored.blob or ""
        path = blobs.path(digest)
        try:
            size = path.stat().st_size
            if size > PREVIEW_MAX_BYTES:
                raise _CannotPreview(
                    f"the result is {size:,} bytes, more than the {PREVIEW_MAX_BYTES:,}"
                    " previewed here"
                )
            data = path.read_bytes()
        except OSError as exc:
            raise _CannotPreview(f"blob {digest[:12]} cannot be read ({exc.strerror})") from None
        if hashlib.sha256(data).hexdigest() != digest:
            raise _CannotPreview(
                f"blob {digest[:12]} is corrupt (its content does not match its digest), so"
                " it is not loaded; `orch doctor` moves it aside"
            )
    if len(data) > PREVIEW_MAX_BYTES:
        raise _CannotPreview(
            f"the result is {len(data):,} bytes, more than the {PREVIEW_MAX_BYTES:,} previewed here"
        )
    return data


def _short_repr(value: object) -> str:
    try:
        text = repr(value)
    except Exception as exc:
        raise _CannotPreview(f"repr() of a {type(value).__qualname__} failed: {exc!r}") from None
    lines = text.splitlines() or [""]
    if len(lines) > REPR_LINES:
        lines = [*lines[:REPR_LINES], "…"]
    text = "\n".join(lines)
    return text if len(text) <= REPR_CHARS else text[: REPR_CHARS - 1] + "…"
