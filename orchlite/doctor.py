"""`orch doctor`: check a project's `.orch/` and repair what can be repaired.

Checks, in order:

0. ownership: a `.orch/` owned by another user (and not listed under `[safe] directories`)
   is reported and not touched at all (exit 4).
1. file modes: `.orch/` and every folder in it 0700, every file 0600; wider modes are
   narrowed (group and other bits removed). A store listed as safe is left as it is.
2. free space, then the database. Each state is told apart, because each has its own fix:
   a full disk (free some space; nothing is restored), an empty (0-byte) `orch.db`, a
   database written by a newer orchlite (upgrade), one locked by another process (try
   again), and a corrupt one (`PRAGMA integrity_check` fails: restore it from a backup).
   Only the last advises a restore. Any of them stops the checks below (exit 4).
3. blobs: each blob's sha256 is re-derived from its content, streaming; a blob whose
   content no longer matches its name is moved to `.orch/quarantine/`. Temporary files
   older than an hour (left by a writer that died) are deleted.
4. references: rows (flow runs, task runs, cache entries) whose result blob is missing or
   quarantined are reported; such cache entries are deleted so the next run recomputes.
5. orphaned task runs: a task run still PENDING, RUNNING or RETRYING under a flow run that
   ended (left by an older orchlite, or a write that was lost) is ended as the flow run's
   end would have ended it (`states.task_state_after`).

The exit code is 4 while any problem is left unrepaired (a finding with `repaired` false
and `unresolved` true); a lost result is reported but is not a problem left to fix.
Blob folders and files are never followed through symbolic links: a link under `blobs/`
is reported and left alone, so nothing outside `.orch/` is read, moved or deleted.

Nothing here unpickles anything.
"""

from __future__ import annotations

import hashlib
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

from .blobs import BlobStore
from .config import listed_safe, narrow_modes, owner_problem
from .errors import DiskFullError, EmptyStoreError, ExitCode, SchemaTooNewError, StoreError
from .states import StateName, task_state_after
from .store import DB_NAME, Store, no_space_left

STALE_TEMP_SECONDS = 3600.0
LOCK_WAIT_MS = 5_000
"""How long doctor waits for another process's lock before it reports the store locked."""
_CHUNK = 1 << 20


@dataclass(slots=True)
class Finding:
    kind: str
    """owner | mode | disk | database | blob | temp | reference | cache | task run"""
    message: str
    """What was found and what was done, as one line."""
    repaired: bool = False
    unresolved: bool = False
    """A problem still there after this check, which the user has to fix."""


@dataclass(slots=True)
class Report:
    home: str
    findings: list[Finding] = field(default_factory=list)
    blobs_checked: int = 0
    references_checked: int = 0
    database: str = "ok"
    """ok | corrupt | full | empty | newer | locked | unchecked (the store is not trusted)"""

    @property
    def database_ok(self) -> bool:
        return self.database == "ok"

    @property
    def exit_code(self) -> int:
        unresolved = any(f.unresolved for f in self.findings)
        return int(ExitCode.STORE if unresolved or not self.database_ok else ExitCode.OK)

    @property
    def healthy(self) -> bool:
        return self.database_ok and not self.findings

    def as_dict(self) -> dict[str, object]:
        return {
            "home": self.home,
            "healthy": self.healthy,
            "database_ok": self.database_ok,
            "database": self.database,
            "blobs_checked": self.blobs_checked,
            "references_checked": self.references_checked,
            "findings": [asdict(f) for f in self.findings],
            "exit_code": self.exit_code,
        }

    def lines(self) -> list[str]:
        out = [f.message for f in self.findings]
        if self.database in _DATABASE_VERDICTS:
            out.append(f"{self.home}: {_DATABASE_VERDICTS[self.database]}")
        elif self.healthy:
            out.append(
                f"{self.home}: healthy ({self.blobs_checked} blob(s),"
                f" {self.references_checked} reference(s) checked)"
            )
        else:
            fixed = sum(f.repaired for f in self.findings)
            out.append(
                f"{self.home}: {len(self.findings)} problem(s) found, {fixed} repaired"
                f" ({self.blobs_checked} blob(s), {self.references_checked} reference(s) checked)"
            )
        return out


