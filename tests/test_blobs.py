"""Content-addressed blob files: written whole, read back checked, pruned with care."""

from __future__ import annotations

import hashlib
import os
import stat
import time
from pathlib import Path

import pytest

from orchlite.blobs import BlobError, BlobStore, write_private


@pytest.fixture
def blobs(tmp_path: Path) -> BlobStore:
    return BlobStore(tmp_path / ".orch" / "blobs")


def _age(path: Path, seconds: float) -> None:
    then = time.time() - seconds
    os.utime(path, (then, then), follow_symlinks=False)


def test_a_blob_is_stored_under_its_sha256_and_read_back(blobs: BlobStore) -> None:
    digest = blobs.put(b"hello")
    assert digest == hashlib.sha256(b"hello").hexdigest()
    assert blobs.path(digest) == blobs.root / digest[:2] / digest
    assert blobs.get(digest) == b"hello"
    assert list(blobs.digests()) == [digest]
    assert [p.name for p in blobs.path(digest).parent.iterdir()] == [digest]  # no temp file left


def test_the_same_content_is_stored_once_and_its_time_refreshed(blobs: BlobStore) -> None:
    digest = blobs.put(b"same")
    _age(blobs.path(digest), 7200)
    assert blobs.put(b"same") == digest
    assert time.time() - blobs.path(digest).stat().st_mtime < 60
    assert list(blobs.digests()) == [digest]


def test_blob_files_and_folders_are_owner_only(blobs: BlobStore) -> None:
    path = blobs.path(blobs.put(b"private"))
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700


def test_a_missing_blob_is_a_blob_error(blobs: BlobStore) -> None:
    with pytest.raises(BlobError, match="is missing"):
        blobs.get("ab" * 32)


def test_a_corrupt_blob_is_refused_and_quarantined(blobs: BlobStore) -> None:
    digest = blobs.put(b"original")
    blobs.path(digest).write_bytes(b"tampered")
    with pytest.raises(BlobError, match="is corrupt"):
        blobs.get(digest)
    quarantine = blobs.root.parent / "quarantine"
    assert (quarantine / digest).read_bytes() == b"tampered"
    assert not blobs.path(digest).exists()
    assert blobs.put(b"original") == digest  # written whole again
    assert blobs.get(digest) == b"original"


def test_a_second_quarantine_of_a_digest_keeps_the_first_copy(blobs: BlobStore) -> None:
    digest = blobs.put(b"twice")
    first = blobs.quarantine(digest)
    blobs.put(b"twice")
    second = blobs.quarantine(digest)
    assert (first.name, second.name) == (digest, f"{digest}.1")
    assert first.exists() and second.exists()


def test_a_linked_folder_is_never_followed(blobs: BlobStore, tmp_path: Path) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / ("cd" * 32)).write_bytes(b"not ours")
    blobs.root.mkdir(parents=True)
    (blobs.root / "cd").symlink_to(outside)
    assert list(blobs.digests()) == []
    with pytest.raises(BlobError, match="symbolic link"):
        blobs.quarantine("cd" * 32)
    assert blobs.prune(set(), min_age_seconds=0) == 0
    assert (outside / ("cd" * 32)).exists()


def test_prune_deletes_old_unkept_blobs_and_stale_temporary_files(blobs: BlobStore) -> None:
    kept, old, fresh = blobs.put(b"kept"), blobs.put(b"old"), blobs.put(b"fresh")
    for digest in (kept, old):
        _age(blobs.path(digest), 7200)
    stale = blobs.path(old).parent / ".tmp-stale"
    stale.write_bytes(b"partial")
    _age(stale, 7200)
    young = blobs.path(old).parent / ".tmp-young"
    young.write_bytes(b"being written")
    assert blobs.prune({kept}) == 1
    assert sorted(blobs.digests()) == sorted([kept, fresh])
    assert not stale.exists() and young.exists()


def test_prune_of_a_store_without_blobs_deletes_nothing(blobs: BlobStore) -> None:
    assert blobs.prune(set()) == 0


def test_write_private_narrows_an_existing_files_mode(tmp_path: Path) -> None:
    path = tmp_path / "daemon.pid"
    path.write_text("old")
    path.chmod(0o644)
    write_private(path, "new")
    assert path.read_text() == "new"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
