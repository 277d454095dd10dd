"""Several `orch run` processes writing one `.orch/` at once."""

from __future__ import annotations

from tests.helpers import Project, assert_blobs_whole, finish

MANY = """
from orchlite import flow, task
from orchlite.cache_policies import INPUTS


@task
def square(i: int) -> int:
    return i * i


@task(cache_policy=INPUTS)
def shared(i: int) -> bytes:
    # The same key and the same blob in every process.
    return bytes([i]) * 8_000


@flow
def many(seed: int = 0) -> int:
    total = sum(square(seed * 100 + i) for i in range(18))
    return total + len(shared(1)) + len(shared(2))
"""

PROCESSES = 8
TASKS = 20


def test_eight_runs_at_once_share_one_store(project: Project) -> None:
    project.write_flow("flows.py", MANY)
    # No .orch/ yet: the processes also race to create and migrate it.
    procs = [project.popen("run", "flows.py:many", "-p", f"seed={i}") for i in range(PROCESSES)]
    outputs = [finish(proc, timeout=60) for proc in procs]
    for proc, (_, err) in zip(procs, outputs, strict=True):
        assert proc.returncode == 0, err
        assert "locked" not in err.lower(), err
        assert "Traceback" not in err, err

    runs = project.json("runs", "--json", "--limit", "100")
    assert len(runs) == PROCESSES
    assert {r["state"] for r in runs} == {"COMPLETED"}
    assert sorted(r["parameters"]["seed"] for r in runs) == list(range(PROCESSES))
    store = project.store()
    for run in runs:
        total = sum(run["task_counts"].values())
        assert total == TASKS, run
        assert run["task_counts"].get("FAILED", 0) == 0
        task_runs = store.task_runs(run["id"])
        assert [t.position for t in task_runs] == list(range(TASKS))
        assert all(t.state in ("COMPLETED", "CACHED") for t in task_runs)
    assert len(project.json("cache", "ls", "--json")) == 2
    assert store.integrity_check() == "ok"
    assert_blobs_whole(project)