_DATABASE_VERDICTS = {
    "corrupt": "the database is corrupt; restore orch.db from a backup",
    "full": "no space left on the device: the database cannot be read until some space is"
    " freed (nothing needs restoring)",
    "empty": "orch.db is empty (0 bytes): its history is gone; restore it from a backup,"
    " or delete it to start a new store",
    "newer": "the database was written by a newer orchlite; upgrade orchlite to use it",
    "locked": "the database is locked by another process; run orch doctor again later",
    "unchecked": "not checked: the store is not yours",
}


def diagnose(home: Path, now: float | None = None) -> Report:
    """Check `home` (a `.orch/` folder), repair what can be repaired, and say what was done."""
    now = time.time() if now is None else now
    report = Report(str(home))
    if not home.is_dir():
        return report
    foreign = owner_problem(home)
    if foreign:
        report.database = "unchecked"
        report.findings.append(Finding("owner", foreign, unresolved=True))
        return report
    if not listed_safe(home):
        _fix_modes(home, report)
    full = no_space_left(home)
    if full:
        report.findings.append(
            Finding(
                "disk",
                f"{home}: no space left on the device; free some space (nothing needs restoring)",
                unresolved=True,
            )
        )
    if not (home / DB_NAME).exists():
        return report
    try:
        store = Store(home, create=False, busy_timeout_ms=LOCK_WAIT_MS)
    except StoreError as exc:
        report.database = _classify(exc, full)
        report.findings.append(Finding("database", str(exc), unresolved=True))
        return report
    try:
        problems = store.integrity_problems()
        if problems:
            report.database = "full" if full and _io_errors_only(problems) else "corrupt"
            for problem in problems:
                report.findings.append(
                    Finding("database", f"{store.path}: {problem}", unresolved=True)
                )
            return report
        blobs = BlobStore(home / "blobs")
        bad = _check_blobs(blobs, report, now)
        _check_references(store, blobs, bad, bad | _quarantined(home), report)
        _check_orphaned_task_runs(store, report)
    finally:
        store.close()
    return report


def _classify(exc: StoreError, full: bool) -> str:
    """What an error opening the database means: each has its own fix."""
    if isinstance(exc, SchemaTooNewError):
        return "newer"
    if isinstance(exc, EmptyStoreError):
        return "empty"
    text = str(exc).lower()
    if isinstance(exc, DiskFullError) or (full and _io_errors_only([text])):
        return "full"
    if "locked" in text or "busy" in text:
        return "locked"
    return "corrupt"


def _io_errors_only(problems: list[str]) -> bool:
    return all("disk i/o error" in p.lower() or "disk is full" in p.lower() for p in problems)


