"""Shell-command jobs: a command as a second kind of target, and how entries say how to run.

    [[schedule]]
    name = "backup"                    # optional: the flow name of its runs
    command = "pg_dump mydb > /backup/db.sql"
    cron = "0 3 * * *"
    timeout_seconds = 600              # optional, commands only
    retries = 2                        # optional, commands only
    retry_delay_seconds = 60           # optional, commands only
    working_dir = "data"               # optional, any entry
    env = { PGHOST = "localhost" }     # optional, any entry

A command's target is the command text behind `COMMAND_PREFIX` (`"$ pg_dump mydb"`): it
travels wherever a flow's `file.py:flow` does (claimed runs, `orch retry`, overlap checks),
and no Python target can start with `$`. Its runs are flow runs whose flow name is the
entry's `name`, else one made from the command's first words (`command_flow_name`).

How a run is started (`RunOptions`: working directory, and a command's timeout and
retries) is recorded on its run (`stored()`), so a relaunch, a daemon retry and `orch retry`
start it the same way. `env` is never recorded: the daemon reads it from the entry at each
start and hands it to the child's environment.
"""

from __future__ import annotations

import json
import re
import shlex
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from .errors import UsageError

COMMAND_PREFIX = "$ "
ENTRY_KEYS = frozenset({"command", "working_dir", "env"})
"""The keys this module reads from a `[[schedule]]` or `[[trigger]]` table."""
COMMAND_KEYS = frozenset({"timeout_seconds", "retries", "retry_delay_seconds"})
"""The keys only a command entry takes (a flow sets them in `@flow(...)`)."""
_NAME_WORDS = 3
_NAME_LENGTH = 40
_ASSIGNMENT = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*=")
_NOT_NAME = re.compile(r"[^A-Za-z0-9_.]+")


def command_target(command: str) -> str:
    """The target that runs `command` (stripped); UsageError for an empty one."""
    if not isinstance(command, str) or not command.strip():
        raise UsageError("command must be a non-empty string")
    if "\x00" in command:
        raise UsageError("command must not contain NUL characters")
    return COMMAND_PREFIX + command.strip()


RUN_ONE_OF = "give one of them: a target (orch run file.py:flow), --command TEXT or --schedule NAME"
"""What `orch run` says when it is given none, or more than one, of the things it runs."""


def one_off_target(target: str | None, command: str | None, params: dict[str, Any]) -> str:
    """What `orch run TARGET` or `orch run --command TEXT` runs; UsageError for both,
    neither, or parameters given to a command (they never reach a command line)."""
    if (target is None) == (command is None):
        raise UsageError(RUN_ONE_OF)
    if command is None:
        assert target is not None
        return target
    if params:
        raise UsageError(
            "a command takes no parameters: pass values through its environment (env_file)"
        )
    return command_target(command)


def command_of(target: str | None) -> str | None:
    """The command a target runs, or None for a flow's target."""
    if target is None or not target.startswith(COMMAND_PREFIX):
        return None
    return target[len(COMMAND_PREFIX) :]


def command_flow_name(command: str) -> str:
    """A readable flow name for a command: its program's name and up to two of its first
    arguments that are words, joined by "-" (`pg_dump mydb > /b/db.sql` -> `pg_dump-mydb`).

    Words are cut to their last path segment (`/srv/report.py` -> `report.py`); leading
    `VAR=value` assignments and options (`-x`) are skipped, and the name ends at the first
    redirection or shell operator. At most 40 characters; "command" if nothing is left.
    """
    lexer = shlex.shlex(command, posix=True, punctuation_chars=True)
    lexer.whitespace_split = True
    try:
        words = list(lexer)
    except ValueError:  # an unclosed quote
        words = command.split()
    while words and _ASSIGNMENT.match(words[0]):
        words = words[1:]
    picked: list[str] = []
    for word in words:
        if word in {"|", "||", "&&", ";", "&"} or word[0] in "<>|&;":
            break
        if picked and word.startswith("-"):
            continue
        name = _NOT_NAME.sub("_", word.rstrip("/").rpartition("/")[2]).strip("_.")
        if name:
            picked.append(name)
        if len(picked) == _NAME_WORDS:
            break
    return "-".join(picked)[:_NAME_LENGTH].strip("-_.") or "command"


