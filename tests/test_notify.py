"""Failure alerts: a real HTTP server on 127.0.0.1 started by each test, real commands.

Every webhook URL here carries a made-up token in its path so the tests can check that it
never lands in the store or the logs.
"""

from __future__ import annotations

import base64
import socket
import textwrap
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from orchlite import flow, redaction
from orchlite.alert_rules import AlertConfig, AlertRule, load_alerts, parse_rule
from orchlite.notify import alert_run, drain, payload, send, send_test
from orchlite.store import FlowRun, Store
from tests.helpers import child_env, orch, start_daemon, stop_daemon, wait_for
from tests.helpers.store_rows import flow_run_record
from tests.helpers.webhook import TOKEN, Hook

pytestmark = pytest.mark.usefixtures("no_proxy")


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _run(**changes: Any) -> FlowRun:
    return flow_run_record(**{"trigger": "schedule", **changes})


def _failed_run(orch_home: Path) -> tuple[Store, FlowRun]:
    @flow(name="etl")
    def etl() -> None:
        raise ValueError("boom")

    with pytest.raises(ValueError):
        etl()
    store = Store(orch_home)
    (run,) = store.list_flow_runs(limit=10)
    return store, run


def _stored_bytes(home: Path) -> bytes:
    return b"".join(p.read_bytes() for p in home.rglob("*") if p.is_file())


