"""A child run's request (target, parameters, changed paths) never goes on a command line.

`/proc/PID/cmdline` is readable by every local user, and the kernel refuses a single
argument over 128 kB; the request goes to the child through a pipe instead.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from tests.helpers import Project

SECRET_LOOKING = "tok_live_4f1c9e2ab7d34d0c9a1e-never-on-a-command-line"

HOLD = """
import os
import time
from pathlib import Path

from orchlite import flow


@flow
def hold(token: str) -> int:
    Path("task.pid").write_text(str(os.getpid()))
    while not Path("go").exists():
        time.sleep(0.02)
    return len(token)


@flow
def measure(blob: str) -> int:
    return len(blob)
"""


def _proc_text(pid: int, name: str) -> str:
    return Path(f"/proc/{pid}/{name}").read_bytes().replace(b"\0", b" ").decode()


def test_a_child_runs_command_line_and_environment_hold_no_parameter_value(
    project: Project,
) -> None:
    project.write_flow("flows.py", HOLD)
    project.write("params.json", json.dumps({"token": SECRET_LOOKING}))
    proc = project.popen("run", "flows.py:hold", "--subprocess", "--params-file", "params.json")
    try:
        child = project.read_pid()
        cmdline = _proc_text(child, "cmdline")
        assert "orchlite.executor" in cmdline, cmdline
        assert SECRET_LOOKING not in cmdline
        assert SECRET_LOOKING not in _proc_text(child, "environ")
        assert SECRET_LOOKING not in _proc_text(proc.pid, "cmdline")
        (project.root / "go").touch()
        _, err = proc.communicate(timeout=60)
    finally:
        (project.root / "go").touch()
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 0, err
    shown = project.show()
    assert shown["state"] == "COMPLETED"
    assert shown["parameters"] == {"token": SECRET_LOOKING}


def test_a_200_kb_parameter_runs_in_a_child_process(project: Project) -> None:
    project.write_flow("flows.py", HOLD)
    blob = "x" * 200_000 + "-end"
    project.write("params.json", json.dumps({"blob": blob}))
    proc = project.orch("run", "flows.py:measure", "--subprocess", "--params-file", "params.json")
    assert "Argument list too long" not in proc.stderr
    shown = project.show()
    assert shown["state"] == "COMPLETED"
    assert shown["parameters"]["blob"] == blob


def test_a_request_the_child_cannot_read_is_one_clear_error(project: Project) -> None:
    """The executor module started by hand (no request pipe) says what to use instead."""
    proc = subprocess.run(
        [sys.executable, "-m", "orchlite.executor", "--run", "0" * 32],
        cwd=project.root,
        env=project.env,
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert proc.returncode == 2, proc.stderr
    assert proc.stderr.strip().splitlines() == [
        "error: orchlite.executor runs a request its parent passes through a pipe; "
        "use `orch run --subprocess` instead"
    ]
