"""Paused runs across a daemon restart: suspending them as the daemon stops, and starting
them again once resumed.

A run of the daemon paused by `pause_flow_run` waits in its own process. When the daemon
stops, that process is not cancelled: the daemon asks it to suspend (`ask_to_suspend`), and
it exits leaving the run PAUSED with no process, its completed task runs and their results
recorded. `orch resume` (or the TUI, or `resume_flow_run`) leaves its request on the
suspended run, and the next tick of a daemon of the project, this one restarted or another,
claims the run and starts it again under the same run id: the flow body runs from its
beginning, task runs that completed with a persisted result answer from it, pauses already
answered take their recorded input, and the pause it was suspended at takes the request's
input, as Prefect's `suspend_flow_run` runs a resumed flow again. A suspended run whose pause
timeout passes is FAILED, as a paused run that nobody resumes.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass

from ..states import StateName
from ..store import Store

PAUSE_TIMED_OUT = "Flow run was paused and never resumed."
"""The message of a suspended run failed at its pause timeout (as `FlowPauseTimeout`'s)."""


@dataclass(frozen=True)
class Relaunch:
    """A suspended run claimed to run again: its id, target and parameters, and the key of
    the schedule or trigger that claimed it ("" if none), whose `env` it gets again."""

    run_id: str
    target: str
    params: dict[str, object]
    key: str


def suspend_paused(store: Store, run_ids: list[str], log: Callable[[str], None]) -> list[str]:
    """Ask the processes of those of `run_ids` that wait at a pause to suspend; their ids."""
    suspending = [run_id for run_id in run_ids if store.ask_to_suspend(run_id)]
    for run_id in suspending:
        log(f"suspend paused run {run_id[:12]}: it resumes under the next daemon")
    return suspending


def due_relaunches(
    store: Store, now: float, room: int | None, log: Callable[[str], None]
) -> tuple[list[Relaunch], list[str]]:
    """Claim up to `room` (None: any number) suspended runs with a resume request, to start
    again; fail those past their pause timeout. Returns (the claimed, the failed ids)."""
    claimed: list[Relaunch] = []
    failed: list[str] = []
    for run_id, status, deadline in store.suspended_runs():
        if now >= deadline:
            if store.set_flow_run_state(run_id, StateName.FAILED, PAUSE_TIMED_OUT):
                log(f"finish run {run_id[:12]} FAILED: {PAUSE_TIMED_OUT}")
                failed.append(run_id)
            continue
        if status != "relaunch" or (room is not None and len(claimed) >= room):
            continue
        if store.claim_relaunch(run_id, "resumed: starting again"):
            run = store.get_flow_run(run_id)
            key = store.slot_key(run_id) or ""
            claimed.append(Relaunch(run_id, run.target or "", json.loads(run.parameters), key))
            log(f"resume suspended run {run_id[:12]} of {run.target}")
    return claimed, failed
