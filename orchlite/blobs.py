"""Content-addressed blob files under `.orch/blobs/`.

A blob is stored at `blobs/<first 2 hex>/<sha256 hex>`. It is written to a temporary file in
the same folder, flushed to disk and renamed, so a crash never leaves a partial blob under its
final name; a row is only written after `put()` returns, so no row points at a partial blob.
`get()` re-hashes what it reads and refuses a blob whose content no longer matches its name.
"""

from __future__ import annotations

import hashlib
import os
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

from .errors import NO_SPACE_ERRNOS, DiskFullError, StoreError
from .faults import fault_point

FILE_MODE = 0o600
"""Every file in `.orch/` is owner-only: results are code (cloudpickle) to whoever loads them."""
DIR_MODE = 0o700


def private_opener(path: str | os.PathLike[str], flags: int) -> int:
    """An `open(..., opener=)` that creates the file owner-only (0600), whatever the umask."""
    return os.open(path, flags, FILE_MODE)


def write_private(path: Path, text: str) -> None:
    """Write a small text file owner-only, also when it already existed with a wider mode."""
    with open(path, "w", encoding="utf-8", opener=private_opener) as fh:
        os.fchmod(fh.fileno(), FILE_MODE)
        fh.write(text)


class BlobError(StoreError):
    """A blob is missing or its content does not match its digest."""


class BlobStore:
    def __init__(self, root: Path) -> None:
        self.root = root

    def path(self, digest: str) -> Path:
        return self.root / digest[:2] / digest

    def put(self, data: bytes) -> str:
        """Store `data` and return its sha256 hex digest; a no-op when already stored."""
        digest = hashlib.sha256(data).hexdigest()
        final = self.path(digest)
        if final.exists():
            # Refresh the mtime so a concurrent `prune` treats this blob as fresh.
            os.utime(final)
            return digest
        try:
            self.root.mkdir(mode=DIR_MODE, parents=True, exist_ok=True)
            self._write(final, data)
        except OSError as exc:
            if exc.errno in NO_SPACE_ERRNOS:
                raise DiskFullError(final.parent) from None
            raise
        return digest

    @staticmethod
    def _write(final: Path, data: bytes) -> None:
        """Temporary file, fsync, rename: never a partial blob under its final name."""
        final.parent.mkdir(mode=DIR_MODE, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=final.parent, prefix=".tmp-")
        try:
            with os.fdopen(fd, "wb") as fh:
                fh.write(data)
                fh.flush()
                os.fsync(fh.fileno())
            fault_point("blob_temp_written")
            os.replace(tmp, final)
            fault_point("blob_written")
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise

    def get(self, digest: str) -> bytes:
        """The blob's bytes; BlobError if it is missing or no longer matches its digest."""
        path = self.path(digest)
        try:
            data = path.read_bytes()
        except FileNotFoundError:
            raise BlobError(f"blob {digest[:12]} is missing ({path})") from None
        if hashlib.sha256(data).hexdigest() != digest:
            moved = self.quarantine(digest)
            raise BlobError(
                f"blob {digest[:12]} is corrupt: its content does not match; moved to {moved}"
            )
        return data

    def quarantine(self, digest: str) -> Path:
        """Move a bad blob aside (to `quarantine/`), so the next `put` writes it whole again."""
        target = self.root.parent / "quarantine" / digest
        target.parent.mkdir(mode=DIR_MODE, exist_ok=True)
        os.replace(self.path(digest), target)
        return target

    def digests(self) -> Iterator[str]:
        """Every stored digest (temporary files are skipped)."""
        if not self.root.is_dir():
            return
        for folder in self.root.iterdir():
            if folder.is_dir() and len(folder.name) == 2:
                for file in folder.iterdir():
                    if not file.name.startswith(".tmp-"):
                        yield file.name

    def prune(self, keep: set[str], *, min_age_seconds: float = 3600.0) -> int:
        """Delete blobs not in `keep` and stale temporary files; returns the blobs deleted.

        Files younger than `min_age_seconds` are left alone: another process may have just
        written (or re-used) one and not yet committed the row that references it.
        """
        cutoff = time.time() - min_age_seconds
        deleted = 0
        for digest in list(self.digests()):
            path = self.path(digest)
            if digest not in keep and _mtime(path) < cutoff:
                path.unlink(missing_ok=True)
                deleted += 1
        if self.root.is_dir():
            for tmp in self.root.glob("*/.tmp-*"):
                if _mtime(tmp) < cutoff:
                    tmp.unlink(missing_ok=True)
        return deleted


def _mtime(path: Path) -> float:
    try:
        return path.stat().st_mtime
    except FileNotFoundError:
        return float("inf")
