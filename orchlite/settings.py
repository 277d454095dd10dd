"""Settings that change how runs behave: Prefect's settings, under orchlite's names.

    ORCH_RESULTS_PERSIST_BY_DEFAULT   as PREFECT_RESULTS_PERSIST_BY_DEFAULT (default false):
                                      task results are persisted, so cache policies apply,
                                      without `persist_result=True` on each task or flow.
                                      Also `[results] persist_by_default = true` in orch.toml.
    ORCH_LOGGING_LEVEL                as PREFECT_LOGGING_LEVEL (default INFO): the level below
                                      which run log records are dropped (not stored, not shown).

The environment wins over orch.toml, as Prefect's environment variables win over its
`prefect.toml`. A value that cannot be understood is a UsageError naming the setting and what
it accepts. An orch.toml that cannot be read at all is a warning and the default: its readers
report it as a problem and the rest of the project goes on working.

`orch.toml` itself is parsed here (`read_project_file`, and `ProjectFile` for a reader that
hands one parse to several readers) so that the engine, which sits below the modules that
read its schedules and alerts, can read its settings too.
"""

from __future__ import annotations

import logging
import os
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .errors import UsageError

PROJECT_FILE = "orch.toml"
PERSIST_ENV = "ORCH_RESULTS_PERSIST_BY_DEFAULT"
LOGGING_LEVEL_ENV = "ORCH_LOGGING_LEVEL"
LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")

_TRUE = frozenset({"1", "true", "t", "yes", "y", "on"})
_FALSE = frozenset({"0", "false", "f", "no", "n", "off"})


def read_project_file(root: Path) -> dict[str, Any] | None:
    """orch.toml's tables, or None when the project has none.

    UsageError("cannot read: why") for a file that cannot be read as TOML: unreadable, not
    UTF-8, a syntax error, or beyond what the parser can hold (an integer thousands of digits
    long, inline tables or arrays nested hundreds deep). Each reader of orch.toml reports it
    as one problem and goes on with the rest of the project.
    """
    if sys.version_info >= (3, 11):
        import tomllib
    else:  # pragma: no cover
        import tomli as tomllib
    path = Path(root) / PROJECT_FILE
    if not path.is_file():
        return None
    try:
        return tomllib.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
        raise UsageError(f"cannot read: {exc}") from None
    except ValueError as exc:  # Python's limit on the digits of an integer
        raise UsageError(f"cannot read: {str(exc).partition(';')[0]}") from None
    except (RecursionError, MemoryError):
        raise UsageError("cannot read: values nested too deeply") from None


@dataclass(frozen=True)
class ProjectFile:
    """orch.toml parsed once: its tables, or the reason it could not be read.

    The project model (`orchlite.project_model`) parses it once and hands this to each of
    its readers (schedules, triggers, alerts, the `[daemon]` table).
    """

    data: dict[str, Any] | None
    """None when the project has no orch.toml (or it could not be read)."""
    error: str | None = None
    """Why it could not be read ("cannot read: ...")."""

    @classmethod
    def read(cls, root: Path) -> ProjectFile:
        try:
            return cls(read_project_file(root))
        except UsageError as exc:
            return cls(None, str(exc))

    def tables(self) -> dict[str, Any] | None:
        """As `read_project_file`: the tables, None without a file, UsageError if unreadable."""
        if self.error is not None:
            raise UsageError(self.error)
        return self.data


def persist_by_default(root: Path) -> bool:
    """Whether task results are persisted when neither the task nor its flow says.

    From ORCH_RESULTS_PERSIST_BY_DEFAULT, else `[results] persist_by_default` in the
    project's orch.toml, else False (Prefect's default).
    """
    raw = os.environ.get(PERSIST_ENV)
    if raw is not None and raw.strip():
        return _parse_bool(raw, PERSIST_ENV)
    try:
        data = read_project_file(root)
    except UsageError as exc:
        # Reported as a problem by the readers of schedules and alerts; runs go on.
        logging.getLogger("orchlite").warning(
            "%s: %s; results are not persisted by default", PROJECT_FILE, exc
        )
        return False
    table = (data or {}).get("results", {})
    if not isinstance(table, dict):
        raise UsageError(f"{PROJECT_FILE}: [results] must be a table")
    value = table.get("persist_by_default", False)
    if not isinstance(value, bool):
        raise UsageError(
            f"{PROJECT_FILE}: [results] persist_by_default must be true or false, not {value!r}"
        )
    return value


def logging_level() -> int:
    """The run log level from ORCH_LOGGING_LEVEL (a level name, any case); INFO if unset."""
    raw = os.environ.get(LOGGING_LEVEL_ENV, "").strip()
    if not raw:
        return logging.INFO
    name = raw.upper()
    if name not in LOG_LEVELS:
        raise UsageError(f"{LOGGING_LEVEL_ENV} must be one of {', '.join(LOG_LEVELS)}, not {raw!r}")
    return int(getattr(logging, name))


def _parse_bool(raw: str, name: str) -> bool:
    text = raw.strip().lower()
    if text in _TRUE:
        return True
    if text in _FALSE:
        return False
    raise UsageError(f"{name} must be true or false, not {raw!r}")
