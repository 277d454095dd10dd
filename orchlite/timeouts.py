"""Timeouts that stop the body they time.

A flow or task body with `timeout_seconds` is interrupted at its deadline: an `Interrupted`
exception is raised inside it, wherever it is, and becomes the caller's timeout error at the
edge of the timed call. So the statements after the deadline never run and nothing is
logged under a run that has already ended.

- In the main thread the body runs in place, under a `SIGALRM` timer (`setitimer`). The
  signal also interrupts blocking system calls: a long `time.sleep`, a socket read, a lock.
- In any other thread the body runs in a helper thread, and at the deadline the exception is
  raised in that thread (`PyThreadState_SetAsyncExc`, what Prefect does too). That lands at
  the body's next Python instruction, so a body blocked in one long C call (a `time.sleep`, a
  read without a timeout) goes on until the call returns: the caller then waits `GRACE`
  seconds more, gives up, and the body's thread is left to end on its own.
- Code that never returns to Python (a C loop holding the GIL) cannot be interrupted in the
  process at all: run the flow in a child process (`orch run --subprocess`, the daemon, or a
  process-pool task runner), which is killed at the deadline.

`Interrupted` derives from BaseException, so an `except Exception:` in user code does not
swallow it. Orchestration code that user code calls (a task call inside a timed flow body)
runs shielded: an interrupt due meanwhile waits until the shielded call is about to run
user code again, or has returned, so the records of a task run are never cut in half.
Scopes nest: a task timeout inside a flow timeout gives whichever deadline comes first; if
the outer one passes first, the inner call lets the interrupt through to the outer one.
"""

from __future__ import annotations

import contextvars
import signal
import threading
import time
from collections.abc import Callable
from typing import Any, TypeVar

R = TypeVar("R")

GRACE = 0.5
"""Seconds a caller outside the main thread waits for an interrupted body to stop."""

_CAN_ALARM = hasattr(signal, "setitimer") and hasattr(signal, "pthread_sigmask")
_ALARM = {signal.SIGALRM} if _CAN_ALARM else set()


class Interrupted(BaseException):
    """Raised inside a body whose timeout (or an enclosing one) has passed."""


class _Scope:
    """One timed call: its deadline (monotonic), and whether it fired."""

    __slots__ = ("deadline", "done", "fired", "thread")

    def __init__(self, seconds: float) -> None:
        self.deadline = time.monotonic() + seconds
        self.fired = False
        self.done = False
        self.thread: _ThreadState | None = None


class _ThreadState:
    """The timed calls open in one thread, innermost last, and its shield depth."""

    __slots__ = ("alarm_saved", "ident", "lock", "scopes", "shield")

    def __init__(self) -> None:
        self.scopes: list[_Scope] = []
        self.shield = 0
        self.lock = threading.Lock()
        self.ident = threading.get_ident()
        self.alarm_saved: tuple[Any, tuple[float, float], float] | None = None

    def fired(self) -> bool:
        return any(scope.fired for scope in self.scopes)


_local = threading.local()
_open = 0
"""Timed calls open in any thread: when 0, shielding costs one comparison."""
_open_lock = threading.Lock()


def _thread_state() -> _ThreadState:
    state: _ThreadState | None = getattr(_local, "state", None)
    if state is None:
        state = _local.state = _ThreadState()
    return state


def call(
    fn: Callable[..., Any],
    args: tuple[Any, ...],
    kwargs: dict[str, Any],
    timeout: float | None,
    timed_out: Callable[[], BaseException],
) -> Any:
    """`fn(*args, **kwargs)` as user code; past `timeout` seconds it is interrupted and the
    exception `timed_out()` gives is raised instead."""
    if not timeout:
        return _unshielded(fn, args, kwargs) if _open else fn(*args, **kwargs)
    if _CAN_ALARM and threading.current_thread() is threading.main_thread():
        return _call_with_alarm(fn, args, kwargs, _Scope(timeout), timed_out)
    return _call_in_helper(fn, args, kwargs, timeout, timed_out)


class shielded:
    """Orchestration code called from user code: interrupts wait until it is done."""

    __slots__ = ("state",)

    def __enter__(self) -> None:
        self.state = state = _thread_state()
        with state.lock:
            if state.fired():
                _clear_async_interrupt(state)
                raise Interrupted
            state.shield += 1

    def __exit__(self, *exc_info: object) -> None:
        state = self.state
        with state.lock:
            state.shield -= 1
            due = state.shield == 0 and state.fired()
        if due:
            raise Interrupted


def timeout_message(what: str, timeout: float | None) -> str:
    """Prefect's words for a run that ran out of time."""
    return f"{what} exceeded timeout of {timeout:g} second(s)"


def raise_in_thread(ident: int, exc: type[BaseException]) -> None:
    """Raise `exc` in the thread `ident` at its next Python instruction."""
    _set_async_exc(ident, exc)


def orchestrate(fn: Callable[..., R], *args: Any) -> R:
    """`fn(*args)`: orchestration code that user code calls (a task call, a subflow),
    shielded from interrupts while any timed call is open."""
    if not _open:
        return fn(*args)
    with shielded():
        return fn(*args)


def active() -> bool:
    """Whether any timed call is open (only then does orchestration need shielding)."""
    return _open > 0


