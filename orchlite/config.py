"""Where the project's `.orch/` directory is, and whether it may be used.

Resolution order: an explicit path (`orch --home`), then `ORCH_HOME`, then the `.orch/` of the
first folder walking up from the working directory that holds a `.orch/` or an `orch.toml`
(the project root), else `.orch/` in the working directory (created on first write, mode
0700).

Trust. A store holds pickled results, and loading a pickle runs whatever code it names: whoever
can write a store can run code as whoever reads it. So, like git's `safe.directory`:

- the walk up from the working directory stops at the first folder owned by another user
  (it never looks for their `.orch/`), and then the store is the working directory's own;
- a `.orch/` (or its `orch.db`, `blobs/`) owned by another user is refused, wherever it came
  from, unless the user lists it under `[safe] directories` in their `config.toml`;
- one the user owns but that group or others can write is refused too, with the `chmod` that
  fixes it; one that others can only read is narrowed to 0700 folders / 0600 files when it is
  opened, with a warning on stderr.

Root is not exempt: a store made by another user is refused for root too.

The user's `config.toml` lives in platformdirs' `user_config_dir("orchlite")`
(`~/.config/orchlite/config.toml` on Linux, honouring `XDG_CONFIG_HOME`):

    [safe]
    directories = ["/srv/shared/project/.orch"]   # a `.orch/` or the folder that holds it
"""

from __future__ import annotations

import os
import shlex
import stat
import sys
from pathlib import Path

from .errors import StoreError
from .settings import PROJECT_FILE

HOME_DIRNAME = ".orch"
HOME_ENV = "ORCH_HOME"
USER_CONFIG_NAME = "config.toml"

FILE_MODE = 0o600
"""Every file in `.orch/` is owner-only: results are code (cloudpickle) to whoever loads them."""
DIR_MODE = 0o700

_GUARDED = ("orch.db", "orch.db-wal", "orch.db-shm", "blobs")
"""What is checked inside `.orch/` at every open, besides `.orch/` itself."""


class UntrustedStoreError(StoreError):
    """A store owned by another user, or writable by them: it is never opened."""


def find_home(explicit: str | os.PathLike[str] | None = None, start: Path | None = None) -> Path:
    """The `.orch/` directory to use; it may not exist yet.

    Walking up from `start` (the working directory), the first folder that holds a `.orch`
    or an `orch.toml` is the project's root, and its `.orch/` the store. StoreError when
    that `.orch` is there but is not a folder.
    """
    if explicit:
        return _folder_or_absent(Path(explicit).expanduser().absolute())
    from_env = os.environ.get(HOME_ENV)
    if from_env:
        return _folder_or_absent(Path(from_env).expanduser().absolute())
    here = (start or Path.cwd()).absolute()
    for folder in (here, *here.parents):
        if folder != here and not _owned_by_me(folder) and not listed_safe(folder / HOME_DIRNAME):
            break  # never look for another user's store
        candidate = folder / HOME_DIRNAME
        if os.path.lexists(candidate) or (folder / PROJECT_FILE).is_file():
            return _folder_or_absent(candidate)
    return here / HOME_DIRNAME


def _folder_or_absent(home: Path) -> Path:
    if os.path.lexists(home) and not home.is_dir():
        raise StoreError(
            f"{home} is not a folder: a store is a folder (move the file away, or choose"
            " another store with --home)"
        )
    return home


def project_root(home: Path) -> Path:
    """The folder that holds `.orch/`: the working directory of every run, and where
    relative flow targets are resolved from."""
    return home.parent if home.name == HOME_DIRNAME else Path.cwd()


# -- trust ----------------------------------------------------------------------------------


def check_home(home: Path) -> None:
    """Refuse `home` if another user owns it or can write it; narrow it if others can read it.

    UntrustedStoreError (one line: the path, the owner or mode, and the fix) when refused.
    A missing `home` passes (it will be created owner-only). A store listed under
    `[safe] directories` is used as it is: neither refused nor narrowed.
    """
    infos = _guarded(home)
    if all(_private(info) for _, info in infos) or listed_safe(home):
        return
    for path, info in infos:
        if info.st_uid != os.geteuid():
            raise UntrustedStoreError(_foreign_message(path, home, info.st_uid))
    for path, info in infos:
        mode = stat.S_IMODE(info.st_mode)
        if mode & 0o022:
            raise UntrustedStoreError(
                f"{path} can be written by other users (mode {mode:04o}), and whoever writes a"
                f" store can run code as you; if you trust them, run: chmod -R go-rwx"
                f" {shlex.quote(str(home))}"
            )
    _narrow_with_warning(home)


def owner_problem(home: Path) -> str | None:
    """Why `home` is refused for its owner (the line to show), or None if it is the user's
    own, is not there yet, or is listed under `[safe] directories`."""
    for path, info in _guarded(home):
        uid = info.st_uid
        if uid != os.geteuid() and not listed_safe(home):
            return _foreign_message(path, home, uid)
    return None


def _private(info: os.stat_result) -> bool:
    """Owned by this user, with no group or other bits."""
    return info.st_uid == os.geteuid() and not info.st_mode & 0o077


