"""Looking at runs never unpickles a result: a pickle is code, run as whoever loads it.

Every result here is booby-trapped: unpickling it creates the file `unpickled`. Listings,
`orch show`, `orch logs`, `orch cache ls`, their `--json` forms, `orch doctor` and the daemon
must all work without creating it. (The TUI is tested in tests/test_tui.py.)
"""

from __future__ import annotations

import subprocess
import time

from tests.helpers import Project, wait_for

TRAPPED = """
from pathlib import Path

from orchlite import flow, on_flow, task


class Trap:
    \"\"\"Unpickling this creates `unpickled` next to this file.\"\"\"

    def __reduce__(self):
        return (Path.touch, (Path(__file__).resolve().parent / "unpickled",))


@task(cache_key_fn=lambda context, parameters: "always")
def small():
    return Trap()


@task
def large():
    return [Trap(), "x" * 10_000]  # past the inline limit: a blob


@flow
def trapped():
    small()
    large()
    return [Trap(), "y" * 10_000]


@flow(triggers=[on_flow("trapped")])
def after(upstream_run_id: str):
    return Trap()
"""


def _assert_untouched(project: Project, after: str) -> None:
    assert not (project.root / "unpickled").exists(), f"{after} unpickled a result"


def test_listings_show_logs_json_cache_and_doctor_never_unpickle(project: Project) -> None:
    project.write_flow("flows.py", TRAPPED)
    project.orch("run", "flows.py:trapped")
    _assert_untouched(project, "orch run")
    for args in (
        ("runs",),
        ("runs", "--json"),
        ("show", "last"),
        ("show", "last", "--json"),
        ("logs", "last"),
        ("cache", "ls"),
        ("cache", "ls", "--json"),
    ):
        project.orch(*args)
        _assert_untouched(project, f"orch {' '.join(args)}")
    project.orch("doctor", expect=None)
    _assert_untouched(project, "orch doctor")

    shown = project.show()
    assert shown["state"] == "COMPLETED"
    assert shown["result"].startswith("[<flows.Trap object at 0x")
    assert shown["result"].endswith("…") and len(shown["result"]) == 300
    small, large = shown["tasks"]
    assert small["result"].startswith("<flows.Trap object at 0x")
    assert large["result"].startswith("[<flows.Trap object at 0x")
    text = project.orch("show", "last").stdout
    assert "result:     [<flows.Trap object at 0x" in text


def test_the_daemon_never_unpickles_the_results_of_runs_it_watches_or_starts(
    project: Project,
) -> None:
    project.write_flow("flows.py", TRAPPED)
    log = project.root / "daemon.log"
    with open(log, "w") as err:
        daemon = project.popen("daemon", "--tick", "0.1", stdout=subprocess.DEVNULL, stderr=err)
    try:
        wait_for(lambda: "loaded" in log.read_text(), what="the daemon to load the project")
        time.sleep(0.3)  # the trigger's first tick marks where it starts
        project.orch("run", "flows.py:trapped")
        wait_for(
            lambda: {r["flow"]: r["state"] for r in project.recorded()}.get("after") == "COMPLETED",
            what="the triggered run to complete",
        )
    finally:
        daemon.terminate()
        daemon.wait(timeout=30)
    assert daemon.returncode == 0, log.read_text()
    assert {r["flow"]: r["state"] for r in project.runs()} == {
        "trapped": "COMPLETED",
        "after": "COMPLETED",
    }
    _assert_untouched(project, "orch daemon")
