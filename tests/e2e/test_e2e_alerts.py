"""Alerts for every run, end to end: `orch run` from a shell, `--subprocess`, `orch retry`, a
run killed and reaped later, and the daemon racing a run's own process, against a webhook
receiver and an SMTP server on 127.0.0.1. Each alert goes out once."""

from __future__ import annotations

import os
import signal
from collections import Counter
from collections.abc import Callable

import pytest

from tests.helpers import Project, assert_usage_error, finish, pid_alive, wait_for
from tests.helpers.smtp import Mailbox
from tests.helpers.webhook import TOKEN, Hook

pytestmark = pytest.mark.usefixtures("no_proxy")

FLOWS = """
import os, time
from pathlib import Path
from orchlite import flow

@flow
def fails():
    raise ValueError("boom in fails")

@flow
def fine():
    return 1

@flow
def hangs():
    Path("task.pid").write_text(str(os.getpid()))
    time.sleep(600)
"""


@pytest.fixture
def alerted(
    project: Project,
    hook: Hook,
    smtp_server: Callable[..., Mailbox],
    monkeypatch: pytest.MonkeyPatch,
) -> tuple[Project, Hook, Mailbox]:
    """A project whose failed and crashed runs alert by webhook and by e-mail."""
    mailbox = smtp_server()
    monkeypatch.setenv("TEST_ALERT_HOOK", hook.url)  # the `orch` children inherit it
    project.write_flow("flows.py", FLOWS)
    project.write(
        "orch.toml",
        f"""
        [[alert]]
        name = "ops"
        webhook_env = "TEST_ALERT_HOOK"
        [alert.email]
        host = "127.0.0.1"
        port = {mailbox.port}
        from = "orch@example.com"
        to = "ops@example.com"
        """,
    )
    return project, hook, mailbox


def _alerts(hook: Hook, mailbox: Mailbox) -> tuple[list[tuple[str, str]], list[str]]:
    """(run id, state) of each webhook request; the subject of each e-mail."""
    posted = [(r["body"]["run_id"], r["body"]["state"]) for r in hook.requests]
    return posted, [str(message["Subject"]) for _, _, message in mailbox.messages]


@pytest.mark.slow
def test_a_failing_run_from_a_shell_alerts_once_by_webhook_and_email(
    alerted: tuple[Project, Hook, Mailbox],
) -> None:
    project, hook, mailbox = alerted
    done = project.orch("run", "flows.py:fails", expect=1)
    # Sent before `orch run` exited: nothing to wait for.
    (run,) = project.runs()
    posted, subjects = _alerts(hook, mailbox)
    assert posted == [(run["id"], "FAILED")]
    assert subjects == [f"orch: flow fails run {run['id'][:12]} FAILED"]
    assert f"via 127.0.0.1:{mailbox.port}: sent" in done.stderr
    assert TOKEN not in done.stderr

    # In a child process (it alerts, then its parent finds the alert claimed), and a retry.
    project.orch("run", "--subprocess", "flows.py:fails", expect=1)
    project.orch("retry", "last", expect=1)
    runs = project.runs()
    assert len(runs) == 3
    posted, subjects = _alerts(hook, mailbox)
    assert sorted(posted) == sorted((r["id"], "FAILED") for r in runs)
    assert len(subjects) == 3

    # `orch alert test` goes through the e-mail too.
    assert project.orch("alert", "test").stdout.strip() == "alerts: 1 sent, 0 failed"
    assert _alerts(hook, mailbox)[1][-1] == "orch: flow orch-alert-test run test-0000000 FAILED"


def test_a_successful_run_sends_nothing(alerted: tuple[Project, Hook, Mailbox]) -> None:
    project, hook, mailbox = alerted
    done = project.orch("run", "flows.py:fine")
    assert "alert" not in done.stderr
    assert _alerts(hook, mailbox) == ([], [])


@pytest.mark.slow
def test_a_killed_run_is_reaped_crashed_later_and_alerts_once(
    alerted: tuple[Project, Hook, Mailbox],
) -> None:
    project, hook, mailbox = alerted
    proc = project.popen("run", "flows.py:hangs")
    pid = project.read_pid()
    assert pid == proc.pid  # `orch run` runs the flow in its own process
    os.kill(pid, signal.SIGKILL)
    finish(proc)
    assert _alerts(hook, mailbox) == ([], [])

    listed = project.orch("runs")  # any command that opens the store reaps dead runs
    (run,) = project.runs()
    assert run["state"] == "CRASHED"
    assert _alerts(hook, mailbox) == (
        [(run["id"], "CRASHED")],
        [f"orch: flow hangs run {run['id'][:12]} CRASHED"],
    )
    assert "sent" in listed.stderr
    project.orch("runs")
    assert len(hook.requests) == 1 and len(mailbox.messages) == 1


@pytest.mark.slow
def test_the_daemon_and_each_runs_own_process_send_its_alert_once(
    alerted: tuple[Project, Hook, Mailbox],
) -> None:
    project, hook, mailbox = alerted
    project.write_flow(
        "scheduled.py",
        """
        from orchlite import flow, interval

        @flow(schedules=[interval(seconds=1)])
        def nightly():
            raise ValueError("boom in nightly")
        """,
    )
    daemon = project.popen("daemon", "--tick", "0.2")
    try:
        wait_for(lambda: len(hook.requests) >= 3, timeout=40, what="three alerts")
    finally:
        daemon.send_signal(signal.SIGTERM)
        _, log = finish(daemon)
    assert daemon.returncode == 0, log
    posted, subjects = _alerts(hook, mailbox)
    counts = Counter(run_id for run_id, _ in posted)
    assert all(count == 1 for count in counts.values()), counts
    assert len(subjects) == len(posted)
    store = project.store()
    try:
        for run_id in counts:
            # Both the run's child and the daemon tried; the child claimed it first.
            ((_, state, pid),) = store.alert_claims(run_id)
            assert state == "FAILED" and pid != daemon.pid and not pid_alive(pid)
    finally:
        store.close()


@pytest.mark.slow
def test_a_bad_email_table_is_one_line_naming_the_field(project: Project) -> None:
    project.write_flow("flows.py", FLOWS)
    project.write(
        "orch.toml",
        """
        [[alert]]
        name = "mail"
        [alert.email]
        host = "127.0.0.1"
        port = "twenty-five"
        from = "orch@example.com"
        to = "ops@example.com"
        """,
    )
    line = assert_usage_error(project.orch("alert", "test", expect=None), 1, "email.port")
    assert line == (
        "error: orch.toml alert #1 ('mail'): email.port must be a whole number from 1 to 65535"
    )
    failed = project.orch("run", "flows.py:fails", expect=1)
    assert failed.stderr.count("email.port") == 1
