"""`flow.serve(...)` and `orchlite.serve(...)`, as Prefect's: serve the schedules of some
flows in the foreground, with the daemon's loop, until Ctrl-C or SIGTERM.

    if __name__ == "__main__":
        etl.serve(name="nightly", cron="0 2 * * *", parameters={"day": "yesterday"})

    # or several flows in one process:
    serve(
        etl.to_deployment(name="nightly", cron="0 2 * * *"),
        report.to_deployment(name="hourly", interval=3600),
    )

Each served flow's runs start as the daemon's do, each in a supervised child process, and
are recorded in the project's `.orch/` (trigger "schedule"); the flow's own
`@flow(schedules=...)` are served too. A schedule served here and declared for `orch
daemon` is one schedule: its slots are claimed once in the store, whichever process claims
them first. There is no server: what Prefect calls a deployment is just the name of these
schedules (`orchlite.runtime.deployment.name` in their runs).
"""

from __future__ import annotations

import datetime as dt
import sys
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from .errors import UsageError

if TYPE_CHECKING:
    from pathlib import Path

    from .flows import Flow
    from .project import ScheduleEntry
    from .schedules import Schedule


@dataclass(frozen=True)
class Deployment:
    """A flow and the schedules to serve it on (`Flow.to_deployment(...)`)."""

    flow: Flow[..., Any]
    name: str
    schedules: tuple[Schedule, ...]

    def entries(self, root: Path, home: Path) -> list[ScheduleEntry]:
        from .engine import target_of
        from .project import ScheduleEntry

        target = target_of(self.flow, home)
        if target is None:
            raise UsageError(
                f"cannot serve flow {self.flow.name!r}: define it at the top level of a file"
                " in the project (the daemon runs it as `orch run FILE:FUNCTION`)"
            )
        return [
            ScheduleEntry(
                "serve",
                f"serve {self.name}",
                target,
                self.flow.name,
                schedule,
                options=schedule.run_options(),
            )
            for schedule in self.schedules
        ]


def to_deployment(
    flow: Flow[..., Any],
    name: str | None = None,
    *,
    cron: str | Iterable[str] | None = None,
    interval: float | dt.timedelta | Iterable[float | dt.timedelta] | None = None,
    schedules: Iterable[Schedule] | None = None,
    parameters: Mapping[str, Any] | None = None,
    timezone: str = "UTC",
) -> Deployment:
    """The flow with schedules to serve: `cron=` and `interval=` (one or several) run with
    `parameters`; `schedules=` adds `cron(...)`/`interval(...)` objects; the flow's own
    `@flow(schedules=...)` are always included."""
    from .schedules import cron as cron_schedule
    from .schedules import interval as interval_schedule

    name = name or flow.name
    found: list[Schedule] = list(flow.schedules) + list(schedules or ())
    params = dict(parameters or {})
    for expression in [cron] if isinstance(cron, str) else list(cron or ()):
        found.append(cron_schedule(expression, timezone, parameters=params, name=name))
    every = interval if isinstance(interval, Iterable) else [] if interval is None else [interval]
    for seconds in every:
        found.append(interval_schedule(seconds, timezone=timezone, parameters=params, name=name))
    if not found:
        raise UsageError(
            f"nothing to serve for flow {flow.name!r}: give cron=, interval= or schedules="
        )
    return Deployment(flow, name, tuple(found))


def serve(
    *deployments: Deployment,
    limit: int | None = None,
    print_starting_message: bool = True,
    tick: float = 1.0,
    grace: float = 30.0,
) -> None:
    """Serve the deployments' schedules until Ctrl-C or SIGTERM (from the main thread),
    at most `limit` runs at once; then let the runs in flight finish for `grace` seconds."""
    from .config import project_root
    from .context import open_store
    from .daemon import Daemon, Requests
    from .daemon import serve as serve_loop
    from .daemon.service import signals_to
    from .declarations import Declarations
    from .schedules import describe

    if not deployments:
        raise UsageError("serve() needs at least one flow: flow.to_deployment(...)")
    store = open_store()[0]
    root = project_root(store.home)
    entries = [
        entry for deployment in deployments for entry in deployment.entries(root, store.home)
    ]
    daemon = Daemon(
        store, root, max_runs=limit, declare=lambda _previous: Declarations(schedules=entries)
    )
    if print_starting_message:
        for deployment in deployments:
            shown = ", ".join(describe(s) for s in deployment.schedules)
            print(
                f"Serving {deployment.flow.name!r} as {deployment.name!r}: {shown}", file=sys.stderr
            )
        print("Runs are recorded in .orch/ (orch runs); stop with Ctrl-C.", file=sys.stderr)
    requests = Requests()
    with signals_to(requests):
        serve_loop(daemon, requests, tick=tick, grace=grace)
