"""How a run starts: its working directory, its environment and its options.

The options (`shell_jobs.RunOptions`) are those of the entry that starts the run now (`orch
run --schedule NAME`), else those recorded on the run when someone claimed it ahead (the
daemon, with its entry's), else on the run it retries (`orch retry`, a daemon
retry), else the defaults: so a relaunch or a retry starts the way the first run did. A
command run keeps its recorded flow name the same way.

The environment is the process's, plus the project's env file (`[project] env_file`), plus
the variables the starter adds (an entry's `env`), which win. In this process they are set
only while the run runs (`environment`); a child gets them in its own environment.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path

from .envfile import run_environment
from .errors import OrchError
from .shell_jobs import RunOptions, resolve_working_dir


@dataclass(frozen=True)
class RunSetup:
    folder: Path
    """The working directory of the run."""
    options: RunOptions = field(default_factory=RunOptions)
    flow_name: str | None = None
    """The flow name recorded for the run (or the run it retries), if any."""
    env: dict[str, str] = field(default_factory=dict)
    """The variables added to the run's environment."""

    @contextlib.contextmanager
    def environment(self) -> Iterator[None]:
        """`env` set in this process's environment while open; the previous values after."""
        saved = {name: os.environ.get(name) for name in self.env}
        os.environ.update(self.env)
        try:
            yield
        finally:
            for name, value in saved.items():
                if value is None:
                    os.environ.pop(name, None)
                else:
                    os.environ[name] = value


def run_setup(
    home: Path,
    root: Path,
    run_ids: tuple[str | None, ...],
    added: Mapping[str, str] | None,
    given_options: str | None = None,
) -> RunSetup:
    """The setup of a run: options and flow name recorded on the first of `run_ids` found
    (the run itself, then the run it retries), its folder, and its environment with `added`
    (None: the process's environment is the run's already, as in a supervised child).
    `given_options` (stored `RunOptions`: the entry that starts the run now) replace the
    recorded ones.

    UsageError for a working directory that is gone or an env file that cannot be read.
    """
    recorded, flow_name = _recorded(home, run_ids)
    options = recorded if given_options is None else RunOptions.from_stored(given_options)
    folder = resolve_working_dir(root, options.working_dir)
    env = {} if added is None else run_environment(root, added)
    return RunSetup(folder, options, flow_name, env)


def _recorded(home: Path, run_ids: tuple[str | None, ...]) -> tuple[RunOptions, str | None]:
    from .store import Store

    if not (home / "orch.db").exists():
        return RunOptions(), None
    with Store(home) as store:
        for run_id in run_ids:
            if run_id is None:
                continue
            try:
                run = store.get_flow_run(run_id)
            except OrchError:
                continue
            return RunOptions.from_stored(store.run_options(run_id)), run.flow_name
    return RunOptions(), None
