"""`EngineStore`: the part of the store that running flows and tasks uses.

The flow engine (`engine`), the task engine (`task_engine`) and the task-run recorder
(`recorder`) record runs through these methods only; everything else in `Store` serves the
CLI, the daemon, the TUI and `orch doctor`. `Store` satisfies this protocol.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any, Protocol

from ..states import StateName
from .records import FlowRun, LogRow, StateRow, StoredResult, TaskRun, TaskRunSave


class EngineStore(Protocol):
    home: Path

    # -- flow runs (engine) -------------------------------------------------------------

    def create_flow_run(
        self,
        *,
        run_id: str,
        flow_name: str,
        name: str,
        parameters: str,
        state: StateName = ...,
        message: str | None = ...,
        target: str | None = ...,
        trigger: str = ...,
        parent_run_id: str | None = ...,
        parent_position: int | None = ...,
        retry_of: str | None = ...,
        tags: str = ...,
        pid: int | None = ...,
        host: str | None = ...,
        now: float | None = ...,
        run_options: str | None = ...,
        start: bool = ...,
        deadline: float | None = ...,
        retry_policy: str | None = ...,
        continues_chain: bool = ...,
    ) -> int: ...

    def set_flow_run_state(
        self,
        run_id: str,
        state: StateName,
        message: str | None = ...,
        *,
        result: StoredResult | None = ...,
        pid: int | None = ...,
        host: str | None = ...,
        attempts: int | None = ...,
        deadline: float | None = ...,
        parameters: str | None = ...,
        logs: Sequence[LogRow] = ...,
        now: float | None = ...,
        retry_due: float | None = ...,
    ) -> bool: ...

    def get_flow_run(self, run_id: str) -> FlowRun: ...

    def child_flow_runs(self, run_id: str) -> list[FlowRun]: ...

    def pause_of(self, run_id: str) -> dict[str, Any] | None: ...

    # -- task runs (engine, task engine, recorder) --------------------------------------

    def task_runs(self, flow_run_id: str, *, with_results: bool = ...) -> list[TaskRun]: ...

    def cached_result(self, key: str, now: float | None = ...) -> StoredResult | None: ...

    def save_task_run(
        self,
        run: TaskRun,
        states: Sequence[StateRow] = ...,
        *,
        cache: tuple[str, float | None] | None = ...,
        logs: Sequence[LogRow] = ...,
        answer: Callable[[], bool] | None = ...,
    ) -> bool: ...

    def save_task_runs(self, saves: Sequence[TaskRunSave]) -> list[BaseException | None]: ...

    def write_logs(self, rows: Sequence[LogRow]) -> None: ...

    # -- the recorder's background thread -----------------------------------------------

    def stopping(self, run_ids: Sequence[str]) -> dict[str, str]: ...

    def heartbeat(self, run_ids: Iterable[str], now: float | None = ...) -> None: ...

    def checkpoint(self) -> None: ...

    def close_thread_connection(self) -> None: ...
