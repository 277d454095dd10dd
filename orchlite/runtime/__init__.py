"""Facts about the run in progress, as Prefect's `prefect.runtime` gives them.

```python
from orchlite.runtime import deployment, flow_run, task_run

print(f"{flow_run.name} of {flow_run.flow_name}, attempt {flow_run.run_count}")
```

Each attribute is looked up when it is read, from the run context of the calling code, so
the same import gives the current run's values in every run. Outside a run an attribute is
empty (None, `{}`, `[]`, 0; `flow_run.scheduled_start_time` is now), never an error. An
environment variable `ORCH__RUNTIME__<MODULE>__<NAME>` (for example
`ORCH__RUNTIME__FLOW_RUN__ID`) overrides an attribute, for tests: see `_attributes`.
"""

from . import deployment, flow_run, task_run

__all__ = ["deployment", "flow_run", "task_run"]
