"""A task run's steps, and the two ways to drive them.

The engine writes a task run as a generator of steps: it yields each function body it needs
executed (a `Body`) and each wait between attempts (a `Pause`), and gets back the body's
value, or has its exception thrown in. So the same code serves two drivers:

- `run_steps` drives a task run in the calling thread: a body is a plain call. Direct task
  calls and the thread and process-pool runners use it.
- `StepDriver` drives a task run on a runner that starts bodies without waiting for them
  (`TaskRunner.starts_bodies`: Dask). A step runs in one of the runner's orchestrating
  threads until it yields a body; the runner sends the body off and the thread is free
  again; the body's completion schedules the next step. A thousand task runs waiting for
  their bodies hold no thread, and their bodies reach the cluster together.
"""

from __future__ import annotations

import concurrent.futures as cf
import contextvars
import threading
import time
from collections.abc import Callable, Generator
from typing import TYPE_CHECKING, Any, NamedTuple

from .states import State

if TYPE_CHECKING:
    from .task_runners import TaskRunner


class Body(NamedTuple):
    """A function body to execute for the task run named `name`."""

    fn: Callable[..., Any]
    bound: Any
    timeout: float | None
    name: str

    @property
    def what(self) -> str:
        return f"Task run {self.name!r}"


class Pause(NamedTuple):
    """Wait this long before the next step (the delay before a retry)."""

    seconds: float


Steps = Generator["Body | Pause", Any, State]


def run_steps(steps: State | Steps, call: Callable[[Body], Any]) -> State:
    """Drive `steps` to the end in this thread, executing each body with `call` (a task run
    answered without running, e.g. from the cache, comes as its state)."""
    if isinstance(steps, State):
        return steps
    try:
        request = steps.send(None)
        while True:
            if isinstance(request, Pause):
                time.sleep(request.seconds)
                request = steps.send(None)
                continue
            try:
                value = call(request)
            except BaseException as exc:
                request = steps.throw(exc)
            else:
                request = steps.send(value)
    except StopIteration as stop:
        return stop.value  # type: ignore[no-any-return]


class StepDriver:
    """Drives one task run's steps on a runner that starts bodies without waiting.

    Every step runs inside `context` (the submitting call's copy), so context variables the
    steps set, such as the current task run, hold from one step to the next whatever thread
    runs it. A context can be entered by one thread at a time, and a body may finish before
    the step that sent it has returned: then the thread finishing that step runs the next
    one too, so steps never overlap. `outcome` gets the final state, or the exception the
    steps ended with.
    """

    def __init__(
        self, runner: TaskRunner, context: contextvars.Context, outcome: cf.Future[State]
    ) -> None:
        self.runner = runner
        self.context = context
        self.outcome = outcome
        self._steps: Steps | None = None
        self._lock = threading.Lock()
        self._running = False
        self._next: Callable[[], None] | None = None

    def start(self, first: Callable[[], State | Steps]) -> None:
        """Run the first step here: `first()` gives the steps, or the state of a task run
        answered without running."""
        self._run(lambda: self._begin(first))

    def _run(self, step: Callable[[], None]) -> None:
        with self._lock:
            if self._running:
                self._next = step
                return
            self._running = True
        current: Callable[[], None] | None = step
        while current is not None:
            try:
                self.context.run(current)
            except BaseException as exc:  # not raised by the steps: never leave them hanging
                if not self.outcome.done():
                    self.outcome.set_exception(exc)
            with self._lock:
                current, self._next = self._next, None
                if current is None:
                    self._running = False

    def _begin(self, first: Callable[[], State | Steps]) -> None:
        try:
            steps = first()
        except BaseException as exc:
            self.outcome.set_exception(exc)
            return
        if isinstance(steps, State):
            self.outcome.set_result(steps)
        else:
            self._steps = steps
            self._advance(None, None)

    def _advance(self, value: Any, error: BaseException | None) -> None:
        steps = self._steps
        assert steps is not None
        try:
            while True:
                request = steps.send(value) if error is None else steps.throw(error)
                value = error = None
                if isinstance(request, Pause):
                    timer = threading.Timer(request.seconds, self._wake)
                    timer.daemon = True
                    timer.start()
                    return
                try:
                    pending = self.runner.start_body(
                        request.fn, request.bound, request.timeout, request.what
                    )
                except BaseException as exc:
                    # Arguments that cannot be pickled, a runner that stopped (CancelledRun):
                    # the steps record how the task run ends.
                    error = exc
                    continue
                pending.add_done_callback(self._body_done)
                return
        except StopIteration as stop:
            self.outcome.set_result(stop.value)
        except BaseException as exc:
            self.outcome.set_exception(exc)

    def _wake(self) -> None:
        self.runner.call_soon(lambda: self._run(lambda: self._advance(None, None)))

    def _body_done(self, reply: cf.Future[Any]) -> None:
        self.runner.call_soon(lambda: self._run(lambda: self._resume(reply)))

    def _resume(self, reply: cf.Future[Any]) -> None:
        try:
            value = self.runner.finish_body(reply.result())
        except BaseException as exc:
            self._advance(None, exc)
        else:
            self._advance(value, None)
