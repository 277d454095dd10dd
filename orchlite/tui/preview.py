"""Results on the run detail screen: previews that never unpickle, and loading on request.

A pickle is code: unpickling a result runs whatever its author put in it, as the user who
loads it. So looking at a run never unpickles anything. `load_preview` shows the text stored
with each result when it was persisted (`results.text_preview`: the start of its `repr()`,
secrets masked). A result stored before orchlite recorded that text is described from its
bytes by `serialize.preview`, which parses a pickle's opcodes without running them; a blob is
read only when small (`PREVIEW_MAX_BYTES`) and when its sha256 matches its name.

`load_results` unpickles, and is only ever called for the screen's "load results" action,
after a confirmation that names the run, and only from a store the user owns
(`results.check_owned`). Neither function raises: what goes wrong becomes one line.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path

from .. import results, serialize
from ..blobs import BlobStore
from ..errors import OrchError
from ..store import Store, StoredResult

PREVIEW_MAX_BYTES = 64 * 1024
"""The largest blob read to describe a result stored without a preview."""
LOAD_MAX_BYTES = 16 * 1024 * 1024
"""The largest result `load_results` unpickles (only the start of its repr is shown)."""
REPR_CHARS = 300
REPR_LINES = 6


class _CannotShow(Exception):
    pass


@dataclass
class ResultPreview:
    run: str
    """The flow run's result."""
    task: str | None = None
    """The highlighted task run's result (None: no task run)."""
    loaded: bool = False
    """True: the values themselves, unpickled on request; False: stored previews."""


def load_preview(home: Path, run_id: str, position: int | None) -> ResultPreview:
    """Previews of the flow run's result and of its task run at `position`; never unpickles."""
    blobs = BlobStore(home / "blobs")
    found = _stored(home, run_id, position)
    if isinstance(found, str):
        return ResultPreview(run=found)
    missing, run_result, task_result = found
    return ResultPreview(
        run=preview(run_result, blobs, missing),
        task=preview(task_result, blobs, missing) if position is not None else None,
    )


def load_results(home: Path, run_id: str, position: int | None) -> ResultPreview:
    """The flow run's result and its task run's at `position`, unpickled: only on the
    user's explicit request, and never from a store someone else owns."""
    try:
        results.check_owned(home)
    except OrchError as exc:
        return ResultPreview(run=f"not loaded: {exc}", loaded=True)
    blobs = BlobStore(home / "blobs")
    found = _stored(home, run_id, position)
    if isinstance(found, str):
        return ResultPreview(run=found, loaded=True)
    missing, run_result, task_result = found
    return ResultPreview(
        run=_load(run_result, blobs, missing),
        task=_load(task_result, blobs, missing) if position is not None else None,
        loaded=True,
    )


def preview(stored: StoredResult | None, blobs: BlobStore, missing: str = "none stored") -> str:
    """The stored preview text, a description of the bytes, or a line saying why neither."""
    if stored is None:
        return missing
    if stored.preview is not None:
        return _fit(stored.preview)
    try:
        if stored.data is None:
            size = _blob_size(stored, blobs)
            if size > PREVIEW_MAX_BYTES:
                return f"<{stored.serializer}, {size:,} bytes>"
        data = _read(stored, blobs, PREVIEW_MAX_BYTES)
        return _fit(serialize.preview(data, stored.serializer, REPR_CHARS))
    except _CannotShow as exc:
        return f"cannot preview: {exc}"
    except OrchError as exc:  # an unknown serializer name
        return f"cannot preview: {exc}"


def _stored(
    home: Path, run_id: str, position: int | None
) -> str | tuple[str, StoredResult | None, StoredResult | None]:
    """(what to say when a result is missing, the flow run's result, the task run's), or
    one line saying why they cannot be read."""
    try:
        with Store(home, read_only=True) as store:
            run = store.get_flow_run(run_id)
            run_result = store.flow_run_result(run_id)
            task_result = store.task_run_result(run_id, position) if position is not None else None
    except OrchError as exc:  # the store went away, or the run was deleted (`orch gc`)
        return f"cannot preview: {exc}"
    missing = "not finished yet" if run.ended is None else "none stored"
    return missing, run_result, task_result


def _load(stored: StoredResult | None, blobs: BlobStore, missing: str) -> str:
    if stored is None:
        return missing
    try:
        value = serialize.loads(_read(stored, blobs, LOAD_MAX_BYTES), stored.serializer)
        return _short_repr(value)
    except _CannotShow as exc:
        return f"cannot load: {exc}"
    except OrchError as exc:  # SerializationError: corrupt, or a class that no longer imports
        return f"cannot load: {exc}"


def _blob_size(stored: StoredResult, blobs: BlobStore) -> int:
    digest = stored.blob or ""
    try:
        return blobs.path(digest).stat().st_size
    except OSError as exc:
        raise _CannotShow(f"blob {digest[:12]} cannot be read ({exc.strerror})") from None


def _read(stored: StoredResult, blobs: BlobStore, limit: int) -> bytes:
    """The result's bytes, at most `limit` of them; a blob only if it matches its digest."""
    if stored.data is not None:
        data = stored.data
    else:
        digest = stored.blob or ""
        size = _blob_size(stored, blobs)
        if size > limit:
            raise _CannotShow(f"the result is {size:,} bytes, more than the {limit:,} read here")
        try:
            data = blobs.path(digest).read_bytes()
        except OSError as exc:
            raise _CannotShow(f"blob {digest[:12]} cannot be read ({exc.strerror})") from None
        if hashlib.sha256(data).hexdigest() != digest:
            raise _CannotShow(
                f"blob {digest[:12]} is corrupt (its content does not match its digest), so"
                " it is not read; `orch doctor` moves it aside"
            )
    if len(data) > limit:
        raise _CannotShow(f"the result is {len(data):,} bytes, more than the {limit:,} read here")
    return data


def _short_repr(value: object) -> str:
    try:
        text = repr(value)
    except Exception as exc:
        raise _CannotShow(f"repr() of a {type(value).__qualname__} failed: {exc!r}") from None
    return _fit(text)


def _fit(text: str) -> str:
    """At most `REPR_LINES` lines and `REPR_CHARS` characters."""
    lines = text.splitlines() or [""]
    if len(lines) > REPR_LINES:
        lines = [*lines[:REPR_LINES], "…"]
    text = "\n".join(lines)
    return text if len(text) <= REPR_CHARS else text[: REPR_CHARS - 1] + "…"
