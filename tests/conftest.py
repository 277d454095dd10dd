"""Fixtures shared by every test.

Every test gets its own `.orch/` through `ORCH_HOME`, so nothing a test records can land in
the developer's project or leak into another test.
"""

from __future__ import annotations

from pathlib import Path

import pytest


@pytest.fixture
def orch_home(tmp_path: Path) -> Path:
    """The `.orch/` folder of this test (created on first write)."""
    return tmp_path / ".orch"


@pytest.fixture(autouse=True)
def _isolated_orch_home(monkeypatch: pytest.MonkeyPatch, orch_home: Path) -> None:
    monkeypatch.setenv("ORCH_HOME", str(orch_home))
