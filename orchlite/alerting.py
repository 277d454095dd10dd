"""Alerts for every flow run, whichever process ends it.

`enable()` hooks `notify.alert_run` to the store (`store.on_flow_run_state`): every committed
move of a flow run to a state an `[[alert]]` can name (FAILED, CRASHED, LATE...) alerts from
the process that made it. So `orch run` in a shell or under another scheduler alerts like a
daemon's run does, and so does `orch run --subprocess` (the child, or the parent when the
child died), `orch retry`, `orch cancel`, a run reaped CRASHED by any command, a subflow (each
flow run alerts as its own run) and a flow file run with `python`. Every process that runs
flows enables it (the `orch` command and the engine); the daemon also calls `alert_run` for
each run it sees finish, for a child that died before it could alert. The store's claim
(`store.deliveries`) makes each alert go out once.

Cheap when nothing matches: a state no rule of the project names costs a `stat` of
orch.toml, whose rules are read once per process and again only when the file changes.
"""

from __future__ import annotations

import threading
from pathlib import Path

from .alert_rules import ALERTABLE_STATES, AlertConfig, Log, load_alerts
from .config import project_root
from .notify import alert_run, to_stderr
from .settings import PROJECT_FILE
from .states import StateName
from .store import Store, on_flow_run_state
from .store.runs import FlowRuns

_configs: dict[Path, tuple[tuple[int, int], AlertConfig]] = {}
_configs_lock = threading.Lock()


def enable() -> None:
    """Alert from this process when it moves a flow run to an alert's state (idempotent)."""
    on_flow_run_state(_state_changed)


def _state_changed(store: FlowRuns, run_id: str, state: StateName) -> None:
    if state.value not in ALERTABLE_STATES or not isinstance(store, Store):
        return
    try:
        config = project_alerts(project_root(store.home))
    except Exception:  # an alert never fails the run it is about
        return
    if any(state.value in rule.on for rule in config.rules):
        alert_run(store, run_id, config)


def project_alerts(root: Path, log: Log | None = None) -> AlertConfig:
    """The alert rules of `root/orch.toml`, read again only when the file changed.

    The problems of a broken entry are logged once each time the file is read.
    """
    path = root / PROJECT_FILE
    try:
        info = path.stat()
    except OSError:
        return AlertConfig()
    stamp = (info.st_mtime_ns, info.st_size)
    with _configs_lock:
        cached = _configs.get(path)
        if cached is not None and cached[0] == stamp:
            return cached[1]
        config = load_alerts(root)
        _configs[path] = (stamp, config)
    for problem in config.problems:
        (log or to_stderr)(f"error: {problem}")
    return config
