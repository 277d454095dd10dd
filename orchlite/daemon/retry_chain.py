"""Flow-level retries that survive the run's process and the daemon's restarts.

A flow's `retries` normally run inside its child process (`engine._run_flow_attempts`).
When the child cannot retry (its process died: the run ended CRASHED, killed, segfault,
OOM) or the daemon stops while the child waits out a retry delay (the run is cancelled),
the daemon records the next attempt in the store: a new run, trigger "retry", `retry_of`
the old one, id `retry_run_id(old id)` (so it is created once, even by two daemons or
across restarts), SCHEDULED with a `schedule_slots` row (key "retry:" + the old key) due at
the end of the retry delay. The loop starts it when due, resuming the old run's completed
tasks as `orch retry` does.

The daemon knows the flow's retries without importing user code: the child records the
policy on its run as it starts (`retry_policy`: retries and the resolved delays), and the
new run carries the attempts made so far (`prior_attempts`), so `retries` bounds the whole
chain. At start the daemon also schedules the retries of runs that crashed while it was
down (reaped, or not yet handled).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable

from ..redaction import holds_mask
from ..retries import delay_before_retry
from ..states import StateName
from ..store import FlowRun, Store

RETRY_KEY = "retry:"
"""The prefix of the schedule key of a retry run: `RETRY_KEY` + the old run's key."""
DAEMON_TRIGGERS = ("schedule", "backfill", "file", "flow", "retry")
"""The triggers of the runs a daemon starts, whose retries it owns."""
RETRY_LOOKBACK_SECONDS = 7 * 86400.0
"""At start, crashed runs that ended longer ago than this are not retried any more."""


def retry_run_id(run_id: str) -> str:
    """The id of the run that retries `run_id`: the same for the same run, 32 hex digits."""
    return hashlib.sha256(f"retry|{run_id}".encode()).hexdigest()[:32]


def entry_key(key: str) -> str:
    """The key of the schedule or trigger entry behind a run claimed under `key` (a retry's
    key is its first run's, prefixed)."""
    return key.removeprefix(RETRY_KEY)


def is_retry_key(key: str) -> bool:
    """Whether a waiting slot's key is that of a retry (due at its slot, not before)."""
    return key.startswith(RETRY_KEY)


def retrying_until(store: Store, run_id: str, now: float) -> float:
    """When the in-process retry of a RETRYING run is due (recorded with that state), or
    `now` if it is not retrying."""
    due = store.retry_due(run_id)
    return now if due is None else due


class RetryChain:
    """Schedules the next attempts of the daemon's runs in the store (see the docstring)."""

    def __init__(self, store: Store, log: Callable[[str], None]) -> None:
        self.store = store
        self.log = log
        self._due_after_stop: dict[str, float] = {}  # cancelled in a retry delay → its due time

    def after_finish(self, run: FlowRun, now: float) -> str | None:
        """A run of the daemon ended: schedule its next attempt if its process died, or if
        the daemon cancelled it during a retry delay (`interrupt`)."""
        due = self._due_after_stop.pop(run.id, None)
        if run.state == StateName.CRASHED.value:
            return self.schedule(run.id, now)
        if due is not None and run.state == StateName.CANCELLED.value:
            return self.schedule(run.id, now, due=due)
        return None

    def interrupt(self, run_id: str, now: float) -> None:
        """The daemon stops while `run_id` waits out a retry delay in its process: cancel
        it, and move its next attempt to the store once it ended, due when it would have
        run."""
        self._due_after_stop[run_id] = retrying_until(self.store, run_id, now)
        self.store.request_cancel(run_id, "the daemon stopped during a retry delay")

    def schedule(
        self, run_id: str, now: float, *, due: float | None = None, quiet: bool = False
    ) -> str | None:
        """Record the next attempt of a run that could not retry in its own process; returns
        the new run's id, or None (no policy, no retries left, not a daemon run, or
        scheduled already)."""
        run = self.store.get_flow_run(run_id)
        if run.parent_run_id is not None or run.trigger not in DAEMON_TRIGGERS:
            return None
        text = self.store.retry_policy(run_id)
        if not text:
            return None
        try:
            policy = json.loads(text)
            retries = int(policy.get("retries", 0))
            delays = [float(d) for d in policy.get("delays", [])] or [0.0]
        except (ValueError, TypeError, AttributeError):
            return None
        if holds_mask(json.loads(run.parameters or "{}")):
            if not quiet:
                self.log(
                    f"not retrying {run.target} run {run_id[:12]}: a parameter was recorded"
                    f" redacted (***); retry it with `orch retry {run_id[:12]} -p NAME=VALUE`"
                )
            return None
        used = max(run.attempts, 1)
        if used > retries:
            if quiet:
                return None
            self.log(f"no retries left for {run.target} run {run_id[:12]} ({used} attempt(s))")
            return None
        delay = delay_before_retry(delays, used)
        when = now + delay if due is None else max(now, due)
        retry_id = retry_run_id(run_id)
        key = self.store.slot_key(run_id) or run.flow_name
        if not is_retry_key(key):
            key = RETRY_KEY + key
        message = f"attempt {used + 1} of {retries + 1}, after run {run_id[:12]} ended {run.state}"
        claimed = self.store.claim_retry_run(
            run_id=retry_id,
            retry_of=run_id,
            key=key,
            due=when,
            prior_attempts=used,
            message=message,
            now=now,
        )
        if not claimed:
            return None
        self.log(
            f"retry {run.target} run {run_id[:12]} as run {retry_id[:12]} ({message})"
            f" in {max(0.0, when - now):.3g} s"
        )
        return retry_id

    def schedule_missed(self, now: float) -> list[str]:
        """At start: the retries of daemon runs that crashed while no daemon handled them."""
        since = now - RETRY_LOOKBACK_SECONDS
        candidates = self.store.unretried_runs([StateName.CRASHED.value], DAEMON_TRIGGERS, since)
        scheduled = []
        for run_id in candidates:
            run = self.store.get_flow_run(run_id)
            policy = json.loads(self.store.retry_policy(run_id) or "{}")
            delays = [float(d) for d in policy.get("delays") or [0.0]]
            due = (run.ended or now) + delay_before_retry(delays, max(run.attempts, 1))
            new = self.schedule(run_id, now, due=due, quiet=True)
            if new is not None:
                scheduled.append(new)
        return scheduled