def _unshielded(fn: Callable[..., Any], args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
    """Run user code from orchestration code: interrupts reach it again."""
    state = _thread_state()
    saved = state.shield
    try:
        with state.lock:
            state.shield = 0
            if state.fired():
                _clear_async_interrupt(state)
                raise Interrupted
        return fn(*args, **kwargs)
    finally:
        # A plain store, no call: nothing can interrupt between the body and the restore.
        state.shield = saved


def _register(state: _ThreadState, scope: _Scope) -> None:
    """Open `scope` in this thread (called where no interrupt can land: with SIGALRM
    blocked, or before the helper thread's caller may send one)."""
    global _open
    with _open_lock:
        _open += 1
    state.scopes.append(scope)
    scope.thread = state


def _unregister(state: _ThreadState, scope: _Scope) -> None:
    """Close `scope`; idempotent, so it can be tried again if an interrupt cut it short,
    and a no-op for a scope never opened."""
    global _open
    with state.lock:
        if scope.thread is None or scope.done:
            return
        scope.done = True
        state.scopes.remove(scope)
    with _open_lock:
        _open -= 1


# --- main thread: SIGALRM


def _call_with_alarm(
    fn: Callable[..., Any],
    args: tuple[Any, ...],
    kwargs: dict[str, Any],
    scope: _Scope,
    timed_out: Callable[[], BaseException],
) -> Any:
    state = _thread_state()
    try:
        _open_alarm(state, scope)
        value = _unshielded(fn, args, kwargs)
    except Interrupted:
        if scope.fired and not _outer_fired(state, scope):
            raise timed_out() from None
        raise
    finally:
        _close_alarm(state, scope)
    if scope.fired:  # the body swallowed the interrupt: it still ran out of time
        raise timed_out()
    return value


def _outer_fired(state: _ThreadState, scope: _Scope) -> bool:
    index = state.scopes.index(scope)
    return any(outer.fired for outer in state.scopes[:index])


def _open_alarm(state: _ThreadState, scope: _Scope) -> None:
    old_mask = signal.pthread_sigmask(signal.SIG_BLOCK, _ALARM)
    try:
        if not state.scopes:
            handler = signal.signal(signal.SIGALRM, _on_alarm)
            state.alarm_saved = (handler, signal.getitimer(signal.ITIMER_REAL), time.monotonic())
        _register(state, scope)
        _arm(state)
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, old_mask)


def _close_alarm(state: _ThreadState, scope: _Scope) -> None:
    old_mask = signal.pthread_sigmask(signal.SIG_BLOCK, _ALARM)
    try:
        _unregister(state, scope)
        if state.scopes:
            _arm(state)
            return
        if state.alarm_saved is None:  # the scope never opened
            return
        signal.setitimer(signal.ITIMER_REAL, 0)
        if signal.SIGALRM in signal.sigpending():
            signal.sigwait(_ALARM)  # ours, and due: not for the handler restored below
        handler, (delay, interval), since = state.alarm_saved
        state.alarm_saved = None
        # None: a handler installed from C, which cannot be put back from Python.
        signal.signal(signal.SIGALRM, signal.SIG_DFL if handler is None else handler)
        if delay:  # someone else's timer was running: give it back, less the time spent
            signal.setitimer(
                signal.ITIMER_REAL, max(delay - (time.monotonic() - since), 1e-6), interval
            )
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, old_mask)


def _arm(state: _ThreadState) -> None:
    """Set the timer for the nearest deadline not yet passed (or stop it)."""
    pending = [scope.deadline for scope in state.scopes if not scope.fired]
    if pending:
        signal.setitimer(signal.ITIMER_REAL, max(min(pending) - time.monotonic(), 1e-6))
    else:
        signal.setitimer(signal.ITIMER_REAL, 0)


def _on_alarm(signum: int, frame: object) -> None:
    state = _thread_state()
    now = time.monotonic()
    for scope in state.scopes:  # outermost first: its timeout is the one to report
        if not scope.fired and scope.deadline <= now:
            scope.fired = True
            break
    _arm(state)
    if state.shield == 0 and state.fired():
        raise Interrupted


# --- other threads: an exception raised in the body's thread


def _call_in_helper(
    fn: Callable[..., Any],
    args: tuple[Any, ...],
    kwargs: dict[str, Any],
    timeout: float,
    timed_out: Callable[[], BaseException],
) -> Any:
    scope = _Scope(timeout)
    outcome: dict[str, Any] = {}
    registered = threading.Event()

    def body() -> None:
        state = _thread_state()
        _register(state, scope)
        registered.set()
        try:
            outcome["value"] = fn(*args, **kwargs)
        except BaseException as exc:
            outcome["error"] = exc
        while not scope.done:
            try:  # an interrupt sent as the body ended may land here
                _unregister(state, scope)
            except Interrupted:
                continue
        _set_async_exc(state.ident, None)  # nor later, in the thread's exit

    context = contextvars.copy_context()
    worker = threading.Thread(target=context.run, args=(body,), name="orch-timed", daemon=True)
    worker.start()
    registered.wait()
    worker.join(max(scope.deadline - time.monotonic(), 0))
    if worker.is_alive():
        _interrupt(scope)
        worker.join(GRACE)
    if scope.fired:
        raise timed_out()
    if "error" in outcome:
        raise outcome["error"]
    return outcome.get("value")


def _interrupt(scope: _Scope) -> None:
    """Fire `scope`: raise Interrupted in its thread, now if it runs user code, else when
    its shielded call ends."""
    state = scope.thread
    assert state is not None
    with state.lock:
        if scope.done:
            return
        scope.fired = True
        if state.shield == 0:
            _set_async_exc(state.ident, Interrupted)


def _clear_async_interrupt(state: _ThreadState) -> None:
    """Drop an interrupt sent to this thread but not raised yet (it is raised here now)."""
    if threading.current_thread() is not threading.main_thread():
        _set_async_exc(state.ident, None)


def _set_async_exc(ident: int, exc: type[BaseException] | None) -> None:
    import ctypes  # only ever needed once a timeout passes outside the main thread

    ctypes.pythonapi.PyThreadState_SetAsyncExc(
        ctypes.c_ulong(ident), ctypes.py_object(exc) if exc is not None else None
    )
