"""Fixtures shared by every test.

Every test gets its own `.orch/` through `ORCH_HOME`, and its own user config directory
(the secrets file) through `XDG_CONFIG_HOME`, so nothing a test records can land in the
developer's project or home, or leak into another test.
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


@pytest.fixture(autouse=True)
def _isolated_config_dir(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """The user's config directory (where `orch secret set` writes) is the test's own."""
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "config"))
