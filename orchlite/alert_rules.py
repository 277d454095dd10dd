"""Alert rules: the `[[alert]]` entries of `orch.toml`, read and checked.

    [[alert]]
    name = "ops"                          # optional, shown in the daemon log
    on = ["FAILED", "CRASHED"]            # default: FAILED, CRASHED, TIMED_OUT
    flows = ["etl"]                       # flow names or targets; default: every flow
    webhook_env = "SLACK_WEBHOOK_URL"     # the NAME of the variable holding the URL
    command = "notify-send \"$ORCH_FLOW $ORCH_STATE\""
    timeout_seconds = 5                   # per webhook or e-mail attempt
    retries = 3                           # webhook or e-mail attempts in all
    email = { host = "smtp.example.com", from = "orch@example.com", to = ["ops@example.com"] }

The URL is never in `orch.toml`: an entry names the variable that holds it, and a URL put
in its place is refused without echoing it. A broken entry is reported naming it; every
other entry still works. Sending is `orchlite.notify`'s.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .alert_email import EmailSettings, parse_email
from .errors import UsageError
from .names import same_flow_name
from .settings import PROJECT_FILE, ProjectFile
from .store import FlowRun

DEFAULT_STATES = frozenset({"FAILED", "CRASHED", "TIMED_OUT"})
ALERTABLE_STATES = frozenset(
    {"FAILED", "CRASHED", "TIMED_OUT", "CANCELLED", "COMPLETED", "CACHED", "LATE", "SKIPPED"}
)
_KEYS = frozenset(
    {"name", "on", "flows", "webhook_env", "command", "email", "timeout_seconds", "retries"}
)
_URL_KEYS = frozenset({"webhook", "webhook_url", "url"})
_ENV_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")

Log = Callable[[str], None]


@dataclass(frozen=True)
class AlertRule:
    """One `[[alert]]` entry of orch.toml."""

    where: str
    """"orch.toml alert #1 ('ops')"."""
    on: frozenset[str] = DEFAULT_STATES
    flows: frozenset[str] | None = None
    """Flow names or targets ("etl", "flows.py:etl"); None means every flow."""
    webhook_env: str | None = None
    command: str | None = None
    email: EmailSettings | None = None
    key: str = ""
    """Names the rule in its delivery claims (`store.deliveries`): the same in every process
    that reads the same entry."""
    timeout: float = 5.0
    retries: int = 3
    backoff: float = 0.5
    """Seconds before the second webhook attempt; doubled before each later one."""

    def matches(self, run: FlowRun) -> bool:
        if run.state not in self.on:
            return False
        if self.flows is None:
            return True
        target = run.target or ""
        names = {run.flow_name, target, target.rpartition(":")[2]}
        return any(same_flow_name(want, name) for want in self.flows for name in names)


@dataclass
class AlertConfig:
    """The alert rules of a project and the problems found reading them."""

    rules: list[AlertRule] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)


def load_alerts(root: Path, log: Log | None = None) -> AlertConfig:
    """Read the `[[alert]]` entries of `root/orch.toml`; never raises.

    With `log`, one line says how many rules loaded and one line names each broken entry.
    """
    config = read_alerts(Path(root))
    if log is not None and (config.rules or config.problems):
        log(f"loaded {len(config.rules)} alert rule(s)")
        for problem in config.problems:
            log(f"error: {problem}")
    return config


def read_alerts(root: Path) -> AlertConfig:
    """The `[[alert]]` entries of `root/orch.toml` and the problems found in them."""
    return alerts_of(ProjectFile.read(root))


def alerts_of(toml: ProjectFile) -> AlertConfig:
    """The `[[alert]]` entries of a parsed orch.toml and the problems found in them."""
    try:
        data = toml.tables()
    except UsageError as exc:
        return AlertConfig(problems=[f"{PROJECT_FILE}: {exc} (no alerts)"])
    if data is None:
        return AlertConfig()
    raw = data.get("alert", [])
    if not isinstance(raw, list):
        return AlertConfig(problems=[f"{PROJECT_FILE}: [[alert]] must be an array of tables"])
    config = AlertConfig()
    for number, item in enumerate(raw, start=1):
        label = item.get("name") if isinstance(item, dict) else None
        where = f"{PROJECT_FILE} alert #{number}" + (f" ({label!r})" if label else "")
        try:
            config.rules.append(parse_rule(item, where))
        except ValueError as exc:
            config.problems.append(f"{where}: {exc}")
    return config


def parse_rule(item: Any, where: str) -> AlertRule:
    """One `[[alert]]` table as an AlertRule; ValueError saying what is wrong."""
    if not isinstance(item, dict):
        raise ValueError("expected a table")
    urls = sorted(set(item) & _URL_KEYS)
    if urls:
        raise ValueError(
            f"{urls[0]} is not supported: put the URL in an environment variable and "
            'name that variable with webhook_env = "SLACK_WEBHOOK_URL"'
        )
    unknown = sorted(set(item) - _KEYS)
    if unknown:
        raise ValueError(f"unknown key(s): {', '.join(unknown)}")
    on = item.get("on", sorted(DEFAULT_STATES))
    if not isinstance(on, list) or not on or not all(isinstance(s, str) for s in on):
        raise ValueError('on must be a non-empty list of states, e.g. on = ["FAILED"]')
    states = frozenset(s.upper() for s in on)
    bad = sorted(states - ALERTABLE_STATES)
    if bad:
        raise ValueError(
            f"unknown state(s) in on: {', '.join(bad)} "
            f"(expected some of {', '.join(sorted(ALERTABLE_STATES))})"
        )
    flows = item.get("flows")
    if flows is not None and (
        not isinstance(flows, list) or not all(isinstance(f, str) and f for f in flows)
    ):
        raise ValueError('flows must be a list of flow names, e.g. flows = ["etl"]')
    webhook_env = item.get("webhook_env")
    if webhook_env is not None and (
        not isinstance(webhook_env, str) or not _ENV_NAME.fullmatch(webhook_env)
    ):
        # Never echo the value: it may be the URL put in the wrong place.
        raise ValueError(
            "webhook_env must be the NAME of an environment variable holding the URL "
            '(e.g. webhook_env = "SLACK_WEBHOOK_URL"), not the URL itself'
        )
    command = item.get("command")
    if command is not None and (not isinstance(command, str) or not command.strip()):
        raise ValueError("command must be a non-empty string")
    email = parse_email(item["email"]) if "email" in item else None
    if webhook_env is None and command is None and email is None:
        raise ValueError("give at least one of webhook_env, command and email")
    timeout = item.get("timeout_seconds", 5.0)
    if isinstance(timeout, bool) or not isinstance(timeout, (int, float)) or timeout <= 0:
        raise ValueError("timeout_seconds must be a positive number")
    retries = item.get("retries", 3)
    if isinstance(retries, bool) or not isinstance(retries, int) or not 1 <= retries <= 10:
        raise ValueError("retries must be a whole number from 1 to 10")
    return AlertRule(
        where=where,
        on=states,
        flows=frozenset(flows) if flows is not None else None,
        webhook_env=webhook_env,
        command=command,
        email=email,
        key=_rule_key(item, where),
        timeout=float(timeout),
        retries=retries,
    )


def _rule_key(item: dict[str, Any], where: str) -> str:
    canonical = json.dumps([where, item], sort_keys=True, default=str)
    return hashlib.sha256(canonical.encode()).hexdigest()[:16]
