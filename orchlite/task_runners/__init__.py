"""Task runners: where submitted task runs execute.

Orchestration (states, retries, timeouts, caching, logs, every store write) always happens in
the flow's own process, in the runner's orchestration threads: `submit(orchestrate)` returns a
future of the task run's final state. A runner decides how many task runs go at once and where
their function bodies execute (`run_body`):

- `ThreadPoolTaskRunner` runs bodies in the orchestrating thread (the default).
- `ProcessPoolTaskRunner` sends each body to a pool of worker processes ("spawn" start method).
- `DaskTaskRunner` sends each body to a Dask cluster (`pip install 'orchlite[dask]'`); it
  takes task runs as steps (`submit_steps`, see `orchlite.steps`), so no thread waits
  while a body is on the cluster.

A body sent to another process travels as cloudpickle bytes: functions of the flow's own file
(often loaded by path under a name a worker cannot import) are pickled by value. In the worker
it runs with a stand-in run context, so `get_run_logger()` and `print()` (with `log_prints`)
work; their records travel back with the result and are written to the store by the
orchestrating thread, under the same task run, as if the body had run there. Workers never
open `.orch/`. An exception raised by the body is raised again in the orchestrating thread,
with the worker's traceback as a note.

The runners that use other processes, and what they share, live in modules of their own,
imported on first use (PEP 562): `import orchlite.task_runners` loads neither the process
pool's machinery nor the Dask runner. The modules:

- `base`: the `TaskRunner` contract, `ThreadPoolTaskRunner`, and the `WorkerBridge` through
  which a flow run hands its runner the run context and logs of bodies sent elsewhere;
- `worker`: what runs in a worker for one body, and the mapping of its traceback's frames;
- `pickling`: what travels by value;
- `bodies`: requests out and replies back, shared by the two runners below;
- `process_pool`: `ProcessPoolTaskRunner`;
- `dask_cluster`: `DaskTaskRunner`, which sends and collects bodies in batches
  (`dask_bodies`).
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from .base import TaskRunner, ThreadPoolTaskRunner, WorkerBridge, call_with_timeout

_LAZY = {
    "ProcessPoolTaskRunner": "process_pool",
    "DaskTaskRunner": "dask_cluster",
    "STEP_THREADS": "dask_cluster",
    "RemoteError": "bodies",
    "RemoteTraceback": "bodies",
    "WorkerCrashedError": "bodies",
}

if TYPE_CHECKING:
    from .bodies import RemoteError, RemoteTraceback, WorkerCrashedError
    from .dask_cluster import STEP_THREADS, DaskTaskRunner
    from .process_pool import ProcessPoolTaskRunner


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(f".{module}", __name__), name)
    globals()[name] = value
    return value


__all__ = [
    "STEP_THREADS",
    "DaskTaskRunner",
    "ProcessPoolTaskRunner",
    "RemoteError",
    "RemoteTraceback",
    "TaskRunner",
    "ThreadPoolTaskRunner",
    "WorkerBridge",
    "WorkerCrashedError",
    "call_with_timeout",
]
