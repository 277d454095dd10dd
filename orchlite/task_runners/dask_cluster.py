"""The Dask task runner: task bodies go to a Dask cluster, task runs go as steps.

Loaded on first use of `DaskTaskRunner` (`orchlite.task_runners` imports it lazily); Dask
itself is imported only when a runner starts, on the flow's first `.submit()`.
"""

from __future__ import annotations

import concurrent.futures as cf
import contextlib
import os
import threading
from collections.abc import Callable
from typing import Any

from ..errors import TaskTimeoutError, UsageError
from ..states import State
from ..timeouts import timeout_message
from .bodies import RemoteBodies, WorkerCrashedError
from .dask_bodies import DaskBodies

_preparing = threading.local()
"""In an orchestrating thread of the Dask runner: whether its task run has not yet handed
in a body (it counts as preparing)."""


STEP_THREADS = 4
"""Threads of the Dask runner that run task runs' steps."""

DASK_MISSING = "DaskTaskRunner needs the dask extra: pip install 'orchlite[dask]'"
CONNECT_TIMEOUT_SECONDS = 5.0


class DaskTaskRunner(RemoteBodies):
    """Run task bodies on a Dask cluster (`pip install 'orchlite[dask]'`).

    With no `address`, each flow run starts a temporary cluster, `cluster_class(**
    cluster_kwargs)` (default `distributed.LocalCluster`), and closes it at the end; with an
    `address` it connects a `distributed.Client` to that scheduler (5 s connect timeout,
    change it with `client_kwargs={"timeout": ...}`). `adapt_kwargs` makes a started cluster
    adaptive; `cluster` uses a cluster object you manage (not closed by the runner).

    Orchestration stays in the flow's process; workers must have orchlite installed. Dask is
    imported when the runner starts, on the flow's first `.submit()`; a runner that cannot
    start raises UsageError there, and the flow run fails with that one line.

    Task runs go as steps (`orchlite.steps`): no orchestrating thread waits while a body
    runs, so a `.map()` sends all its bodies at once. A task with tags (concurrency limits)
    keeps its thread, since waiting for a slot blocks.
    """

    starts_bodies = True

    def __init__(
        self,
        address: str | None = None,
        cluster_class: type[Any] | str | Callable[..., Any] | None = None,
        cluster_kwargs: dict[str, Any] | None = None,
        client_kwargs: dict[str, Any] | None = None,
        *,
        adapt_kwargs: dict[str, Any] | None = None,
        cluster: Any = None,
    ) -> None:
        if address is not None and (cluster_class is not None or cluster is not None):
            raise ValueError("pass either an address or a cluster (class), not both")
        super().__init__()
        self.address = address
        self.cluster_class = cluster_class
        self.cluster_kwargs = dict(cluster_kwargs or {})
        self.client_kwargs = dict(client_kwargs or {})
        self.adapt_kwargs = dict(adapt_kwargs or {})
        self.cluster = cluster
        self._lock = threading.Lock()
        self._client: Any = None
        self._own_cluster: Any = None
        self._orchestration: cf.ThreadPoolExecutor | None = None
        self._steps: cf.ThreadPoolExecutor | None = None
        self._error: UsageError | None = None
        self._bodies: DaskBodies | None = None
        self._abandoned = False
        self._outstanding: set[cf.Future[State]] = set()

    def duplicate(self) -> DaskTaskRunner:
        return type(self)(
            address=self.address,
            cluster_class=self.cluster_class,
            cluster_kwargs=self.cluster_kwargs,
            client_kwargs=self.client_kwargs,
            adapt_kwargs=self.adapt_kwargs,
            cluster=self.cluster,
        )

    @property
    def client(self) -> Any:
        """The `distributed.Client` of a started runner (None before the first submit)."""
        return self._client

    def submit(self, orchestrate: Callable[[], State]) -> cf.Future[State]:
        with self._lock:
            if self._orchestration is None:
                self._start()
            assert self._orchestration is not None
            bodies = self._bodies
            assert bodies is not None
            return self._orchestration.submit(self._orchestrate, bodies, orchestrate)

    def submit_steps(
        self, start: Callable[[], None], outcome: cf.Future[State], after: list[cf.Future[Any]]
    ) -> None:
        with self._lock:
            if self._orchestration is None:
                self._start()
            self._outstanding.add(outcome)
        outcome.add_done_callback(self._forget)
        waiting = [future for future in after if not future.done()]
        if not waiting:
            self._launch(start, outcome)
            return
        count = [len(waiting)]
        count_lock = threading.Lock()

        def one_done(_: cf.Future[Any]) -> None:
            with count_lock:
                count[0] -= 1
                last = count[0] == 0
            if last:
                self._launch(start, outcome)

        for future in waiting:
            future.add_done_callback(one_done)

    def _forget(self, outcome: cf.Future[State]) -> None:
        with self._lock:
            self._outstanding.discard(outcome)

    def _launch(self, start: Callable[[], None], outcome: cf.Future[State]) -> None:
        """Queue a task run's first step; cancel its outcome if the runner has stopped."""
        with self._lock:
            pool, bodies = self._steps, self._bodies
        try:
            if pool is None or bodies is None:
                raise RuntimeError("the runner has stopped")
            work = pool.submit(self._orchestrate, bodies, start)
        except RuntimeError:
            outcome.cancel()
            return
        work.add_done_callback(lambda done: done.cancelled() and outcome.cancel())

    def call_soon(self, step: Callable[[], None]) -> None:
        """Queue `step`; once the runner is stopping (its queue dropped), run it right here,
        so a task run cut short still records how it ended."""
        pool = self._steps
        try:
            if pool is None:
                raise RuntimeError("the runner has stopped")
            work = pool.submit(step)
        except RuntimeError:
            step()
            return
        work.add_done_callback(lambda done: step() if done.cancelled() else None)

    def _orchestrate(self, bodies: DaskBodies, orchestrate: Callable[[], Any]) -> Any:
        bodies.preparing()
        _preparing.flag = True
        try:
            return orchestrate()
        finally:
            if _preparing.flag:
                _preparing.flag = False
                bodies.prepared()

    def _start(self) -> None:
        if self._error is not None:
            raise self._error
        try:
            self._client, self._own_cluster, as_completed = self._connect()
        except UsageError as exc:
            self._error = exc
            raise
        self._bodies = DaskBodies(self._client, as_completed)
        self._stopping = False
        # Task runs as steps hold a thread only while a step runs: a few threads do, more
        # would only contend for the GIL. A task run with tags holds its thread throughout
        # (waiting for a slot blocks), so those get many, to keep the cluster fed.
        self._steps = cf.ThreadPoolExecutor(
            max_workers=STEP_THREADS, thread_name_prefix="orch-step"
        )
        self._orchestration = cf.ThreadPoolExecutor(
            max_workers=max(64, 4 * self._bodies.threads), thread_name_prefix="orch-task"
        )

    def _connect(self) -> tuple[Any, Any, Any]:
        try:
            import distributed
        except ImportError:
            raise UsageError(DASK_MISSING) from None
        client_kwargs = dict(self.client_kwargs)
        if self.address is not None:
            client_kwargs.setdefault("timeout", CONNECT_TIMEOUT_SECONDS)
            try:
                client = distributed.Client(self.address, **client_kwargs)
            except Exception as exc:
                raise UsageError(
                    f"cannot connect to the Dask scheduler at {self.address}: {_one_line(exc)}"
                ) from None
            return client, None, distributed.as_completed
        cluster, own = self.cluster, None
        if cluster is None:
            cluster_class = _resolve_class(self.cluster_class) or distributed.LocalCluster
            name = getattr(cluster_class, "__name__", repr(cluster_class))
            try:
                cluster = own = cluster_class(**self.cluster_kwargs)
                if self.adapt_kwargs:
                    cluster.adapt(**self.adapt_kwargs)
            except UsageError:
                raise
            except Exception as exc:
                if own is not None:
                    with contextlib.suppress(Exception):
                        own.close()
                raise UsageError(
                    f"cannot start the Dask cluster ({name}): {_one_line(exc)}"
                ) from None
        try:
            return distributed.Client(cluster, **client_kwargs), own, distributed.as_completed
        except Exception as exc:
            if own is not None:
                with contextlib.suppress(Exception):
                    own.close()
            raise UsageError(f"cannot connect to the Dask cluster: {_one_line(exc)}") from None

    def start_body(
        self, fn: Callable[..., Any], bound: Any, timeout: float | None, what: str
    ) -> cf.Future[bytes]:
        request = self._request(fn, bound)
        bodies = self._bodies
        if bodies is None or self._stopping or self._cancelled:
            raise self._stopped_error()
        key = f"{getattr(fn, '__name__', 'task')}-{os.urandom(8).hex()}"
        first = getattr(_preparing, "flag", False)
        _preparing.flag = False
        local = bodies.submit(key, request, first)
        reply: cf.Future[bytes] = cf.Future()
        timer: threading.Timer | None = None

        def arrived(done: cf.Future[bytes]) -> None:
            if timer is not None:
                timer.cancel()
            if done.cancelled():
                _settle_once(reply, None, self._stopped_error())
            else:
                error = done.exception()
                if error is None:
                    _settle_once(reply, done.result(), None)
                else:
                    _settle_once(reply, None, self._body_error(error, what))

        if timeout:

            def expire() -> None:
                error = TaskTimeoutError(timeout_message(what, timeout))
                if _settle_once(reply, None, error):
                    self._abandoned = True
                    bodies.cancel(key)

            timer = threading.Timer(timeout, expire)
            timer.daemon = True
            timer.start()
        local.add_done_callback(arrived)
        return reply

    def _body_error(self, error: BaseException, what: str) -> BaseException:
        if self._stopping or self._cancelled:
            return self._stopped_error()
        if type(error).__name__ == "KilledWorker":
            return WorkerCrashedError(
                f"the Dask worker running {what[0].lower()}{what[1:]} died: {_one_line(error)}"
            )
        return error

    def run_body(self, fn: Callable[..., Any], bound: Any, timeout: float | None, what: str) -> Any:
        return self.finish_body(self.start_body(fn, bound, timeout, what).result())

    def cancel_pending(self) -> None:
        """The flow run was cancelled: give up on the bodies on the cluster, so their task
        runs end CANCELLED now, and start no more."""
        self._cancelled = True
        bodies = self._bodies
        if bodies is not None:
            bodies.cancel_all()

    def shutdown(self, wait: bool = True) -> None:
        if wait:  # task runs waiting for bodies hold no thread: wait for them here
            while True:
                with self._lock:
                    outstanding = list(self._outstanding)
                if not outstanding:
                    break
                cf.wait(outstanding)
        with self._lock:
            orchestration, self._orchestration = self._orchestration, None
            steps, self._steps = self._steps, None
            bodies, self._bodies = self._bodies, None
            client, self._client = self._client, None
            cluster, self._own_cluster = self._own_cluster, None
            if not wait:
                self._stopping = True
        if not wait and bodies is not None:
            bodies.close(cancel=True)  # their orchestrating threads stop waiting now
        for pool in (orchestration, steps):
            if pool is not None:
                pool.shutdown(wait=wait, cancel_futures=not wait)
        self._stopping = True
        if bodies is not None:
            bodies.close(cancel=True)
        with self._lock:
            unstarted, self._outstanding = list(self._outstanding), set()
        for outcome in unstarted:  # still waiting for their upstream futures
            outcome.cancel()
        _close_dask(client, cluster, abandoned=self._abandoned or not wait)

    def __repr__(self) -> str:
        where = f"address={self.address!r}" if self.address else "local cluster"
        return f"DaskTaskRunner({where})"