def _guarded(home: Path) -> list[tuple[Path, os.stat_result]]:
    """The guarded paths that exist, each with its one stat: the WAL and its index come and
    go with connections (the last to close deletes them), so a path is never stat'ed twice."""
    found = []
    for path in (home, *(home / name for name in _GUARDED)):
        info = _stat(path)
        if info is not None:
            found.append((path, info))
    return found


def narrow_modes(home: Path) -> list[tuple[Path, int, int | None]]:
    """Remove group and other bits from `home` and everything in it (links are skipped).

    Returns (path, old mode, new mode) per path changed; new mode None where chmod failed.
    """
    changed: list[tuple[Path, int, int | None]] = []
    for path in [home, *sorted(home.rglob("*"))]:
        try:
            info = path.lstat()
        except FileNotFoundError:
            continue
        mode = stat.S_IMODE(info.st_mode)
        if stat.S_ISLNK(info.st_mode) or not mode & 0o077:
            continue
        narrowed = mode & (DIR_MODE if stat.S_ISDIR(info.st_mode) else FILE_MODE)
        try:
            os.chmod(path, narrowed, follow_symlinks=False)
        except OSError:
            changed.append((path, mode, None))
            continue
        changed.append((path, mode, narrowed))
    return changed


def _narrow_with_warning(home: Path) -> None:
    changed = narrow_modes(home)
    failed = [path for path, _, new in changed if new is None]
    if failed:
        print(
            f"warning: {home} is readable by other users; cannot narrow {failed[0]}"
            f" (run: chmod -R go-rwx {shlex.quote(str(home))})",
            file=sys.stderr,
        )
    elif changed:
        print(
            f"warning: {home} was readable by other users; narrowed {len(changed)} path(s) to"
            " owner-only (0700 folders, 0600 files)",
            file=sys.stderr,
        )


def _foreign_message(path: Path, home: Path, uid: int) -> str:
    return (
        f"{path} is owned by {_user_name(uid)}, not by you ({_user_name(os.geteuid())}), and"
        " whoever writes a store can run code as you: use a store of your own (--home or"
        f" ORCH_HOME), or, if you trust {_user_name(uid)}, add {str(home)!r} to"
        f" [safe] directories in {user_config_path()}"
    )


def _user_name(uid: int) -> str:
    try:
        import pwd

        return f"{pwd.getpwuid(uid).pw_name} (uid {uid})"
    except (ImportError, KeyError):
        return f"uid {uid}"


def _owned_by_me(folder: Path) -> bool:
    try:
        return folder.stat().st_uid == os.geteuid()
    except OSError:
        return False


def _stat(path: Path) -> os.stat_result | None:
    """`path.stat()`, or None if it is not there."""
    try:
        return path.stat()
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise StoreError(f"cannot use {path}: {exc.strerror or exc}") from None


# -- the user's config file -----------------------------------------------------------------


def user_config_path() -> Path:
    """The user's `config.toml` (it may not exist)."""
    from platformdirs import user_config_dir

    return Path(user_config_dir("orchlite", appauthor=False)) / USER_CONFIG_NAME


def safe_directories() -> list[Path]:
    """The stores the user trusts whoever owns them: `[safe] directories` in `config.toml`.

    StoreError when the file cannot be read, is not TOML of the documented shape, or is
    itself writable by another user (then it could name any store).
    """
    path = user_config_path()
    try:
        with open(path, "rb") as fh:
            info = os.fstat(fh.fileno())
            raw = fh.read()
    except FileNotFoundError:
        return []
    except OSError as exc:
        raise StoreError(f"cannot read {path}: {exc.strerror or exc}") from None
    if info.st_uid != os.geteuid() or info.st_mode & 0o022:
        raise StoreError(
            f"{path} is not yours alone to write (owner uid {info.st_uid}, mode"
            f" {stat.S_IMODE(info.st_mode):04o}): run: chmod go-w {shlex.quote(str(path))}"
        )
    return _parse_safe(path, raw)


def _parse_safe(path: Path, raw: bytes) -> list[Path]:
    if sys.version_info >= (3, 11):
        import tomllib
    else:  # pragma: no cover
        import tomli as tomllib

    try:
        data = tomllib.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, tomllib.TOMLDecodeError, RecursionError) as exc:
        raise StoreError(f"{path} is not valid TOML: {exc}") from None
    safe = data.get("safe", {})
    entries = safe.get("directories", []) if isinstance(safe, dict) else None
    if not isinstance(entries, list) or not all(isinstance(e, str) and e for e in entries):
        raise StoreError(f"{path}: [safe] directories must be a list of folder paths")
    return [Path(entry).expanduser().absolute() for entry in entries]


def listed_safe(folder: Path) -> bool:
    """True if `folder` (a `.orch/` or a folder holding one) is under `[safe] directories`."""
    listed = safe_directories()
    if not listed:
        return False
    wanted = {folder.absolute(), _resolved(folder)}
    if folder.name == HOME_DIRNAME:
        wanted |= {folder.parent.absolute(), _resolved(folder.parent)}
    return any(entry in wanted or _resolved(entry) in wanted for entry in listed)


def _resolved(path: Path) -> Path:
    try:
        return path.resolve()
    except OSError:
        return path.absolute()
