"""Print a pip constraints file that pins every dependency to its lower bound.

CI installs the project with it (`pip install -c FILE -e '.[test]'`), so each `>=` in
pyproject.toml is a version the fast suite has run against. It reads the runtime
dependencies and the `dask` extra; the test tools resolve as usual.
"""

from __future__ import annotations

import re
import sys
import tomllib
from pathlib import Path

LOWER_BOUND = re.compile(r"^\s*([A-Za-z0-9_.-]+)(?:\[[^\]]*\])?\s*[^;]*?>=\s*([^,;\s]+)[^;]*(;.*)?$")


def lower_bounds(pyproject: Path) -> list[str]:
    project = tomllib.loads(pyproject.read_text())["project"]
    requirements = [*project["dependencies"], *project["optional-dependencies"]["dask"]]
    pins = []
    for requirement in requirements:
        match = LOWER_BOUND.match(requirement)
        if match is None:
            sys.exit(f"no lower bound (>=) in dependency {requirement!r}")
        name, version, marker = match.groups()
        pins.append(f"{name}=={version}{marker or ''}")
    return pins


if __name__ == "__main__":
    root = Path(__file__).resolve().parent.parent
    print("\n".join(lower_bounds(root / "pyproject.toml")))
