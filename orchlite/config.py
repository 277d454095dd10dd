"""Where the project's `.orch/` directory is.

Resolution order: an explicit path (`orch --home`), then `ORCH_HOME`, then the first `.orch/`
found walking up from the working directory, else `.orch/` in the working directory (created
on first write, mode 0700).
"""

from __future__ import annotations

import os
from pathlib import Path

HOME_DIRNAME = ".orch"
HOME_ENV = "ORCH_HOME"


def find_home(explicit: str | os.PathLike[str] | None = None, start: Path | None = None) -> Path:
    """The `.orch/` directory to use; it may not exist yet."""
    if explicit:
        return Path(explicit).expanduser().absolute()
    from_env = os.environ.get(HOME_ENV)
    if from_env:
        return Path(from_env).expanduser().absolute()
    here = (start or Path.cwd()).absolute()
    for folder in (here, *here.parents):
        candidate = folder / HOME_DIRNAME
        if candidate.is_dir():
            return candidate
    return here / HOME_DIRNAME


def project_root(home: Path) -> Path:
    """The folder that holds `.orch/`: where relative flow targets are resolved from."""
    return home.parent if home.name == HOME_DIRNAME else Path.cwd()
