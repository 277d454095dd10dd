"""`orch logs`, `orch show` and `orch runs` never pass control characters through raw."""

from __future__ import annotations

import re

from tests.helpers import Project

HOSTILE = r"""
from orchlite import flow, get_run_logger, task


@task
def boom(text: str) -> None:
    raise ValueError(f"bad input {text}")


@flow
def hostile(text: str = "\x1b[2J\x1b[H") -> None:
    get_run_logger().warning("clears %s the screen\r\x07", text)
    boom(text)
"""

CONTROL = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f]")


def test_control_characters_in_logs_errors_and_parameters_are_shown_escaped(
    project: Project,
) -> None:
    project.write_flow("flows.py", HOSTILE)
    project.orch("run", "flows.py:hostile", expect=None)
    logs = project.orch("logs", "last").stdout
    assert "clears \\x1b[2J\\x1b[H the screen\\x0d\\x07" in logs
    show = project.orch("show", "last").stdout
    assert "bad input \\x1b[2J\\x1b[H" in show
    runs = project.orch("runs").stdout
    for output in (logs, show, runs):
        assert not CONTROL.search(output), output
