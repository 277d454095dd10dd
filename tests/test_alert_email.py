"""Alerts by e-mail: the `[alert.email]` table, and real messages to an SMTP server on
127.0.0.1 (aiosmtpd): plain, with a login, and with STARTTLS on a self-signed certificate."""

from __future__ import annotations

import socket
import time
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from orchlite.alert_rules import AlertRule, load_alerts, parse_rule
from orchlite.notify import payload, send
from tests.helpers.smtp import PASSWORD, USER, Mailbox
from tests.helpers.store_rows import flow_run_record

_RUN = flow_run_record(
    id="b" * 32,
    name="etl-7",
    state_message="ValueError: boom\nsecond line",
)


def _rule(server: Mailbox | None, **email: Any) -> AlertRule:
    table = {
        "host": "127.0.0.1",
        "port": server.port if server else 25,
        "from": "orch@example.com",
        "to": "ops@example.com",
    }
    table.update(email)
    rule = parse_rule({"email": table, "timeout_seconds": 5}, "orch.toml alert #1 ('mail')")
    return replace(rule, backoff=0.01)


def test_an_alert_is_mailed_with_its_subject_and_fields(
    smtp_server: Callable[..., Mailbox],
) -> None:
    server = smtp_server()
    rule = _rule(server, to=["ops@example.com", "Dev <dev@example.com>"])
    lines: list[str] = []
    assert send(rule, payload(_RUN), lines.append)

    ((sender, recipients, message),) = server.messages
    assert sender == "orch@example.com"
    assert recipients == ["ops@example.com", "dev@example.com"]
    assert message["Subject"] == f"orch: flow etl run {_RUN.id[:12]} FAILED"
    assert message["To"] == "ops@example.com, Dev <dev@example.com>"
    text = message.get_payload(decode=True).decode()
    assert "'etl'" in text and "FAILED" in text and "ValueError: boom" in text
    assert f"orch show {_RUN.id}" in text and f"run_id: {_RUN.id}" in text
    assert len(lines) == 1 and lines[0].endswith("sent"), lines
    assert (
        f"email to ops@example.com, Dev <dev@example.com> via 127.0.0.1:{server.port}" in lines[0]
    )


def test_the_subject_template_is_filled_in_on_one_line(
    smtp_server: Callable[..., Mailbox],
) -> None:
    server = smtp_server()
    rule = _rule(server, subject="[{state}] {flow}: {message}")
    assert send(rule, payload(_RUN), print)
    ((_, _, message),) = server.messages
    assert message["Subject"] == "[FAILED] etl: ValueError: boom second line"


