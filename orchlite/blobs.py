"""Content-addressed blob files under `.orch/blobs/`.

A blob is stored at `blobs/<first 2 hex>/<sha256 hex>`. It is written to a temporary file in
the same folder, flushed to disk and renamed, so a crash never leaves a partial blob under its
final name; a row is only written after `put()` returns, so no row points at a partial blob.
`get()` re-hashes what it reads and refuses a blob whose content no longer matches its name.

Nothing here follows a symbolic link out of the store: a linked folder or file under `blobs/`
is never read as a blob, moved to quarantine or deleted through (only the link itself is).
"""

from __future__ import annotations

import hashlib
import os
import stat
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

from .config import DIR_MODE, FILE_MODE
from .errors import NO_SPACE_ERRNOS, DiskFullError, StoreError
from .faults import fault_point

__all__ = ["DIR_MODE", "FILE_MODE", "BlobError", "BlobStore", "private_opener", "write_private"]


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
        """Move a bad blob aside (to `quarantine/`), so the next `put` writes it whole again.

        A digest quarantined before keeps its first copy: the next one is `<digest>.1`, and
        so on. A blob whose folder is a symbolic link is not moved (BlobError).
        """
        source = self.path(digest)
        if not is_real_folder(source.parent):
            raise BlobError(f"{source.parent} is a symbolic link: not followed out of the store")
        folder = self.root.parent / "quarantine"
        folder.mkdir(mode=DIR_MODE, exist_ok=True)
        number = 0
        while True:
            target = folder / (digest if number == 0 else f"{digest}.{number}")
            if _move_unless_taken(source, target):
                return target
            number += 1

    def folders(self) -> Iterator[Path]:
        """The `blobs/<2 hex>/` folders, never through a symbolic link."""
        if not is_real_folder(self.root):
            return
        for folder in self.root.iterdir():
            if len(folder.name) == 2 and is_real_folder(folder):
                yield folder

    def digests(self) -> Iterator[str]:
        """Every stored digest (temporary files and symbolic links are skipped)."""
        for folder in self.folders():
            for file in folder.iterdir():
                if not file.name.startswith(".tmp-") and not file.is_symlink():
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
        for folder in self.folders():
            for tmp in folder.glob(".tmp-*"):
                if _mtime(tmp) < cutoff:
                    tmp.unlink(missing_ok=True)
        return deleted


def _move_unless_taken(source: Path, target: Path) -> bool:
    """Move `source` to `target` unless `target` exists (then False): never overwrites."""
    try:
        os.link(source, target, follow_symlinks=False)
    except FileExistsError:
        return False
    except OSError:  # a filesystem without hard links
        if target.exists():
            return False
        os.replace(source, target)
        return True
    source.unlink()
    return True


def is_real_folder(path: Path) -> bool:
    """A folder, and not a symbolic link to one."""
    try:
        return stat.S_ISDIR(path.lstat().st_mode)
    except FileNotFoundError:
        return False


def _mtime(path: Path) -> float:
    try:
        return path.lstat().st_mtime
    except FileNotFoundError:
        return float("inf")
