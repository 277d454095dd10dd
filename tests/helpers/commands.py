"""The `orch` command as a child process: how tests run it and read what it did.

Every command runs as `python -m orchlite.cli ...` in a project folder, with an environment
built from this one without orchlite's settings (`ORCH_*`), so a test sees only what it set.
"""

from __future__ import annotations

import os
import shlex
import subprocess
import sys
from pathlib import Path
from typing import Any

ORCH = [sys.executable, "-m", "orchlite.cli"]
TIMEOUT = 60.0


def child_env(home: Path | None, **extra: str) -> dict[str, str]:
    """This environment without `ORCH_*` settings, with `ORCH_HOME=home` (with None, the
    child finds its store from its working directory), no colours, and `extra` on top."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("ORCH_")}
    if home is not None:
        env["ORCH_HOME"] = str(home)
    env["NO_COLOR"] = "1"
    env["PYTHONDONTWRITEBYTECODE"] = "1"
    env.pop("PYTHONWARNINGS", None)
    env.update(extra)
    return env


def orch(
    cwd: Path,
    *args: str,
    env: dict[str, str] | None = None,
    extra_env: dict[str, str] | None = None,
    input: str | None = None,
    expect: int | None = None,
    timeout: float = TIMEOUT,
    **options: Any,
) -> subprocess.CompletedProcess[str]:
    """Run `orch ARGS` in `cwd` to completion and return its exit code and output.

    Its environment is `env` (by default `child_env(cwd / ".orch")`) with `extra_env` on
    top; `input` is written to its stdin; with `expect`, its exit code is asserted.
    `options` go to `subprocess.run`.
    """
    proc = subprocess.run(
        [*ORCH, *args],
        cwd=cwd,
        env=_environment(cwd, env, extra_env),
        input=input,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
        **options,
    )
    if expect is not None:
        assert proc.returncode == expect, describe(proc)
    return proc


def start(
    cwd: Path,
    *args: str,
    env: dict[str, str] | None = None,
    extra_env: dict[str, str] | None = None,
    **options: Any,
) -> subprocess.Popen[Any]:
    """Start `orch ARGS` in `cwd` without waiting (a `subprocess.Popen`); stdout and stderr
    are text pipes unless `options` say otherwise. `env` and `extra_env` as for `orch`."""
    settings: dict[str, Any] = {
        "cwd": cwd,
        "env": _environment(cwd, env, extra_env),
        "stdout": subprocess.PIPE,
        "stderr": subprocess.PIPE,
        "text": True,
        **options,
    }
    return subprocess.Popen([*ORCH, *args], **settings)


def _environment(
    cwd: Path, env: dict[str, str] | None, extra_env: dict[str, str] | None
) -> dict[str, str]:
    return {**(child_env(cwd / ".orch") if env is None else env), **(extra_env or {})}


def describe(proc: subprocess.CompletedProcess[str]) -> str:
    """A finished command, its exit code and output, for an assertion message."""
    args = proc.args if isinstance(proc.args, list) else [str(proc.args)]
    return (
        f"$ {shlex.join(str(a) for a in args[2:])}\nexit {proc.returncode}\n"
        f"--- stdout\n{proc.stdout}\n--- stderr\n{proc.stderr}"
    )


def assert_usage_error(proc: subprocess.CompletedProcess[str], code: int, *needles: str) -> str:
    """A bad-input failure: exit `code`, exactly one non-empty stderr line, no traceback."""
    assert proc.returncode == code, describe(proc)
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, describe(proc)
    assert "Traceback" not in proc.stderr, describe(proc)
    for needle in needles:
        assert needle in lines[0], describe(proc)
    return lines[0]


def finish(proc: subprocess.Popen[str], timeout: float = 30.0) -> tuple[str, str]:
    """Wait for a started command; kill it (and fail) if it does not end in time."""
    try:
        return proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        out, err = proc.communicate()
        raise AssertionError(
            f"command did not finish in {timeout} s\n--- stdout\n{out}\n--- stderr\n{err}"
        ) from None


def pid_alive(pid: int) -> bool:
    """Whether process `pid` exists (a zombie counts: it was not waited for yet)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
