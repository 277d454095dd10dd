"""What every `orch` command shares: the global options, and the project's store as a
command reads it."""

from __future__ import annotations

import contextlib
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .errors import DiskFullError, UsageError


@dataclass
class GlobalOptions:
    """The options given before (or after) the subcommand, set once per invocation."""

    debug: bool = False
    """Show tracebacks on errors (`--debug`)."""
    home: Path | None = None
    """The store named with `--home`, absolute (then it must exist)."""


options = GlobalOptions()


def command_home() -> Path:
    """The store this command uses, resolved once from the command line: `--home`, else
    as `config.find_home` finds it (ORCH_HOME, else the project around the working
    directory). It is passed on explicitly (to the executor, the supervisor, the daemon),
    never through this process's environment."""
    from .config import find_home

    return find_home(options.home)


def project_home() -> Path:
    """The project's `.orch/` for a command that reads it.

    A store named with `--home` must exist: a mistyped path is an error, not an empty
    history. ORCH_HOME may name a store not created yet (a fresh project has no runs), but
    not one whose folder is missing as well.
    """
    from .config import HOME_ENV

    found = command_home()
    if (found / "orch.db").exists():
        return found
    if options.home is not None:
        raise UsageError(f"no store at {found} (named by --home)")
    if os.environ.get(HOME_ENV) and not found.parent.is_dir():
        raise UsageError(f"no store at {found} (named by {HOME_ENV}; {found.parent} is missing)")
    return found


def project_store(create: bool = False, reap: bool = True, home: Path | None = None) -> Any:
    """The project's store (or the one at `home`); runs left unfinished by a dead process
    are ended first."""
    from .stopping import reap_dead_runs
    from .store import Store

    at = home or (command_home() if create else project_home())
    if not create and not (at / "orch.db").exists():
        raise UsageError(f"no runs recorded yet (no store at {at})")
    opened = Store(at, create=create)
    if reap and not opened.read_only:
        with contextlib.suppress(DiskFullError):  # reading works on a full disk
            reap_dead_runs(opened)
    return opened


def existing_project_store() -> Any | None:
    """The project's store, or None when nothing was ever recorded in this project."""
    if not (project_home() / "orch.db").exists():
        return None
    return project_store()
