"""The headless core never loads Textual: checked in fresh interpreters."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path


def _env(home: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("ORCH_")}
    env["ORCH_HOME"] = str(home)
    return env


def _python(code: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    """Run `code` with `python -c` in a fresh interpreter."""
    return subprocess.run(
        [sys.executable, "-c", code],
        cwd=cwd,
        env=_env(cwd / ".orch"),
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_importing_the_core_does_not_import_textual(tmp_path: Path) -> None:
    code = (
        "import orchlite, orchlite.engine, orchlite.cli, orchlite.executor, sys; "
        "assert 'textual' not in sys.modules, 'textual was imported'"
    )
    proc = _python(code, tmp_path)
    assert proc.returncode == 0, proc.stderr


def test_task_runners_load_the_process_pool_and_dask_on_first_use(tmp_path: Path) -> None:
    code = textwrap.dedent(
        """
        import sys

        import orchlite, orchlite.engine, orchlite.task_runners

        lazy = {
            "orchlite.task_runners.process_pool",
            "orchlite.task_runners.dask_cluster",
            "concurrent.futures.process",
            "dask",
            "distributed",
        }
        assert not lazy & set(sys.modules), sorted(lazy & set(sys.modules))

        from orchlite.task_runners import DaskTaskRunner, ProcessPoolTaskRunner

        assert DaskTaskRunner.__module__ == "orchlite.task_runners.dask_cluster"
        assert ProcessPoolTaskRunner.__module__ == "orchlite.task_runners.process_pool"
        assert "dask" not in sys.modules, "dask was imported before a Dask runner started"
        """
    )
    proc = _python(code, tmp_path)
    assert proc.returncode == 0, proc.stderr


def test_orch_run_in_process_does_not_import_textual(tmp_path: Path) -> None:
    (tmp_path / "flows.py").write_text(
        textwrap.dedent(
            """
            import sys
            from pathlib import Path

            from orchlite import flow, task


            @task
            def look() -> bool:
                return "textual" in sys.modules


            @flow
            def check():
                Path("textual.txt").write_text(repr(look() or "textual" in sys.modules))
            """
        )
    )
    proc = subprocess.run(
        [sys.executable, "-m", "orchlite.cli", "run", "flows.py:check"],
        cwd=tmp_path,
        env=_env(tmp_path / ".orch"),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 0, proc.stderr
    assert (tmp_path / "textual.txt").read_text() == "False"
