"""The user's secrets file: where `orch secret set` keeps values, outside every project.

The file is `secrets.json` in the user's config directory (platformdirs'
`user_config_dir("orchlite")`: `~/.config/orchlite/` on Linux, honouring
`XDG_CONFIG_HOME`), a JSON object of name → value. It is plain text protected by its
mode, like `~/.netrc` or `~/.pgpass`: the directory is 0700 and the file 0600, and a file
that other users can read is refused, never read, until its mode is narrowed. Writes go to a
temporary file in the same directory, which is flushed and renamed over the old one under a
lock, so a crash leaves the old file or the new one, never half of one, and two writers never
lose each other's change.

Names are environment variable names (`SLACK_TOKEN`): `orchlite.secret(NAME)` looks in the
environment first, then here.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import stat
import tempfile
from collections.abc import Iterator
from pathlib import Path

from .errors import ExitCode, OrchError

FILE_NAME = "secrets.json"
_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


class SecretError(OrchError):
    """A secret that cannot be read or written: a bad name, a missing or refused value, a
    refused file. Raised inside a run, it fails the run (`orch secret` exits 2 on it)."""

    exit_code = ExitCode.RUN_FAILED


def check_name(name: object) -> str:
    """`name` if it is a valid secret name (an environment variable name), else SecretError."""
    if not isinstance(name, str) or not _NAME.fullmatch(name):
        shown = repr(name) if isinstance(name, str) else type(name).__name__
        raise SecretError(
            f"bad secret name {shown}: use letters, digits and underscores, "
            "not starting with a digit (e.g. SLACK_TOKEN)"
        )
    return name


def secrets_path() -> Path:
    """The secrets file (it may not exist yet)."""
    from platformdirs import user_config_dir

    return Path(user_config_dir("orchlite", appauthor=False)) / FILE_NAME


def read_secrets(path: Path | None = None) -> dict[str, str]:
    """Every name → value in the secrets file; {} when there is none.

    SecretError when the file is readable by other users, unreadable or not a JSON object
    of strings (the message names the file and never quotes its content).
    """
    path = path or secrets_path()
    try:
        fd = os.open(path, os.O_RDONLY)
    except FileNotFoundError:
        return {}
    except OSError as exc:
        raise SecretError(f"cannot read the secrets file {path}: {exc.strerror}") from None
    with os.fdopen(fd, "rb") as fh:
        mode = stat.S_IMODE(os.fstat(fh.fileno()).st_mode)
        if mode & 0o077 and os.name == "posix":
            raise SecretError(
                f"the secrets file {path} is readable by other users (mode {mode:04o}); "
                f"run: chmod 600 {path}"
            )
        raw = fh.read()
    try:
        data = json.loads(raw)
    except ValueError:
        data = None
    if not isinstance(data, dict) or not all(
        isinstance(k, str) and isinstance(v, str) for k, v in data.items()
    ):
        raise SecretError(
            f"the secrets file {path} is not a JSON object of names to strings; "
            "fix it or remove it and set the secrets again"
        )
    return data


def write_secret(name: str, value: str, path: Path | None = None) -> Path:
    """Add or replace one secret in the file; returns the file's path."""
    path = path or secrets_path()
    with _locked(path):
        data = read_secrets(path)
        data[check_name(name)] = value
        _write_atomically(path, data)
    return path


def remove_secret(name: str, path: Path | None = None) -> bool:
    """Remove one secret from the file; False when it was not there."""
    path = path or secrets_path()
    with _locked(path):
        data = read_secrets(path)
        if check_name(name) not in data:
            return False
        del data[name]
        _write_atomically(path, data)
    return True


@contextlib.contextmanager
def _locked(path: Path) -> Iterator[None]:
    from filelock import FileLock

    _private_dir(path.parent)
    with FileLock(str(path.with_name(FILE_NAME + ".lock")), mode=0o600):
        yield


def _private_dir(folder: Path) -> None:
    """Create the directory owner-only, and narrow it if it exists wider."""
    try:
        folder.mkdir(mode=0o700, parents=True, exist_ok=True)
        if stat.S_IMODE(folder.stat().st_mode) != 0o700:
            folder.chmod(0o700)
    except OSError as exc:
        raise SecretError(f"cannot create {folder}: {exc.strerror}") from None


def _write_atomically(path: Path, data: dict[str, str]) -> None:
    text = json.dumps(dict(sorted(data.items())), indent=2) + "\n"
    try:
        fd, temp = tempfile.mkstemp(dir=path.parent, prefix=".secrets-", suffix=".tmp")
    except OSError as exc:
        raise SecretError(f"cannot write the secrets file {path}: {exc.strerror}") from None
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:  # mkstemp creates it 0600
            fh.write(text)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(temp, path)
    except BaseException as exc:
        with contextlib.suppress(OSError):
            os.unlink(temp)
        if isinstance(exc, OSError):
            raise SecretError(f"cannot write the secrets file {path}: {exc.strerror}") from None
        raise
    with contextlib.suppress(OSError):  # make the rename itself durable
        dir_fd = os.open(path.parent, os.O_RDONLY)
        try:
            os.fsync(dir_fd)
        finally:
            os.close(dir_fd)
