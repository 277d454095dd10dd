r"""Environment files: `[project] env_file = ".env"` in orch.toml, read for every run.

The file's syntax is dotenv's common core, one variable a line:

    # a comment line; blank lines are skipped
    KEY=value                  # an unquoted value ends at ` #` (a comment); spaces trimmed
    export KEY=value           # `export ` is allowed and ignored
    KEY="a \"quoted\"\nvalue"  # double quotes: \\ \" \n \t \r and \$ are escapes
    KEY='literal $value'       # single quotes: taken as written
    KEY=                       # an empty value

Nothing is expanded (`$OTHER` stays as written) and nothing spans lines. A line that is none
of these is an error naming `file:line`; so is a missing or unreadable file. The path is
relative to the project root.

Variables from the file and from an entry's `env = {...}` (which wins) are added to the
environment of the run's process; they are never written to the store, the logs or a
command line.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from .errors import UsageError
from .settings import PROJECT_FILE, read_project_file

_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_LINE = re.compile(r"\s*(?:export\s+)?([^=\s]*)\s*=(.*)")
_ESCAPES = {"n": "\n", "t": "\t", "r": "\r", '"': '"', "\\": "\\", "$": "$"}


def check_name(name: Any, where: str) -> str:
    """`name` if it can name an environment variable; UsageError naming `where` if not."""
    if not isinstance(name, str) or not _NAME.fullmatch(name):
        raise UsageError(f"{where}: invalid variable name {name!r}")
    return name


def parse_env(text: str, source: str = ".env") -> dict[str, str]:
    """The variables of an env file's text; UsageError("SOURCE:LINE: why") for a bad line."""
    found: dict[str, str] = {}
    lines = text.replace("\r\n", "\n").split("\n")  # not splitlines(): \x1e is a character here
    for number, line in enumerate(lines, start=1):
        where = f"{source}:{number}"
        stripped = line.strip()
        if not stripped or stripped.startswith("#"):
            continue
        match = _LINE.fullmatch(line)
        if match is None:
            raise UsageError(f"{where}: expected KEY=value")
        name = check_name(match.group(1), where)
        found[name] = _value(match.group(2), where)
    return found


def _value(raw: str, where: str) -> str:
    text = raw.strip()
    if not text:
        return ""
    quote = text[0]
    if quote not in "\"'":
        return re.split(r"\s#", text, maxsplit=1)[0].rstrip()
    end, value = _quoted(text, quote, where)
    rest = text[end + 1 :].strip()
    if rest and not rest.startswith("#"):
        raise UsageError(f"{where}: unexpected text after the closing quote")
    return value


def _quoted(text: str, quote: str, where: str) -> tuple[int, str]:
    """(index of the closing quote, the value) of a value starting with `quote`."""
    out: list[str] = []
    index = 1
    while index < len(text):
        char = text[index]
        if char == quote:
            return index, "".join(out)
        if char == "\\" and quote == '"' and index + 1 < len(text):
            following = text[index + 1]
            out.append(_ESCAPES.get(following, "\\" + following))
            index += 2
            continue
        out.append(char)
        index += 1
    raise UsageError(f"{where}: no closing {quote}")


def env_file_path(root: Path) -> Path | None:
    """The env file orch.toml names (`[project] env_file`), absolute; None if it names none.

    UsageError for a `[project]` table or `env_file` that is not what it should be. An
    orch.toml that cannot be read at all is a warning here and no env file, as for every
    setting (see `orchlite.settings`): the readers of its schedules report it.
    """
    try:
        data = read_project_file(root) or {}
    except UsageError as exc:
        logging.getLogger("orchlite").warning("%s: %s; no env file is read", PROJECT_FILE, exc)
        return None
    table = data.get("project", {})
    if not isinstance(table, dict):
        raise UsageError(f"{PROJECT_FILE}: [project] must be a table")
    name = table.get("env_file")
    if name is None:
        return None
    if not isinstance(name, str) or not name.strip():
        raise UsageError(f"{PROJECT_FILE}: [project] env_file must be a file name")
    return (Path(root) / Path(name).expanduser()).absolute()


def read_env_file(path: Path) -> dict[str, str]:
    """The variables of the env file at `path`; UsageError naming it when missing or bad."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise UsageError(f"{path}: env file not found ([project] env_file)") from None
    except (OSError, UnicodeDecodeError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else exc
        raise UsageError(f"{path}: cannot read the env file: {reason}") from None
    return parse_env(text, str(path))


def run_environment(root: Path, extra: Mapping[str, str] | None = None) -> dict[str, str]:
    """The variables to add to a run's environment: the env file's, then `extra`'s."""
    path = env_file_path(root)
    found = read_env_file(path) if path is not None else {}
    found.update(extra or {})
    return found
