"""Cancel or retry many runs at once: what the one question asks, what is skipped, and one
summary of what happened.

Each run goes through `orchlite.operations`, as `c` and `r` on one run do: a plan first
(`check_cancellable`, `retry_plan`), which sorts out the runs that cannot be acted on (a
finished run cannot be cancelled, a subflow is retried through its parent), then one
question naming how many runs it acts on and how many it skips, then the action on each
(`cancel`, `launch`), `AT_ONCE` at a time. A run that completed is retried again only
after the stronger question (the word `retry` typed), as a single retry asks.

Planning and acting block (reading the store, waiting for runs to stop or to end), so the
app calls them in worker threads. Nothing here imports Textual.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal, TypeVar

from .. import operations
from ..errors import OrchError, RunNotFoundError, UsageError
from ..store import FlowRun, Store
from .format import run_count

T = TypeVar("T")

AT_ONCE = 4
"""Runs cancelled or retried at the same time (a retry is a child process each)."""
SHOWN_IDS = 5
"""Run ids a question names (then `…`)."""

Action = Literal["cancel", "retry"]

_REASONS = {
    "finished": ("finished run", "finished runs"),
    "subflow": ("subflow", "subflows"),
    "no target": ("run without a recorded target", "runs without a recorded target"),
    "gone": ("deleted run", "deleted runs"),
    "quitting": ("run not started (quitting)", "runs not started (quitting)"),
}


@dataclass
class BulkPlan:
    action: Action
    run_ids: list[str] = field(default_factory=list)
    """The runs to act on."""
    requests: list[operations.RunRequest] = field(default_factory=list)
    """For a retry: the request retrying each of `run_ids`."""
    completed: int = 0
    """For a retry: how many of the runs completed (asked for more strongly)."""
    skipped: Counter[str] = field(default_factory=Counter)
    """How many runs were left out, by why (`_REASONS`, or the error's message)."""

    @property
    def question(self) -> str:
        ids = ", ".join(run_id[:8] for run_id in self.run_ids[:SHOWN_IDS])
        ids += ", …" if len(self.run_ids) > SHOWN_IDS else ""
        if self.action == "cancel":
            text = f"Cancel {run_count(len(self.run_ids))} ({ids})?"
        else:
            text = (
                f"Retry {run_count(len(self.run_ids))} ({ids})? Each retry is a new run; tasks that"
                " completed are not executed again."
            )
            if self.completed:
                again = "it runs" if self.completed == 1 else "they run"
                text += (
                    f" {self.completed:,} of them COMPLETED: {again} again anyway"
                    " (like `orch retry --force`)."
                )
        if self.skipped:
            text += f" Skipped: {skipped_text(self.skipped)}."
        return text

    @property
    def nothing(self) -> str:
        """What to say when no run can be acted on."""
        why = skipped_text(self.skipped)
        return f"Nothing to {self.action}" + (f": {why}" if why else "")


def skipped_text(skipped: Counter[str]) -> str:
    """`2 finished runs, 1 subflow`."""
    parts = []
    for why, n in skipped.items():
        one, many = _REASONS.get(why, (f"run ({why})", f"runs ({why})"))
        parts.append(f"{n:,} {one if n == 1 else many}")
    return ", ".join(parts)


def plan_cancel(home: Path, selected: Sequence[FlowRun]) -> BulkPlan:
    """The runs among `selected` that can be cancelled: those not finished."""
    plan = BulkPlan("cancel")
    for run in selected:
        try:
            operations.check_cancellable(home, run.id)
        except OrchError as exc:
            plan.skipped[_not_cancelled(exc)] += 1
        else:
            plan.run_ids.append(run.id)
    return plan


def plan_retry(home: Path, selected: Sequence[FlowRun]) -> BulkPlan:
    """The requests retrying the runs among `selected` that can be retried (not subflows,
    with a recorded target)."""
    plan = BulkPlan("retry")
    for run in selected:
        try:
            retry = operations.retry_plan(home, run.id)
        except OrchError as exc:
            plan.skipped[_not_retried(run, exc)] += 1
            continue
        plan.run_ids.append(run.id)
        plan.requests.append(retry.request)
        plan.completed += retry.completed
    return plan


def _not_cancelled(error: OrchError) -> str:
    """Why `check_cancellable` or `cancel` refused: the run is gone, or finished (their
    UsageError), or what the error says."""
    if isinstance(error, RunNotFoundError):
        return "gone"
    return "finished" if isinstance(error, UsageError) else str(error)


def _not_retried(run: FlowRun, error: OrchError) -> str:
    """Why `retry_plan` refused, from what is known of the run."""
    if isinstance(error, RunNotFoundError):
        return "gone"
    if run.parent_run_id is not None:
        return "subflow"
    if not run.target:
        return "no target"
    return str(error)


@dataclass
class _Done:
    """One run's part of a bulk action: the run acted on (or started), skipped, or failed."""

    run_id: str | None = None
    skipped: str | None = None
    failed: str | None = None
    ok: bool = True


def cancel_all(home: Path, plan: BulkPlan) -> operations.Outcome:
    """Cancel every run of the plan (each waits for its run to stop, as `orch cancel`)."""

    def cancel(run_id: str) -> _Done:
        try:
            outcome = operations.cancel(home, run_id)
        except OrchError as exc:  # it ended meanwhile, or was deleted
            return _Done(skipped=_not_cancelled(exc))
        return _Done(run_id=run_id) if outcome.ok else _Done(failed=outcome.message)

    return _summary(home, "Cancelled", plan, _each(cancel, plan.run_ids))


def retry_all(
    home: Path,
    plan: BulkPlan,
    *,
    quitting: Callable[[], bool],
    ended: Callable[[str], None],
) -> operations.Outcome:
    """Run every retry of the plan, each in a supervised child process, and wait for them.

    `ended(run_id)` is called as each new run ends, or is left out because `quitting()`
    turned true before its turn came.
    """

    def retry(request: operations.RunRequest) -> _Done:
        try:
            if quitting():
                return _Done(skipped="quitting")
            outcome = operations.launch(home, request)
        except OrchError as exc:
            return _Done(failed=str(exc))
        finally:
            ended(request.run_id)
        if outcome.run_id is None:
            return _Done(failed=outcome.message)
        return _Done(run_id=outcome.run_id, ok=outcome.ok)

    return _summary(home, "Retried", plan, _each(retry, plan.requests))


def _each(act: Callable[[T], _Done], items: Sequence[T]) -> list[_Done]:
    with ThreadPoolExecutor(max_workers=max(1, min(AT_ONCE, len(items)))) as pool:
        return list(pool.map(act, items))


def _summary(home: Path, verb: str, plan: BulkPlan, done: list[_Done]) -> operations.Outcome:
    """`Retried 3 runs: 2 COMPLETED, 1 FAILED; skipped 2 subflows`: the states the runs
    acted on are in now, what was skipped (when planned or since), and the first failure."""
    acted = [d.run_id for d in done if d.run_id is not None]
    message = f"{verb} {run_count(len(acted))}"
    if acted:
        with Store(home, read_only=True) as store:
            marks = store.run_marks(acted)
        states = Counter(marks[run_id][0] for run_id in acted if run_id in marks)
        message += ": " + ", ".join(f"{n:,} {state}" for state, n in states.most_common())
    skipped = plan.skipped + Counter(d.skipped for d in done if d.skipped is not None)
    if skipped:
        message += f"; skipped {skipped_text(skipped)}"
    failed = [d.failed for d in done if d.failed is not None]
    if failed:
        message += f"; {len(failed):,} failed: {failed[0]}"
    return operations.Outcome(message, ok=not failed and all(d.ok for d in done))
