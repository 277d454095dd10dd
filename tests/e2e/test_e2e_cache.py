"""Task result caching across separate `orch run` processes."""

from __future__ import annotations

import time

from tests.helpers import Project, assert_blobs_whole

CACHED = """
from datetime import timedelta
from pathlib import Path

from orchlite import flow, task
from orchlite.cache_policies import INPUTS, TASK_SOURCE


@task(cache_policy=INPUTS + TASK_SOURCE, persist_result=True)
def summarize(x: int, source: Path) -> str:
    bump("summarize.count")
    return f"{x}:" + source.read_text().upper()


@task(cache_policy=INPUTS + TASK_SOURCE, persist_result=True)
def big(x: int) -> str:
    bump("big.count")
    return "#" * 20_000 + str(x)


@task(cache_policy=INPUTS, cache_expiration=timedelta(seconds=1))
def short_lived(x: int) -> int:
    bump("short.count")
    return x


@flow
def report(x: int = 1) -> str:
    return summarize(x, Path("input.txt"))


@flow
def large(x: int = 1) -> int:
    return len(big(x))


@flow
def twice(x: int = 1) -> int:
    return short_lived(x) + short_lived(x)
"""


def _task_states(project: Project) -> list[str]:
    return [t["state"] for t in project.show()["tasks"]]


def test_second_run_is_answered_from_the_cache(project: Project) -> None:
    project.write_flow("flows.py", CACHED)
    project.write("input.txt", "hello")
    project.orch("run", "flows.py:report")
    assert _task_states(project) == ["COMPLETED"]
    project.orch("run", "flows.py:report")
    assert project.count("summarize.count") == 1
    [task] = project.show()["tasks"]
    assert (task["state"], task["cached"]) == ("CACHED", True)

    project.orch("run", "flows.py:report", "-p", "x=2")  # other inputs: a miss
    assert project.count("summarize.count") == 2
    assert len(project.json("cache", "ls", "--json")) == 2


def test_editing_the_task_source_is_a_miss(project: Project) -> None:
    project.write_flow("flows.py", CACHED)
    project.write("input.txt", "hello")
    project.orch("run", "flows.py:report")
    source = (project.root / "flows.py").read_text()
    edited = source.replace('return f"{x}:" +', 'return f"{x};" +')
    assert edited != source
    (project.root / "flows.py").write_text(edited)
    project.orch("run", "flows.py:report")
    assert project.count("summarize.count") == 2
    assert _task_states(project) == ["COMPLETED"]
    project.orch("run", "flows.py:report")
    assert project.count("summarize.count") == 2


def test_changed_file_content_of_a_path_argument_is_a_miss(project: Project) -> None:
    project.write_flow("flows.py", CACHED)
    project.write("input.txt", "hello")
    project.orch("run", "flows.py:report")
    project.write("input.txt", "goodbye")
    project.orch("run", "flows.py:report", "--json")
    assert project.count("summarize.count") == 2
    assert _task_states(project) == ["COMPLETED"]
    project.write("input.txt", "hello")  # the first content again: its entry still holds
    project.orch("run", "flows.py:report")
    assert project.count("summarize.count") == 2
    assert _task_states(project) == ["CACHED"]


def test_expired_entry_is_a_miss(project: Project) -> None:
    project.write_flow("flows.py", CACHED)
    project.orch("run", "flows.py:twice")
    # The second call in the same run is a hit: the entry has not expired yet.
    assert project.count("short.count") == 1
    assert _task_states(project) == ["COMPLETED", "CACHED"]
    [entry] = project.json("cache", "ls", "--json")
    assert entry["expires"] is not None and entry["expires"] > entry["created"]
    time.sleep(1.1)
    project.orch("run", "flows.py:twice")
    assert project.count("short.count") == 2
    assert _task_states(project) == ["COMPLETED", "CACHED"]


def test_refresh_cache_executes_again_and_refreshes_the_entry(project: Project) -> None:
    project.write_flow("flows.py", CACHED)
    project.write("input.txt", "hello")
    project.orch("run", "flows.py:report")
    project.orch("run", "flows.py:report", "--refresh-cache")
    assert project.count("summarize.count") == 2
    assert _task_states(project) == ["COMPLETED"]
    project.write("input.txt", "hello")
    project.orch("run", "flows.py:report")
    assert project.count("summarize.count") == 2
    assert _task_states(project) == ["CACHED"]


def test_corrupt_blob_is_a_miss_with_a_warning(project: Project) -> None:
    project.write_flow("flows.py", CACHED)
    project.orch("run", "flows.py:large")
    [blob] = project.blob_files()  # > 4 KiB: stored as a blob, not inline
    assert blob.stat().st_size > 4096
    [entry] = project.json("cache", "ls", "--json")
    assert entry["in_blob"]

    blob.chmod(0o600)
    blob.write_bytes(b"not what was stored")
    proc = project.orch("run", "flows.py:large")
    assert "Traceback" not in proc.stderr
    warnings = [line for line in proc.stderr.splitlines() if "WARNING" in line]
    assert len(warnings) == 1, proc.stderr
    assert "corrupt" in warnings[0]
    assert project.count("big.count") == 2
    assert project.show()["state"] == "COMPLETED"
    # Executing again rewrote the blob whole, so the next run is a hit again.
    assert_blobs_whole(project)
    proc = project.orch("run", "flows.py:large")
    assert "WARNING" not in proc.stderr
    assert project.count("big.count") == 2
    assert _task_states(project) == ["CACHED"]


def test_missing_blob_is_a_miss_with_a_warning(project: Project) -> None:
    project.write_flow("flows.py", CACHED)
    project.orch("run", "flows.py:large")
    [blob] = project.blob_files()
    blob.unlink()
    proc = project.orch("run", "flows.py:large")
    assert "WARNING" in proc.stderr and "missing" in proc.stderr
    assert "Traceback" not in proc.stderr
    assert project.count("big.count") == 2
    project.orch("run", "flows.py:large")
    assert project.count("big.count") == 2
    assert_blobs_whole(project)