@dataclass(frozen=True)
class RunOptions:
    """How an entry's runs start; all but `env` is recorded on each run."""

    working_dir: str | None = None
    """Relative to the project root (see `resolve_working_dir`); None: the root."""
    timeout_seconds: float | None = None
    retries: int = 0
    retry_delay_seconds: float = 0.0
    env: tuple[tuple[str, str], ...] = ()
    """Variables added to the run's environment; never recorded."""

    def stored(self) -> str | None:
        """The JSON recorded on a run (None when every option has its default)."""
        fields = {k: v for k, v in asdict(self).items() if k != "env"}
        if fields == {k: v for k, v in asdict(RunOptions()).items() if k != "env"}:
            return None
        return json.dumps(fields, sort_keys=True)

    @classmethod
    def from_stored(cls, text: str | None) -> RunOptions:
        """The options recorded on a run; the defaults for none or unreadable ones."""
        try:
            fields = json.loads(text) if text else {}
            return cls(**{k: v for k, v in fields.items() if k in _STORED})
        except (ValueError, TypeError, AttributeError):
            return cls()


_STORED = frozenset({"working_dir", "timeout_seconds", "retries", "retry_delay_seconds"})


@dataclass(frozen=True)
class EntryRun:
    """What an orch.toml entry runs: a command's target and flow name (None for a flow
    entry: its `target` says), and its options."""

    target: str | None
    flow_name: str | None
    options: RunOptions


def read_entry(item: dict[str, Any], root: Path) -> EntryRun:
    """The `command`, `working_dir`, `env` and command-only keys of one orch.toml table.

    A table with `command` must not have `target` or `parameters` (parameters never reach a
    command line); one without must not have the command-only keys. UsageError otherwise.
    """
    command = item.get("command")
    target: str | None = None
    flow_name: str | None = None
    if command is not None:
        target = command_target(command)
        for key in ("target", "parameters"):
            if key in item:
                raise UsageError(f"give either command or {key}, not both")
        label = item.get("name")
        if label is not None and (not isinstance(label, str) or not label.strip()):
            raise UsageError(f"invalid name {label!r}: expected a non-empty string")
        flow_name = label.strip() if label else command_flow_name(target[len(COMMAND_PREFIX) :])
    else:
        given = sorted(COMMAND_KEYS & set(item))
        if given:
            raise UsageError(
                f"{', '.join(given)} belong(s) to a command entry; a flow sets them in @flow(...)"
            )
    working_dir = item.get("working_dir")
    if working_dir is not None:
        if not isinstance(working_dir, str) or not working_dir.strip():
            raise UsageError(f"invalid working_dir {working_dir!r}: expected a folder")
        resolve_working_dir(root, working_dir)
    options = RunOptions(
        working_dir=working_dir,
        timeout_seconds=_seconds(item, "timeout_seconds"),
        retries=_count(item, "retries"),
        retry_delay_seconds=_seconds(item, "retry_delay_seconds") or 0.0,
        env=entry_env(item.get("env")),
    )
    return EntryRun(target, flow_name, options)


def entry_env(value: Any) -> tuple[tuple[str, str], ...]:
    """An entry's `env = {KEY = "value"}` as sorted pairs; UsageError naming a bad one."""
    from .envfile import check_name

    if value is None:
        return ()
    if not isinstance(value, dict):
        raise UsageError('env must be a table: env = { KEY = "value" }')
    pairs = []
    for key, text in value.items():
        check_name(key, "env")
        if not isinstance(text, str):
            raise UsageError(f"env {key}: expected a string, not {text!r}")
        if "\x00" in text:
            raise UsageError(f"env {key}: a value must not contain NUL characters")
        pairs.append((key, text))
    return tuple(sorted(pairs))


def _seconds(item: dict[str, Any], key: str) -> float | None:
    value = item.get(key)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)) or value < 0:
        raise UsageError(f"invalid {key} {value!r}: expected seconds (a number >= 0)")
    return float(value)


def _count(item: dict[str, Any], key: str) -> int:
    value = item.get(key, 0)
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise UsageError(f"invalid {key} {value!r}: expected a whole number >= 0")
    return value


def resolve_working_dir(root: Path, working_dir: str | None) -> Path:
    """The folder a run starts in: the project root, or `working_dir` from it.

    A relative `working_dir` must stay inside the project root once resolved (symbolic
    links and `..` followed); an absolute one may be any folder. Either must be an existing
    folder: UsageError naming it otherwise.
    """
    root = Path(root).resolve()
    if not working_dir:
        return root
    given = Path(working_dir).expanduser()
    folder = given.resolve() if given.is_absolute() else (root / given).resolve()
    if not given.is_absolute() and not folder.is_relative_to(root):
        raise UsageError(f"working_dir {working_dir!r} leaves the project root {root}")
    if not folder.is_dir():
        raise UsageError(f"working_dir {working_dir!r}: no such folder {folder}")
    return folder
