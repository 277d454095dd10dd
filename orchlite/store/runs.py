"""Flow runs: recording a run, moving it through its states, and reading one back."""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Callable, Iterable, Sequence
from functools import partial
from typing import Any

from ..errors import RunNotFoundError, StoreError, UsageError
from ..faults import fault_point
from ..redaction import redact_optional
from ..states import TERMINAL, StateName, can_transition
from .logs import insert_logs
from .records import FlowRun, LogRow, StoredResult
from .sql import FLOW_RUN_COLUMNS, live_retry, start_of
from .task_runs import TaskRuns

_RUNNING = StateName.RUNNING.value
_WAITING = frozenset({StateName.SCHEDULED.value, StateName.LATE.value, StateName.PENDING.value})

# The crash points (`orchlite.faults`) after the commits of flow run states.
_FLOW_STATE_FAULTS = {StateName.RUNNING: "run_started"} | {s: "run_finished" for s in TERMINAL}


StateHook = Callable[["FlowRuns", str, StateName], None]
_state_hooks: list[StateHook] = []


def on_flow_run_state(hook: StateHook) -> None:
    """Call `hook(store, run_id, state)` in this process after each committed move of a
    flow run to a new state, whichever code moved it (once per hook, however often added).

    The hook runs in the thread that made the move, after its transaction commits; it must
    be quick and must not raise (alerts use this: `orchlite.alerting`).
    """
    if hook not in _state_hooks:
        _state_hooks.append(hook)


