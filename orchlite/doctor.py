"""`orch doctor`: check a project's `.orch/` and repair what can be repaired.

Checks, in order:

1. file modes: `.orch/` and every folder in it 0700, every file 0600; wider modes are
   narrowed (group and other bits removed).
2. the database: `PRAGMA integrity_check`. A corrupt database is reported and nothing else
   is touched (exit 4): restore it from a backup.
3. blobs: each blob's sha256 is re-derived from its content, streaming; a blob whose
   content no longer matches its name is moved to `.orch/quarantine/`. Temporary files
   older than an hour (left by a writer that died) are deleted.
4. references: rows (flow runs, task runs, cache entries) whose result blob is missing or
   quarantined are reported; such cache entries are deleted so the next run recomputes.
5. orphaned task runs: a task run still PENDING, RUNNING or RETRYING under a flow run that
   ended (left by an older orchlite, or a write that was lost) is ended as the flow run's
   end would have ended it (`states.task_state_after`).

Nothing here unpickles anything.
"""

from __future__ import annotations

import hashlib
import stat
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

from .blobs import DIR_MODE, FILE_MODE, BlobStore
from .errors import ExitCode, StoreError
from .states import StateType, task_state_after
from .store import DB_NAME, Store

STALE_TEMP_SECONDS = 3600.0
_CHUNK = 1 << 20


@dataclass(slots=True)
class Finding:
    kind: str
    """mode | database | blob | temp | reference | cache | task run"""
    message: str
    """What was found and what was done, as one line."""
    repaired: bool = False


@dataclass(slots=True)
class Report:
    home: str
    findings: list[Finding] = field(default_factory=list)
    blobs_checked: int = 0
    references_checked: int = 0
    database_ok: bool = True

    @property
    def exit_code(self) -> int:
        return int(ExitCode.OK if self.database_ok else ExitCode.STORE)

    @property
    def healthy(self) -> bool:
        return self.database_ok and not self.findings

    def as_dict(self) -> dict[str, object]:
        return {
            "home": self.home,
            "healthy": self.healthy,
            "database_ok": self.database_ok,
            "blobs_checked": self.blobs_checked,
            "references_checked": self.references_checked,
            "findings": [asdict(f) for f in self.findings],
            "exit_code": self.exit_code,
        }

    def lines(self) -> list[str]:
        out = [f.message for f in self.findings]
        if not self.database_ok:
            out.append(f"{self.home}: the database is corrupt; restore orch.db from a backup")
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


def diagnose(home: Path, now: float | None = None) -> Report:
    """Check `home` (a `.orch/` folder), repair what can be repaired, and say what was done."""
    now = time.time() if now is None else now
    report = Report(str(home))
    if not home.is_dir():
        return report
    _fix_modes(home, report)
    if not (home / DB_NAME).exists():
        return report
    try:
        store = Store(home, create=False)
    except StoreError as exc:
        report.database_ok = False
        report.findings.append(Finding("database", str(exc)))
        return report
    try:
        problems = store.integrity_problems()
        if problems:
            report.database_ok = False
            for problem in problems:
                report.findings.append(Finding("database", f"{store.path}: {problem}"))
            return report
        blobs = BlobStore(home / "blobs")
        bad = _check_blobs(blobs, report, now)
        _check_references(store, blobs, bad, bad | _quarantined(home), report)
        _check_orphaned_task_runs(store, report)
    finally:
        store.close()
    return report


def _fix_modes(home: Path, report: Report) -> None:
    for path in [home, *sorted(home.rglob("*"))]:
        try:
            info = path.lstat()
        except FileNotFoundError:
            continue
        if stat.S_ISLNK(info.st_mode):
            continue
        mode = stat.S_IMODE(info.st_mode)
        if not mode & 0o077:
            continue
        wanted = DIR_MODE if stat.S_ISDIR(info.st_mode) else FILE_MODE
        narrowed = mode & wanted
        try:
            path.chmod(narrowed)
        except OSError as exc:
            report.findings.append(
                Finding("mode", f"{path}: mode {mode:04o} is too open; cannot change it: {exc}")
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
    if not blobs.root.is_dir():
        return bad
    for folder in sorted(blobs.root.iterdir()):
        if not folder.is_dir():
            continue
        for path in sorted(folder.iterdir()):
            if path.name.startswith(".tmp-"):
                _check_temp(path, report, now)
                continue
            if not path.is_file():
                continue
            report.blobs_checked += 1
            try:
                actual = _sha256(path)
            except OSError as exc:
                report.findings.append(Finding("blob", f"{path}: cannot read: {exc}"))
                continue
            if actual == path.name and folder.name == path.name[:2]:
                continue
            if actual == path.name:
                report.findings.append(Finding("blob", f"{path}: in the wrong folder; left"))
                continue
            bad.add(path.name)
            message = f"blob {path.name[:12]} is corrupt: its content hashes to {actual[:12]}"
            try:
                moved = blobs.quarantine(path.name)
            except OSError as exc:
                report.findings.append(Finding("blob", f"{message}; cannot move it: {exc}"))
                continue
            report.findings.append(Finding("blob", f"{message}; moved to {moved}", True))
    return bad


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
            Finding("temp", f"{path}: stale temporary file; cannot delete: {exc}")
        )
        return
    report.findings.append(
        Finding("temp", f"{path}: stale temporary file ({int(age)} s old); deleted", True)
    )


def _quarantined(home: Path) -> set[str]:
    folder = home / "quarantine"
    return {p.name for p in folder.iterdir()} if folder.is_dir() else set()


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
                Finding("cache", f"{count} cache entr(ies) use lost blob {digest[:12]}; read-only")
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
        ending = task_state_after(StateType(flow_state))
        done = f"ended it {ending.value}" if repaired else "read-only, left as it is"
        report.findings.append(
            Finding(
                "task run",
                f"task run {name} of flow run {run_id[:12]} was still {state} though its flow"
                f" run ended {flow_state}; {done}",
                repaired,
            )
        )
