"""A temporary project: its files, its `.orch/`, and the `orch` command run in it.

Every command runs as a child process (`python -m orchlite.cli ...`) with the project as its
working directory and `ORCH_HOME` pointing at the project's `.orch/`, against a real SQLite
database, real blob files, real child processes and real signals.
"""

from __future__ import annotations

import hashlib
import json
import subprocess
import textwrap
from pathlib import Path
from typing import Any

from orchlite.store import Store
from tests.helpers.commands import TIMEOUT, child_env, orch, start
from tests.helpers.waiting import wait_for

COUNTER_SOURCE = '''
from pathlib import Path as _CounterPath


def bump(name):
    """Count one execution in the file `name` (one byte per call, appended)."""
    with open(_CounterPath(name), "a") as fh:
        fh.write("x")
'''
"""Prepended to flow files by `Project.write_flow`: `bump("x.count")` records one execution."""


def write(root: Path, name: str, text: str) -> Path:
    """Write `text`, dedented, to `root/name` (folders made as needed)."""
    path = root / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(textwrap.dedent(text).lstrip("\n"))
    return path


def write_toml(root: Path, text: str) -> Path:
    """The project's `orch.toml`, dedented."""
    return write(root, "orch.toml", text)


class Project:
    """A temporary project folder, its `.orch/`, and ways to drive `orch` in it."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.home = root / ".orch"

    # -- files ------------------------------------------------------------------------

    def write(self, name: str, text: str) -> Path:
        return write(self.root, name, text)

    def write_flow(self, name: str, source: str) -> Path:
        """A flow file: `source` (dedented) after the `bump(name)` execution counter."""
        return self.write(name, COUNTER_SOURCE + textwrap.dedent(source))

    def count(self, name: str) -> int:
        """How many times `bump(name)` ran."""
        path = self.root / name
        return len(path.read_text()) if path.exists() else 0

    # -- the command ------------------------------------------------------------------

    @property
    def env(self) -> dict[str, str]:
        return child_env(self.home)

    def orch(
        self, *args: str, expect: int | None = 0, timeout: float = TIMEOUT, **options: Any
    ) -> subprocess.CompletedProcess[str]:
        """Run `orch ARGS` to completion; assert its exit code unless `expect` is None."""
        options.setdefault("env", self.env)
        return orch(self.root, *args, expect=expect, timeout=timeout, **options)

    def popen(self, *args: str, **options: Any) -> subprocess.Popen[Any]:
        """Start `orch ARGS` without waiting; stdout and stderr are pipes."""
        options.setdefault("env", self.env)
        return start(self.root, *args, **options)

    def json(self, *args: str) -> Any:
        proc = self.orch(*args)
        return json.loads(proc.stdout)

    def runs(self) -> list[dict[str, Any]]:
        """`orch runs --json` with a high limit."""
        return self.json("runs", "--json", "--limit", "1000")

    def show(self, ref: str = "last") -> dict[str, Any]:
        return self.json("show", ref, "--json")

    # -- the store, read directly -----------------------------------------------------

    def store(self) -> Store:
        return Store(self.home, create=False)

    def recorded(self) -> list[dict[str, Any]]:
        """What `orch runs --json --limit 1000` prints, read in this process (no child)."""
        if not (self.home / "orch.db").exists():
            return []
        from orchlite import views

        store = self.store()
        try:
            return json.loads(json.dumps(views.run_list(store, limit=1000)))
        finally:
            store.close()

    def read_pid(self, name: str = "task.pid") -> int:
        """Wait for a flow to write its process id to `name`, and return it."""
        path = self.root / name
        return int(wait_for(lambda: path.exists() and path.read_text(), what=f"a pid in {name}"))

    def blob_files(self) -> list[Path]:
        """Every blob file under its final name (temporary files excluded)."""
        root = self.home / "blobs"
        if not root.is_dir():
            return []
        return sorted(p for p in root.glob("*/*") if p.is_file() and not p.name.startswith(".tmp-"))


def assert_blobs_whole(project: Project) -> None:
    """Every blob's content hashes to its name."""
    for path in project.blob_files():
        digest = hashlib.sha256(path.read_bytes()).hexdigest()
        assert digest == path.name, f"partial or corrupt blob {path}"
        assert path.parent.name == path.name[:2]