def _fix_modes(home: Path, report: Report) -> None:
    for path, mode, narrowed in narrow_modes(home):
        if narrowed is None:
            report.findings.append(
                Finding(
                    "mode", f"{path}: mode {mode:04o} is too open; cannot change it", False, True
                )
            )
            continue
        report.findings.append(
            Finding("mode", f"{path}: mode {mode:04o} was too open; set to {narrowed:04o}", True)
        )


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        while chunk := fh.read(_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def _check_blobs(blobs: BlobStore, report: Report, now: float) -> set[str]:
    """Re-hash every blob; quarantine the ones that no longer match. Returns their digests."""
    bad: set[str] = set()
    _report_links(blobs.root, report)
    for folder in sorted(blobs.folders()):
        for path in sorted(folder.iterdir()):
            if path.is_symlink():
                _report_link(path, report)
            elif path.name.startswith(".tmp-"):
                _check_temp(path, report, now)
            elif path.is_file():
                _check_blob(blobs, path, report, bad)
    return bad


def _check_blob(blobs: BlobStore, path: Path, report: Report, bad: set[str]) -> None:
    report.blobs_checked += 1
    try:
        actual = _sha256(path)
    except OSError as exc:
        report.findings.append(Finding("blob", f"{path}: cannot read: {exc}", unresolved=True))
        return
    if actual == path.name and path.parent.name == path.name[:2]:
        return
    if actual == path.name:
        report.findings.append(Finding("blob", f"{path}: in the wrong folder; left"))
        return
    bad.add(path.name)
    message = f"blob {path.name[:12]} is corrupt: its content hashes to {actual[:12]}"
    try:
        moved = blobs.quarantine(path.name)
    except OSError as exc:
        report.findings.append(
            Finding("blob", f"{message}; cannot move it: {exc}", unresolved=True)
        )
        return
    report.findings.append(Finding("blob", f"{message}; moved to {moved}", True))


def _report_links(root: Path, report: Report) -> None:
    """Report symbolic links among `blobs/` and its folders: they are never followed."""
    if root.is_symlink():
        _report_link(root, report)
    elif root.is_dir():
        for entry in sorted(root.iterdir()):
            if entry.is_symlink():
                _report_link(entry, report)


def _report_link(path: Path, report: Report) -> None:
    report.findings.append(
        Finding(
            "blob",
            f"{path}: a symbolic link in the store; not followed, left alone (remove it)",
            unresolved=True,
        )
    )


def _check_temp(path: Path, report: Report, now: float) -> None:
    try:
        age = now - path.stat().st_mtime
    except FileNotFoundError:
        return
    if age < STALE_TEMP_SECONDS:
        return  # a writer may still be filling it
    try:
        path.unlink()
    except OSError as exc:
        report.findings.append(
            Finding("temp", f"{path}: stale temporary file; cannot delete: {exc}", False, True)
        )
        return
    report.findings.append(
        Finding("temp", f"{path}: stale temporary file ({int(age)} s old); deleted", True)
    )


def _quarantined(home: Path) -> set[str]:
    folder = home / "quarantine"
    """Digests in `quarantine/` (a digest quarantined again is `<digest>.<n>`)."""
    return {p.name.split(".")[0] for p in folder.iterdir()} if folder.is_dir() else set()


def _check_references(
    store: Store, blobs: BlobStore, fresh_bad: set[str], bad: set[str], report: Report
) -> None:
    lost_cache: dict[str, int] = {}
    for kind, row, digest in store.blob_references():
        report.references_checked += 1
        if digest not in fresh_bad and blobs.path(digest).is_file():
            continue  # whole (a quarantined blob may have been written whole again since)
        why = "quarantined" if digest in bad else "missing"
        if kind == "cache entry":
            lost_cache[digest] = lost_cache.get(digest, 0) + 1
            continue
        report.findings.append(
            Finding(
                "reference",
                f"{kind} {row}: its result blob {digest[:12]} is {why}; the result is lost",
            )
        )
    if not lost_cache:
        return
    if store.read_only:
        for digest, count in sorted(lost_cache.items()):
            report.findings.append(
                Finding(
                    "cache",
                    f"{count} cache entr(ies) use lost blob {digest[:12]}; read-only",
                    unresolved=True,
                )
            )
        return
    deleted = store.delete_cache_entries_for_blobs(sorted(lost_cache))
    report.findings.append(
        Finding(
            "cache",
            f"deleted {deleted} cache entr{'y' if deleted == 1 else 'ies'} whose result blob is"
            " missing or quarantined; the next run recomputes them",
            True,
        )
    )


def _check_orphaned_task_runs(store: Store, report: Report) -> None:
    """Task runs left unfinished under an ended flow run: reported, and ended with it."""
    orphans = store.orphaned_task_runs()
    if not orphans:
        return
    repaired = not store.read_only
    if repaired:
        store.end_orphaned_task_runs(run_id for run_id, *_ in orphans)
    for run_id, _position, name, state, flow_state in orphans:
        ending = task_state_after(StateName(flow_state))
        done = f"ended it {ending.value}" if repaired else "read-only, left as it is"
        report.findings.append(
            Finding(
                "task run",
                f"task run {name} of flow run {run_id[:12]} was still {state} though its flow"
                f" run ended {flow_state}; {done}",
                repaired,
            )
        )