def test_a_login_reads_the_password_from_the_environment_and_never_prints_it(
    smtp_server: Callable[..., Mailbox], monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    server = smtp_server(login=True)
    monkeypatch.setenv("TEST_SMTP_PASSWORD", PASSWORD)
    rule = _rule(server, username=USER, password_env="TEST_SMTP_PASSWORD")
    lines: list[str] = []
    assert send(rule, payload(_RUN), lines.append)
    assert server.logins == [(USER, PASSWORD)]
    assert len(server.messages) == 1

    monkeypatch.setenv("TEST_SMTP_PASSWORD", PASSWORD + "-wrong")
    assert not send(rule, payload(_RUN), lines.append)
    assert len(server.messages) == 1
    assert "failed after 1 attempt(s): SMTP 535" in lines[-1]  # refused at once: no retry
    assert not any(PASSWORD in line for line in lines)

    monkeypatch.delenv("TEST_SMTP_PASSWORD")
    assert not send(rule, payload(_RUN), lines.append)
    assert lines[-1].endswith(
        "the password variable TEST_SMTP_PASSWORD is not set (nor a secret of that name)"
    )


def test_starttls_with_a_trusted_certificate_and_a_login(
    smtp_server: Callable[..., Mailbox], monkeypatch: pytest.MonkeyPatch
) -> None:
    server = smtp_server(login=True, tls=True)
    assert server.ca_file is not None
    monkeypatch.setenv("TEST_SMTP_PASSWORD", PASSWORD)
    login = {"username": USER, "password_env": "TEST_SMTP_PASSWORD"}
    rule = _rule(server, starttls=True, ca_file=str(server.ca_file), **login)
    lines: list[str] = []
    assert send(rule, payload(_RUN), lines.append), lines
    assert server.logins == [(USER, PASSWORD)] and len(server.messages) == 1

    # The same server, its certificate not trusted: refused at once, nothing sent.
    untrusted = _rule(server, starttls=True, **login)
    assert not send(untrusted, payload(_RUN), lines.append)
    assert "failed after 1 attempt(s)" in lines[-1] and "CERTIFICATE_VERIFY_FAILED" in lines[-1]
    # Without STARTTLS the server refuses to go on.
    plain = _rule(server, **login)
    assert not send(plain, payload(_RUN), lines.append)
    assert "SMTP AUTH extension not supported" in lines[-1]  # offered after STARTTLS only
    assert len(server.messages) == 1
    assert not any(PASSWORD in line for line in lines)


def test_a_server_that_is_down_is_retried_then_logged() -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    rule = replace(_rule(None, port=port), retries=2)
    lines: list[str] = []
    started = time.monotonic()
    assert not send(rule, payload(_RUN), lines.append)
    assert time.monotonic() - started < 5
    assert len(lines) == 1 and "failed after 2 attempt(s): ConnectionRefusedError" in lines[0]


@pytest.mark.parametrize(
    ("email", "needle"),
    [
        ({"port": "25"}, "email.port must be a whole number from 1 to 65535"),
        ({"port": 0}, "email.port must be a whole number"),
        ({"host": ""}, "email.host must be the SMTP server's host name"),
        ({"from": "nobody"}, "email.from: 'nobody' is not an e-mail address"),
        ({"to": []}, "email.to must be an address or a list of addresses"),
        ({"to": ["ops@example.com", 3]}, "email.to must be an e-mail address"),
        ({"to": "a@b.c\nBcc: x@y.z"}, "email.to must be an e-mail address"),
        ({"subject": "{flow.__class__}"}, "email.subject uses unknown field(s) 'flow.__class__'"),
        ({"subject": "{nope}"}, "email.subject uses unknown field(s) 'nope'"),
        ({"subject": "{flow"}, "email.subject is not a valid template"),
        ({"starttls": "yes"}, "email.starttls must be true or false"),
        ({"username": "u"}, "email.username and email.password_env go together"),
        (
            {"username": "u", "password_env": "hunter2 hunter2"},
            "email.password_env must be the NAME of an environment variable or secret",
        ),
        ({"ca_file": "ca.pem"}, "email.ca_file needs starttls = true"),
        ({"tls": True}, "unknown key(s) in email: tls"),
    ],
)
def test_a_bad_email_table_is_one_problem_naming_the_field(
    tmp_path: Path, email: dict[str, Any], needle: str
) -> None:
    table = {"host": "smtp.example.com", "from": "orch@example.com", "to": "ops@example.com"}
    table.update(email)
    body = "\n".join(f"{key} = {_toml(value)}" for key, value in table.items())
    (tmp_path / "orch.toml").write_text(f'[[alert]]\nname = "mail"\n[alert.email]\n{body}\n')
    config = load_alerts(tmp_path)
    assert config.rules == []
    (problem,) = config.problems
    assert problem.startswith("orch.toml alert #1 ('mail'): ") and needle in problem, problem
    assert "\n" not in problem and "hunter2" not in problem


def _toml(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return '"' + value.replace("\\", "\\\\").replace("\n", "\\n") + '"'
    if isinstance(value, list):
        return "[" + ", ".join(_toml(v) for v in value) + "]"
    return str(value)


def test_an_email_entry_loads_from_orch_toml(tmp_path: Path) -> None:
    (tmp_path / "orch.toml").write_text(
        '[[alert]]\non = ["FAILED"]\n[alert.email]\nhost = "smtp.example.com"\nport = 587\n'
        'from = "orch@example.com"\nto = "ops@example.com"\nstarttls = true\n'
        'username = "orch"\npassword_env = "SMTP_PASSWORD"\n'
    )
    (rule,) = load_alerts(tmp_path).rules
    assert rule.email is not None and rule.webhook_env is None and rule.command is None
    assert rule.email.port == 587 and rule.email.to == ("ops@example.com",)
    assert rule.email.starttls and rule.email.password_env == "SMTP_PASSWORD"
