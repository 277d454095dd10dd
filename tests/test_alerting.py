"""Alerts for every run: the store's hook alerts from the process that ended the run, each
alert is claimed in the store first, and so goes out once however many processes see the end.

A real webhook receiver on 127.0.0.1 (`hook`), real flows, real processes racing.
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from orchlite import flow
from orchlite.alert_rules import AlertConfig, load_alerts
from orchlite.alerting import project_alerts
from orchlite.notify import alert_run, drain
from orchlite.states import StateName
from orchlite.store import Store
from tests.helpers import wait_for
from tests.helpers.webhook import Hook

pytestmark = pytest.mark.usefixtures("no_proxy")


@pytest.fixture
def alerted(hook: Hook, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Hook:
    """orch.toml (beside this test's `.orch/`) alerts `hook` on FAILED and SKIPPED runs."""
    monkeypatch.setenv("TEST_ALERT_HOOK", hook.url)
    (tmp_path / "orch.toml").write_text(
        '[[alert]]\nname = "ops"\non = ["FAILED", "SKIPPED"]\nwebhook_env = "TEST_ALERT_HOOK"\n'
    )
    return hook


def _states(hook: Hook) -> list[tuple[str, str]]:
    assert drain(10)
    return sorted((r["body"]["flow"], r["body"]["state"]) for r in hook.requests)


def test_a_flow_failing_in_this_process_alerts_once_from_it(
    alerted: Hook, orch_home: Path, tmp_path: Path
) -> None:
    @flow(name="etl")
    def etl() -> None:
        raise ValueError("boom")

    with pytest.raises(ValueError):
        etl()
    assert _states(alerted) == [("etl", "FAILED")]
    store = Store(orch_home)
    try:
        (run,) = store.list_flow_runs(limit=10)
        ((_, state, pid),) = store.alert_claims(run.id)
        assert state == "FAILED" and pid == os.getpid()
        # The daemon's call for the same run (it saw the run end too) finds it claimed.
        assert alert_run(store, run.id, load_alerts(tmp_path)) == 0
    finally:
        store.close()
    assert _states(alerted) == [("etl", "FAILED")]


def test_a_completed_run_costs_no_claim_and_sends_nothing(alerted: Hook, orch_home: Path) -> None:
    @flow(name="fine")
    def fine() -> int:
        return 1

    assert fine() == 1
    assert _states(alerted) == []
    store = Store(orch_home)
    try:
        (run,) = store.list_flow_runs(limit=10)
        assert store.alert_claims(run.id) == []
    finally:
        store.close()


def test_each_flow_run_alerts_as_its_own_run_subflows_included(alerted: Hook) -> None:
    @flow(name="child")
    def child() -> None:
        raise ValueError("child failed")

    @flow(name="tolerant")
    def tolerant() -> str:
        child(return_state=True)
        return "carried on"

    @flow(name="strict")
    def strict() -> None:
        child()

    assert tolerant() == "carried on"
    assert _states(alerted) == [("child", "FAILED")]
    with pytest.raises(ValueError):
        strict()
    assert _states(alerted) == [("child", "FAILED"), ("child", "FAILED"), ("strict", "FAILED")]


def test_a_state_set_inside_a_larger_transaction_alerts_after_its_commit(
    alerted: Hook, orch_home: Path
) -> None:
    """The daemon records a skipped slot SKIPPED in the transaction that claims the slot."""
    store = Store(orch_home)
    try:
        claim = {"key": "k", "flow_name": "etl", "name": "etl", "target": "f.py:etl"}
        with pytest.raises(RuntimeError), store.transaction():
            store.claim_slot(run_id="r1", slot=1.0, parameters="{}", skip_reason="busy", **claim)
            raise RuntimeError("rolled back: the slot was never skipped")
        assert _states(alerted) == []
        assert store.claim_slot(run_id="r2", slot=2.0, parameters="{}", skip_reason="busy", **claim)
        assert _states(alerted) == [("etl", "SKIPPED")]
        assert store.get_flow_run("r2").state == "SKIPPED"
    finally:
        store.close()


def test_after_commit_waits_for_the_outermost_commit_and_is_dropped_on_rollback(
    orch_home: Path,
) -> None:
    store = Store(orch_home)
    calls: list[str] = []
    try:
        store.after_commit(lambda: calls.append("now"))
        assert calls == ["now"]
        with store.transaction(), store.transaction():
            store.after_commit(lambda: calls.append("later"))
            assert calls == ["now"]
        assert calls == ["now", "later"]
        with pytest.raises(KeyError), store.transaction():
            store.after_commit(lambda: calls.append("never"))
            raise KeyError("rollback")
        with store.transaction():
            store.after_commit(lambda: calls.append("kept"))
            with pytest.raises(KeyError), store.transaction():
                store.after_commit(lambda: calls.append("undone with its savepoint"))
                raise KeyError("savepoint rollback")
        assert calls == ["now", "later", "kept"]
        with store.transaction():
            pass
        assert calls == ["now", "later", "kept"]
    finally:
        store.close()


def test_a_claim_is_per_run_rule_and_state(orch_home: Path) -> None:
    store = Store(orch_home)
    try:
        store.create_flow_run(run_id="r", flow_name="etl", name="etl", parameters="{}")
        assert store.claim_alert("r", "rule-a", "LATE")
        assert not store.claim_alert("r", "rule-a", "LATE")
        assert store.claim_alert("r", "rule-a", "FAILED")
        assert store.claim_alert("r", "rule-b", "FAILED")
        assert [(rule, state) for rule, state, _ in store.alert_claims("r")] == [
            ("rule-a", "LATE"),
            ("rule-a", "FAILED"),
            ("rule-b", "FAILED"),
        ]
        store.set_flow_run_state("r", StateName.RUNNING)
        store.set_flow_run_state("r", StateName.FAILED, "x")
        assert store.delete_runs_before(float("inf")) == 1
        assert store.alert_claims("r") == []
    finally:
        store.close()


_RACER = """
import sys, time
from pathlib import Path
from orchlite.alert_rules import load_alerts
from orchlite.notify import alert_run, drain
from orchlite.store import Store

root, run_id = Path(sys.argv[1]), sys.argv[2]
config = load_alerts(root)
store = Store(root / ".orch")
(root / f"ready-{sys.argv[3]}").touch()
while not (root / "go").exists():
    time.sleep(0.001)
print(alert_run(store, run_id, config))
drain(10)
"""


def test_processes_racing_over_one_run_send_its_alert_once(
    alerted: Hook, orch_home: Path, tmp_path: Path
) -> None:
    store = Store(orch_home)
    try:
        store.create_flow_run(run_id="r" * 32, flow_name="etl", name="etl", parameters="{}")
        store.set_flow_run_state("r" * 32, StateName.RUNNING)
        with store.transaction():  # the end recorded without the hook, as by a process
            store.conn.execute("UPDATE flow_runs SET state = 'FAILED' WHERE id = ?", ("r" * 32,))
    finally:
        store.close()
    racers = [
        subprocess.Popen(
            [sys.executable, "-c", _RACER, str(tmp_path), "r" * 32, str(n)],
            stdout=subprocess.PIPE,
            text=True,
        )
        for n in range(4)
    ]
    try:
        wait_for(
            lambda: (
                _all_alive(racers) and all((tmp_path / f"ready-{n}").exists() for n in range(4))
            ),
            timeout=30,
            what="the racers to get ready",
        )
        (tmp_path / "go").touch()
        started = [int(racer.communicate(timeout=30)[0]) for racer in racers]
    finally:
        for racer in racers:
            racer.kill()
    assert sorted(started) == [0, 0, 0, 1]
    assert [(r["body"]["run_id"], r["body"]["state"]) for r in alerted.requests] == [
        ("r" * 32, "FAILED")
    ]


def _all_alive(racers: list[subprocess.Popen[str]]) -> bool:
    assert all(r.poll() is None for r in racers), "a racer died"
    return True


def test_a_broken_entry_is_reported_once_per_version_of_orch_toml(tmp_path: Path) -> None:
    (tmp_path / "orch.toml").write_text("[[alert]]\n[alert.email]\nhost = 'h'\nport = 'x'\n")
    lines: list[str] = []
    first = project_alerts(tmp_path, lines.append)
    assert first.rules == [] and len(lines) == 1 and "email.port" in lines[0]
    assert project_alerts(tmp_path, lines.append) is first and len(lines) == 1
    (tmp_path / "orch.toml").write_text(
        textwrap.dedent("""
        [[alert]]
        command = "true"
    """)
    )
    assert len(project_alerts(tmp_path, lines.append).rules) == 1 and len(lines) == 1
    assert project_alerts(tmp_path / "nowhere") == AlertConfig()