class FlowRuns(TaskRuns):
    """Flow runs, whose end also ends their unfinished task runs."""

    def create_flow_run(
        self,
        *,
        run_id: str,
        flow_name: str,
        name: str,
        parameters: str,
        state: StateName = StateName.PENDING,
        message: str | None = None,
        target: str | None = None,
        trigger: str = "manual",
        parent_run_id: str | None = None,
        parent_position: int | None = None,
        retry_of: str | None = None,
        tags: str = "[]",
        pid: int | None = None,
        host: str | None = None,
        now: float | None = None,
        run_options: str | None = None,
        start: bool = False,
        deadline: float | None = None,
        retry_policy: str | None = None,
        continues_chain: bool = False,
    ) -> int:
        """Record a new flow run, in one commit; returns its attempt number (0 unless `start`).

        With `start` (its process runs its body now) the run moves on from `state` to
        RUNNING in the same commit: started, in its first attempt, with its `deadline` and
        its flow's `retry_policy` (JSON, read by the daemon to retry it in the store if its
        process dies); `continues_chain` counts the attempts of the earlier runs of its
        retry chain (`prior_attempts`, set by the daemon), so `retries` bounds the chain.

        A run already recorded under `run_id` while waiting to start (SCHEDULED, LATE or
        PENDING: claimed by a scheduler, or queued by a supervisor) is adopted instead: its
        flow, name, target and parameters are filled in and it moves to `state`. A run id
        that already started is refused. `pid` and `host` name the process that will run
        it, so a run whose process dies before it starts is reaped too.

        A run that retries another (`retry_of`) claims that retry: it is refused with a
        UsageError naming the other while another unfinished run retries the same run, and
        with RunNotFoundError when the run to retry was deleted meanwhile (`orch gc`). Once
        recorded, it keeps the retried run from `orch gc` until it ends (`delete_runs_before`).
        `run_options` (JSON) says how it starts (`run_options`); an adopted run keeps its own
        unless given.
        """
        now = time.time() if now is None else now
        row = {
            "id": run_id,
            "flow_name": flow_name,
            "name": name,
            "target": target,
            "parameters": parameters,
            "state": state.value,
            "state_message": redact_optional(message),
            "trigger": trigger,
            "parent_run_id": parent_run_id,
            "parent_position": parent_position,
            "retry_of": retry_of,
            "created": now,
            "tags": tags,
            "pid": pid,
            "host": host,
            "heartbeat": None if pid is None else now,
            "pid_start": start_of(pid, host),
            "run_options": run_options,
        }
        attempts = 0
        with self.transaction("run_created") as conn:
            if retry_of is not None:
                self._claim_retry(conn, run_id, retry_of)
            self._add_flow_run(conn, row)
            if start:
                (attempts,) = conn.execute(
                    "UPDATE flow_runs SET state = ?, started = COALESCE(started, ?), heartbeat = ?,"
                    " attempts = CASE WHEN ? THEN prior_attempts + 1 ELSE 1 END,"
                    " deadline = ?, retry_policy = ? WHERE id = ? RETURNING attempts",
                    (_RUNNING, now, now, continues_chain, deadline, retry_policy, run_id),
                ).fetchone()
                self._insert_history(conn, run_id, _RUNNING, None, now)
                for hook in _state_hooks:
                    self.after_commit(partial(hook, self, run_id, StateName.RUNNING))
        if start:
            fault_point("run_started")
        return int(attempts)

    def _add_flow_run(self, conn: sqlite3.Connection, row: dict[str, Any]) -> None:
        """Insert a run's row, or adopt the run waiting under its id (see `create_flow_run`)."""
        run_id, state, message = row["id"], row["state"], row["state_message"]
        found = conn.execute("SELECT state FROM flow_runs WHERE id = ?", (run_id,)).fetchone()
        if found is None:
            columns = ", ".join(row)
            marks = ",".join("?" * len(row))
            conn.execute(f"INSERT INTO flow_runs ({columns}) VALUES ({marks})", tuple(row.values()))
            self._insert_history(conn, run_id, state, message, row["created"])
            return
        if found[0] not in _WAITING:
            raise StoreError(f"flow run {run_id} has already started ({found[0]})")
        conn.execute(
            "UPDATE flow_runs SET flow_name = ?, name = ?, target = COALESCE(?, target),"
            " parameters = ?, state = ?, state_message = ?, pid = COALESCE(?, pid),"
            " host = COALESCE(?, host), heartbeat = COALESCE(?, heartbeat),"
            " run_options = COALESCE(?, run_options),"
            " pid_start = CASE WHEN ? IS NULL THEN pid_start ELSE ? END WHERE id = ?",
            (
                row["flow_name"],
                row["name"],
                row["target"],
                row["parameters"],
                state,
                message,
                row["pid"],
                row["host"],
                row["heartbeat"],
                row["run_options"],
                row["pid"],
                row["pid_start"],
                run_id,
            ),
        )
        if found[0] != state:
            self._insert_history(conn, run_id, state, message, row["created"])

    @staticmethod
    def _claim_retry(conn: sqlite3.Connection, run_id: str, retry_of: str) -> None:
        if not conn.execute("SELECT 1 FROM flow_runs WHERE id = ?", (retry_of,)).fetchone():
            raise RunNotFoundError(f"run {retry_of[:8]} no longer exists (deleted by `orch gc`)")
        other = live_retry(conn, retry_of, run_id)
        if other is not None:
            raise UsageError(
                f"run {retry_of[:8]} is already being retried by run {other[0][:8]} ({other[1]});"
                f" wait for it to end, or stop it with `orch cancel {other[0][:8]}`"
            )

    def set_flow_run_state(
        self,
        run_id: str,
        state: StateName,
        message: str | None = None,
        *,
        result: StoredResult | None = None,
        pid: int | None = None,
        host: str | None = None,
        attempts: int | None = None,
        deadline: float | None = None,
        parameters: str | None = None,
        logs: Sequence[LogRow] = (),
        now: float | None = None,
        retry_due: float | None = None,
    ) -> bool:
        """Move a flow run to `state`; False (and nothing written) if the move is not allowed.

        `retry_due` goes with RETRYING: when the run's next attempt is due (`retry_due`).
        """
        now = time.time() if now is None else now
        message = redact_optional(message)
        with self.transaction(_FLOW_STATE_FAULTS.get(state, "")) as conn:
            row = conn.execute("SELECT state FROM flow_runs WHERE id = ?", (run_id,)).fetchone()
            if row is None:
                raise RunNotFoundError(f"no flow run {run_id}")
            if not can_transition(StateName(row[0]), state):
                return False
            sets = ["state = ?", "state_message = ?"]
            values: list[Any] = [state.value, message]
            if retry_due is not None:
                sets.append("retry_due = ?")
                values.append(retry_due)
            if state is StateName.RUNNING:
                sets += ["started = COALESCE(started, ?)", "heartbeat = ?"]
                values += [now, now]
            if state in TERMINAL:
                sets.append("ended = ?")
                values.append(now)
            if pid is not None:
                sets += ["pid = ?", "host = ?", "pid_start = ?"]
                values += [pid, host, start_of(pid, host)]
            if attempts is not None:
                sets.append("attempts = ?")
                values.append(attempts)
            if deadline is not None:
                sets.append("deadline = ?")
                values.append(deadline)
            if parameters is not None:
                sets.append("parameters = ?")
                values.append(parameters)
            if result is not None:
                sets += [
                    "result_ref = ?",
                    "result_data = ?",
                    "result_serializer = ?",
                    "result_preview = ?",
                ]
                values += [result.blob, result.data, result.serializer, result.preview]
            conn.execute(f"UPDATE flow_runs SET {', '.join(sets)} WHERE id = ?", (*values, run_id))
            self._insert_history(conn, run_id, state.value, message, now)
            if state in TERMINAL:
                # No task run outlives its flow run: one still unfinished was cut short (a
                # timeout, a cancel, a crash) or its last write failed (a full disk).
                self._end_unfinished_task_runs(conn, run_id, state, message, now)
            if logs:
                insert_logs(conn, logs)
            for hook in _state_hooks:
                self.after_commit(partial(hook, self, run_id, state))
        return True

    def end_abandoned_run(
        self, run_id: str, state: StateName, message: str, now: float | None = None
    ) -> bool:
        """End a run whose process is gone: the flow run and its unfinished task runs.

        False when the run had already reached a terminal state (nothing is changed).
        """
        return self.set_flow_run_state(run_id, state, message, now=now)

    def request_cancel(self, run_id: str, message: str = "cancellation requested") -> bool:
        """Mark a run CANCELLING; its process notices and stops. False if it already ended."""
        return self.set_flow_run_state(run_id, StateName.CANCELLING, message)

    def stopping(self, run_ids: Sequence[str]) -> dict[str, str]:
        """Which of these runs must stop, with their state: those someone asked to cancel
        (CANCELLING), and those another process already ended (e.g. reaped as CRASHED)."""
        if not run_ids:
            return {}
        stops = (StateName.CANCELLING.value, *(s.value for s in TERMINAL))
        marks = ",".join("?" * len(run_ids))
        states = ",".join("?" * len(stops))
        rows = self.conn.execute(
            f"SELECT id, state FROM flow_runs WHERE id IN ({marks}) AND state IN ({states})",
            (*run_ids, *stops),
        ).fetchall()
        return {row[0]: row[1] for row in rows}

    def heartbeat(self, run_ids: Iterable[str], now: float | None = None) -> None:
        ids = list(run_ids)
        if not ids:
            return
        now = time.time() if now is None else now
        with self.transaction() as conn:
            conn.executemany(
                "UPDATE flow_runs SET heartbeat = ? WHERE id = ?", [(now, i) for i in ids]
            )

    def get_flow_run(self, run_id: str) -> FlowRun:
        row = self.conn.execute(
            f"SELECT {FLOW_RUN_COLUMNS} FROM flow_runs WHERE id = ?", (run_id,)
        ).fetchone()
        if row is None:
            raise RunNotFoundError(f"no flow run {run_id}")
        return FlowRun(*row)

    def flow_run_result(self, run_id: str) -> StoredResult | None:
        row = self.conn.execute(
            "SELECT result_serializer, result_data, result_ref, result_preview FROM flow_runs"
            " WHERE id = ?",
            (run_id,),
        ).fetchone()
        return StoredResult(*row) if row and row[0] else None

    def set_retry_policy(self, run_id: str, policy: str) -> None:
        """Record the flow's retry policy (JSON) on its run, for the daemon to read."""
        with self.transaction() as conn:
            conn.execute("UPDATE flow_runs SET retry_policy = ? WHERE id = ?", (policy, run_id))

    def retry_due(self, run_id: str) -> float | None:
        """When the next attempt of a RETRYING flow run is due (None: it is not retrying)."""
        row = self.conn.execute(
            "SELECT retry_due FROM flow_runs WHERE id = ? AND state = ?",
            (run_id, StateName.RETRYING.value),
        ).fetchone()
        return None if row is None else row[0]

    def retry_policy(self, run_id: str) -> str | None:
        row = self.conn.execute(
            "SELECT retry_policy FROM flow_runs WHERE id = ?", (run_id,)
        ).fetchone()
        return None if row is None else row[0]

    def run_options(self, run_id: str) -> str | None:
        """How a run starts (JSON of `shell_jobs.RunOptions`), or None: as a flow run does."""
        row = self.conn.execute(
            "SELECT run_options FROM flow_runs WHERE id = ?", (run_id,)
        ).fetchone()
        return None if row is None else row[0]

    def prior_attempts(self, run_id: str) -> int:
        """Attempts made by the earlier runs of this run's retry chain (0 for most runs)."""
        row = self.conn.execute(
            "SELECT prior_attempts FROM flow_runs WHERE id = ?", (run_id,)
        ).fetchone()
        return 0 if row is None else int(row[0])