def _settle_once(future: cf.Future[Any], value: Any, error: BaseException | None) -> bool:
    """Settle `future` unless something else did first; whether this call did."""
    try:
        if error is None:
            future.set_result(value)
        else:
            future.set_exception(error)
    except cf.InvalidStateError:
        return False
    return True


def _close_dask(client: Any, cluster: Any, abandoned: bool) -> None:
    """Close the client, and the cluster the runner started.

    A body abandoned after its timeout may still run in a worker thread; closing an
    in-process worker would wait for it, so such workers are closed without waiting for
    their threads, and worker processes are killed without the usual grace period.
    """
    if client is not None:
        with contextlib.suppress(Exception):
            client.close()
    if cluster is None:
        return
    if abandoned:
        for worker in list(getattr(cluster, "workers", {}).values()):
            with contextlib.suppress(Exception):
                if hasattr(worker, "executor"):  # a Worker in this process
                    cluster.sync(worker.close, executor_wait=False)
                elif hasattr(worker, "kill"):  # a Nanny: its worker process goes at once
                    cluster.sync(worker.kill, timeout=0.5)
    with contextlib.suppress(Exception):
        cluster.close()


def _resolve_class(value: Any) -> Any:
    """A class, or a "package.module.Class" / "package.module:Class" string naming one."""
    if value is None or not isinstance(value, str):
        return value
    import importlib

    module_name, _, attribute = value.replace(":", ".").rpartition(".")
    try:
        return getattr(importlib.import_module(module_name), attribute)
    except (ImportError, AttributeError, ValueError) as exc:
        raise UsageError(f"cannot import the Dask cluster class {value!r}: {exc}") from None


def _one_line(exc: BaseException) -> str:
    text = " ".join(str(exc).split())
    return text or type(exc).__name__