def test_a_failed_run_posts_slack_text_and_structured_fields(
    hook: Hook, orch_home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TEST_ALERT_HOOK", hook.url)
    store, run = _failed_run(orch_home)
    assert run.state == "FAILED"
    lines: list[str] = []
    config = AlertConfig([parse_rule({"webhook_env": "TEST_ALERT_HOOK"}, "alert #1")])
    started = time.monotonic()
    assert alert_run(store, run.id, config, lines.append) == 1
    assert drain(5)
    assert time.monotonic() - started < 5

    (request,) = hook.requests
    assert request["path"] == f"/hooks/{TOKEN}"
    assert request["type"] == "application/json"
    body = request["body"]
    assert {"text", "flow", "run_id", "state", "message", "show", "started", "ended"} <= set(body)
    assert body["flow"] == "etl" and body["run_id"] == run.id and body["state"] == "FAILED"
    assert "boom" in body["message"]
    assert body["show"] == f"orch show {run.id}"
    assert body["started"].startswith("20") and body["ended"].startswith("20")
    assert "'etl'" in body["text"] and "FAILED" in body["text"] and "boom" in body["text"]
    assert f"orch show {run.id}" in body["text"]
    assert len(lines) == 1 and lines[0].endswith("sent"), lines

    store.close()
    assert TOKEN.encode() not in _stored_bytes(orch_home)
    assert not any(TOKEN in line for line in lines)


def test_only_the_chosen_states_and_flows_alert(
    hook: Hook, orch_home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    default = parse_rule({"command": "true"}, "alert #1")
    assert default.on == {"FAILED", "CRASHED", "TIMED_OUT"} and default.flows is None
    for state in ("FAILED", "CRASHED", "TIMED_OUT"):
        assert default.matches(_run(state=state))
    for state in ("COMPLETED", "CANCELLED", "LATE", "SKIPPED"):
        assert not default.matches(_run(state=state))

    etl_only = parse_rule({"command": "true", "on": ["failed"], "flows": ["etl"]}, "#2")
    assert etl_only.matches(_run())
    assert not etl_only.matches(_run(state="CRASHED"))
    assert not etl_only.matches(_run(flow_name="report", target="flows.py:report"))
    by_target = parse_rule({"command": "true", "flows": ["flows.py:etl"]}, "#3")
    assert by_target.matches(_run()) and not by_target.matches(_run(target="other.py:etl"))

    late = parse_rule({"command": "true", "on": ["LATE"]}, "#4")
    assert late.matches(_run(state="LATE"))

    # Through the store: a COMPLETED run sends nothing.
    @flow(name="fine")
    def fine() -> int:
        return 1

    fine()
    store = Store(orch_home)
    (run,) = store.list_flow_runs(limit=10)
    assert run.state == "COMPLETED"
    monkeypatch.setenv("TEST_ALERT_HOOK", hook.url)
    try:
        rule = parse_rule({"webhook_env": "TEST_ALERT_HOOK"}, "#5")
        assert alert_run(store, run.id, AlertConfig([rule]), print) == 0
        assert drain(2) and hook.requests == []
    finally:
        store.close()


def test_the_command_gets_the_run_in_environment_variables(tmp_path: Path) -> None:
    out = tmp_path / "alert.txt"
    script = (
        'printf "%s\\n" "$ORCH_RUN_ID" "$ORCH_FLOW" "$ORCH_STATE" "$ORCH_MESSAGE" '
        f'"$ORCH_SHOW" > "{out}"'
    )
    rule = parse_rule({"command": script}, "alert #1")
    lines: list[str] = []
    assert send(rule, payload(_run()), lines.append) is True
    assert out.read_text().splitlines() == [
        "a" * 32,
        "etl",
        "FAILED",
        "ValueError: boom",
        f"orch show {'a' * 32}",
    ]
    assert lines == [f"alert alert #1: FAILED run {'a' * 12}: command: done"]

    failing = parse_rule({"command": "echo nope >&2; exit 3"}, "alert #2")
    lines.clear()
    assert send(failing, payload(_run()), lines.append) is False
    assert len(lines) == 1 and "exited with status 3: nope" in lines[0]


def test_a_down_server_a_500_and_a_timeout_are_retried_then_logged(
    hook: Hook, monkeypatch: pytest.MonkeyPatch
) -> None:
    down = f"http://127.0.0.1:{_closed_port()}/hooks/{TOKEN}"
    monkeypatch.setenv("DOWN_HOOK", down)
    monkeypatch.setenv("BROKEN_HOOK", hook.url)
    rule = AlertRule("alert #1", webhook_env="DOWN_HOOK", retries=3, backoff=0.05)
    lines: list[str] = []
    assert send(rule, payload(_run()), lines.append) is False
    assert len(lines) == 1 and "failed after 3 attempt(s)" in lines[0], lines

    hook.status = 500
    lines.clear()
    rule = replace(rule, webhook_env="BROKEN_HOOK")
    assert send(rule, payload(_run()), lines.append) is False
    assert len(hook.requests) == 3
    assert len(lines) == 1 and lines[0].endswith("failed after 3 attempt(s): HTTP 500")

    # A slow webhook: each attempt is cut at the timeout, and alert_run returns at once.
    hook.status, hook.delay = 200, 5.0
    lines.clear()
    slow = replace(rule, timeout=0.3, retries=2)
    started = time.monotonic()
    assert send(slow, payload(_run()), lines.append) is False
    assert time.monotonic() - started < 5  # under one attempt's full delay
    assert len(lines) == 1 and "failed after 2 attempt(s)" in lines[0], lines

    monkeypatch.delenv("MISSING_HOOK", raising=False)
    lines.clear()
    missing = replace(rule, webhook_env="MISSING_HOOK")
    assert send(missing, payload(_run()), lines.append) is False
    assert lines == [
        f"alert alert #1: FAILED run {'a' * 12}: webhook $MISSING_HOOK: "
        "the environment variable MISSING_HOOK is not set"
    ]
    assert not any(TOKEN in line or "127.0.0.1" in line for line in lines)


def test_a_webhook_url_with_credentials_is_used_but_never_printed(
    hook: Hook, monkeypatch: pytest.MonkeyPatch
) -> None:
    password = "pa55-w0rd-x"
    monkeypatch.setenv("CRED_HOOK", hook.url.replace("//", f"//alert-user:{password}@"))
    rule = AlertRule("alert #1", webhook_env="CRED_HOOK", retries=1)
    lines: list[str] = []
    assert send(rule, payload(_run()), lines.append) is True
    credentials = base64.b64encode(f"alert-user:{password}".encode()).decode()
    assert hook.requests[-1]["auth"] == f"Basic {credentials}"
    assert hook.requests[-1]["path"] == f"/hooks/{TOKEN}"
    assert lines == [
        f"alert alert #1: FAILED run {'a' * 12}: webhook $CRED_HOOK to 127.0.0.1: sent"
    ]

    # Failures: refused, a bad port, a host that does not resolve. Each line names the
    # variable and the host, and nothing else of the URL.
    for url in (
        f"http://alert-user:{password}@127.0.0.1:{_closed_port()}/hooks/{TOKEN}",
        f"http://alert-user:{password}@127.0.0.1/hooks/{TOKEN}?key={TOKEN}",
        f"https://alert-user:{password}@no-such-host.invalid/hooks/{TOKEN}",
    ):
        monkeypatch.setenv("CRED_HOOK", url)
        lines.clear()
        send(rule, payload(_run()), lines.append)
        assert len(lines) == 1 and "webhook $CRED_HOOK to " in lines[0], lines
        for piece in (password, "alert-user", TOKEN, "/hooks"):
            assert piece not in lines[0], lines[0]
    monkeypatch.setenv("CRED_HOOK", f"http://alert-user:{password}@127.0.0.1:port/hook")
    lines.clear()
    assert send(rule, payload(_run()), lines.append) is False
    assert lines == [
        f"alert alert #1: FAILED run {'a' * 12}: webhook $CRED_HOOK: "
        "the URL in CRED_HOOK must be an http:// or https:// URL"
    ]


def test_an_alert_line_never_quotes_a_secret(hook: Hook, monkeypatch: pytest.MonkeyPatch) -> None:
    redaction.register("CMD_TOKEN", "cmd-token-5521")
    rule = parse_rule({"command": "echo refused cmd-token-5521 >&2; exit 3"}, "alert #1")
    lines: list[str] = []
    assert send(rule, payload(_run()), lines.append) is False
    assert lines[0].endswith("exited with status 3: refused ***"), lines
    # The webhook's URL is a secret from the moment it is read: this process never prints it.
    monkeypatch.setenv("URL_HOOK", hook.url)
    assert send(AlertRule("alert #2", webhook_env="URL_HOOK"), payload(_run()), lines.append)
    assert redaction.redact(f"posted to {hook.url}") == "posted to ***"


def test_alerts_never_raise_into_the_caller(orch_home: Path) -> None:
    lines: list[str] = []
    rule = parse_rule({"command": "true"}, "alert #1")
    store = Store(orch_home)
    try:  # an unknown run: one line, no exception
        assert alert_run(store, "no-such-run", AlertConfig([rule]), lines.append) == 0
    finally:
        store.close()
    assert len(lines) == 1 and "no-such-run"[:12] in lines[0]


def test_orch_toml_entries_load_and_a_bad_one_is_named(tmp_path: Path) -> None:
    (tmp_path / "orch.toml").write_text(
        textwrap.dedent(
            f"""
            [[alert]]
            name = "ops"
            on = ["FAILED", "CRASHED"]
            flows = ["etl"]
            webhook_env = "SLACK_WEBHOOK_URL"
            command = "true"

            [[alert]]
            webhook_env = "http://127.0.0.1:9/hooks/{TOKEN}"

            [[alert]]
            name = "typo"
            on = ["FAILD"]
            command = "true"

            [[alert]]
            url = "http://127.0.0.1:9/x"

            [[alert]]
            on = ["TIMED_OUT"]

            [[alert]]
            command = "true"
            """
        )
    )
    lines: list[str] = []
    config = load_alerts(tmp_path, lines.append)
    assert [r.where for r in config.rules] == ["orch.toml alert #1 ('ops')", "orch.toml alert #6"]
    ops = config.rules[0]
    assert ops.on == {"FAILED", "CRASHED"} and ops.flows == {"etl"}
    assert ops.webhook_env == "SLACK_WEBHOOK_URL" and ops.command == "true"
    wheres = [p.split(": ")[0] for p in config.problems]
    assert wheres == [
        "orch.toml alert #2",
        "orch.toml alert #3 ('typo')",
        "orch.toml alert #4",
        "orch.toml alert #5",
    ]
    assert "NAME of an environment variable" in config.problems[0]
    assert "FAILD" in config.problems[1]
    assert "webhook_env" in config.problems[2]
    assert "give at least one of webhook_env, command and email" in config.problems[3]
    assert lines[0] == "loaded 2 alert rule(s)" and len(lines) == 5
    assert not any(TOKEN in line for line in lines)

    (tmp_path / "orch.toml").write_text("[[alert]\n")
    assert load_alerts(tmp_path).problems[0].startswith("orch.toml: cannot read: ")
    (tmp_path / "orch.toml").unlink()
    assert load_alerts(tmp_path) == AlertConfig()


def test_send_test_goes_through_every_rule(
    hook: Hook, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TEST_ALERT_HOOK", hook.url)
    (tmp_path / "orch.toml").write_text(
        '[[alert]]\nwebhook_env = "TEST_ALERT_HOOK"\n\n[[alert]]\ncommand = "exit 1"\n'
    )
    lines: list[str] = []
    assert send_test(tmp_path, lines.append) == (1, 1)
    assert hook.requests[0]["body"]["flow"] == "orch-alert-test"


# -- end to end: the real daemon -------------------------------------------------------------


def test_the_daemon_posts_an_alert_for_a_failed_scheduled_run(hook: Hook, tmp_path: Path) -> None:
    (tmp_path / "flows.py").write_text(
        textwrap.dedent(
            """
            from orchlite import flow, interval

            @flow(schedules=[interval(seconds=1)])
            def etl():
                raise ValueError("boom from etl")
            """
        )
    )
    (tmp_path / "orch.toml").write_text(
        '[[alert]]\nname = "ops"\nflows = ["etl"]\nwebhook_env = "TEST_ALERT_HOOK"\n'
    )
    env = child_env(tmp_path / ".orch", TEST_ALERT_HOOK=hook.url)
    log_path = tmp_path / "daemon.log"
    daemon = start_daemon(tmp_path, grace=None, env=env)
    try:
        wait_for(
            lambda: [r for r in hook.requests if r["body"]["state"] == "FAILED"],
            timeout=15,
            what="an alert for a FAILED run",
        )
    finally:
        stop_daemon(daemon)
    body = hook.requests[0]["body"]
    assert body["flow"] == "etl" and "boom from etl" in body["message"]
    assert body["show"] == f"orch show {body['run_id']}"
    store = Store(tmp_path / ".orch")
    try:
        assert store.get_flow_run(body["run_id"]).state == "FAILED"
    finally:
        store.close()
    text = log_path.read_text()
    assert "loaded 1 alert rule(s)" in text
    # The run's own process sent it (the daemon found it claimed): its line is in the run's log.
    logs = orch(tmp_path, "logs", body["run_id"], env=env).stdout
    assert "alert orch.toml alert #1 ('ops'): FAILED run" in logs and ": sent" in logs
    ids = [r["body"]["run_id"] for r in hook.requests]
    assert len(ids) == len(set(ids)), "a run alerted twice"
    assert TOKEN not in text + logs
    assert TOKEN.encode() not in _stored_bytes(tmp_path / ".orch")


def test_orch_alert_test_sends_through_every_entry(hook: Hook, tmp_path: Path) -> None:
    out = tmp_path / "command.txt"
    (tmp_path / "orch.toml").write_text(
        "[[alert]]\n"
        'webhook_env = "TEST_ALERT_HOOK"\n'
        f'command = \'echo "$ORCH_STATE $ORCH_FLOW" > "{out}"\'\n'
    )
    done = orch(tmp_path, "alert", "test", extra_env={"TEST_ALERT_HOOK": hook.url})
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "alerts: 1 sent, 0 failed"
    assert hook.requests[0]["body"]["state"] == "FAILED"
    assert out.read_text().strip() == "FAILED orch-alert-test"
    assert TOKEN not in done.stdout + done.stderr

    hook.status = 500
    closed = f"http://127.0.0.1:{_closed_port()}/hooks/{TOKEN}"
    failed = orch(tmp_path, "alert", "test", extra_env={"TEST_ALERT_HOOK": closed})
    assert failed.returncode == 1
    assert "failed after 3 attempt(s)" in failed.stderr and TOKEN not in failed.stderr
