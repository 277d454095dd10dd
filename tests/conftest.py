"""Fixtures shared by every test.

Every test gets its own `.orch/` through `ORCH_HOME`, and its own user config directory
(the secrets file) through `XDG_CONFIG_HOME`, so nothing a test records can land in the
developer's project or home, or leak into another test.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.helpers.smtp import Mailbox
from tests.helpers.webhook import Hook


@pytest.fixture
def orch_home(tmp_path: Path) -> Path:
    """The `.orch/` folder of this test (created on first write)."""
    return tmp_path / ".orch"


@pytest.fixture(autouse=True)
def _isolated_orch_home(monkeypatch: pytest.MonkeyPatch, orch_home: Path) -> None:
    monkeypatch.setenv("ORCH_HOME", str(orch_home))


@pytest.fixture(autouse=True)
def _default_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    """Settings read from the environment start at their defaults in every test."""
    for name in ("ORCH_RESULTS_PERSIST_BY_DEFAULT", "ORCH_LOGGING_LEVEL"):
        monkeypatch.delenv(name, raising=False)


@pytest.fixture(autouse=True)
def _isolated_config_dir(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """The user's config directory (where `orch secret set` writes) is the test's own."""
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "config"))


@pytest.fixture
def no_proxy(monkeypatch: pytest.MonkeyPatch) -> None:
    """HTTP requests go straight to 127.0.0.1, never through a proxy named in the environment."""
    for name in ("http_proxy", "https_proxy", "all_proxy"):
        monkeypatch.delenv(name, raising=False)
        monkeypatch.delenv(name.upper(), raising=False)
    monkeypatch.setenv("no_proxy", "*")


@pytest.fixture
def smtp_server(tmp_path: Path) -> Iterator[Callable[..., Mailbox]]:
    """Start SMTP servers on 127.0.0.1 (`smtp_server(login=True, tls=True)`); each is
    stopped after the test."""
    servers: list[Mailbox] = []

    def start(*, login: bool = False, tls: bool = False) -> Mailbox:
        server = Mailbox(login=login, tls_folder=tmp_path if tls else None)
        servers.append(server)
        return server

    try:
        yield start
    finally:
        for server in servers:
            server.close()


@pytest.fixture
def hook(no_proxy: None) -> Iterator[Hook]:
    """A webhook receiver on 127.0.0.1 that records each POST."""
    server = Hook()
    try:
        yield server
    finally:
        server.close()
