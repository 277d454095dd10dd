"""Concurrency and rate limits shared by every process that uses the same `.orch/`.

A limit has a name and a number, set with `orch limit set NAME N`:

- a **concurrency limit** lets at most N slots be held at once. A task run takes one slot of
  each limit named by its tags (`@task(tags=["db"])`) before its body runs and gives it back
  when the body ends (completed, failed, timed out or cancelled); `concurrency("db")` does
  the same for any block of code.
- a **rate limit** (`--per-second`) lets at most N acquisitions pass in any one second.
  `rate_limit("api")` blocks until one passes; a task tagged with a rate-limited name starts
  only when one passes. Nothing is given back: an acquisition counts for one second.

Every slot is a lease: a row in the store naming its holder (pid with its start time, host,
task run) with an expiry `LEASE_SECONDS` ahead, renewed every `RENEW_EVERY` seconds by a
background thread of the holder's process. On the holder's host the slot is held exactly as
long as that process lives: a holder stopped with Ctrl-Z, or on a suspended machine, keeps
it however long it goes without renewing, and a dead one (its pid gone, or reused by another
process) loses it to the next process that waits. The expiry is only for other hosts, which
cannot see the holder's process: there a lease not renewed for `LEASE_SECONDS` is free.
Each attempt to take slots is one `BEGIN IMMEDIATE` transaction that takes every
slot it needs or none (so several limits can never deadlock); a waiter polls every 50-100 ms
and never holds the write lock while it sleeps. Waiting is not first-come first-served.

A name with no limit set does not limit anything: tags without a limit cost one read, and
`concurrency()`/`rate_limit()` on an unknown name pass at once with a warning (Prefect's
behaviour for a missing global limit), or raise with `strict=True`.
"""

from __future__ import annotations

import logging
import os
import random
import socket
import threading
import time
import weakref
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any

from .context import flow_run_var, open_store, task_run_var
from .errors import CancelledRun, OrchError, UsageError
from .processes import process_alive
from .states import StateName
from .store import Slot, SlotUsage, Store, TaskRun

LEASE_SECONDS = 10.0
"""A held slot of another host whose lease is not renewed for this long is free again."""
RENEW_EVERY = 2.5
POLL_SECONDS = (0.05, 0.1)
"""A waiter sleeps a random time in this range between attempts."""
HOST = socket.gethostname()

MAX_SLOTS = 1_000_000
"""The largest N a limit takes: far above any real use, and well inside SQLite's integers."""

log = logging.getLogger("orchlite.limits")


def check_size(n: int) -> int:
    """`n` if it is a limit's size (1 to MAX_SLOTS), else UsageError saying so."""
    if not 1 <= n <= MAX_SLOTS:
        raise UsageError(f"N must be between 1 and {MAX_SLOTS:,}, not {n}")
    return n


class ConcurrencySlotAcquisitionError(OrchError):
    """Slots cannot be taken at all: no such limit (with `strict=True`), more slots asked for
    than the limit has, or `rate_limit()` on a limit that is not a rate limit."""


class AcquireConcurrencySlotTimeoutError(TimeoutError):
    """The slots were not free within `timeout_seconds`."""


# -- leases -------------------------------------------------------------------------------


class Lease:
    """Slots taken together; `release()` gives back the held ones (once, idempotent).

    A lease dropped without being released is released when it is garbage-collected or
    when the interpreter exits, so a slot never outlives its holder's interest in it.
    """

    def __init__(self, store: Store, lease_id: str, usage: list[SlotUsage]) -> None:
        self.id = lease_id
        self.usage = usage
        held = any(not u.per_second for u in usage)
        if held:
            _renewer.add(store, lease_id)
            self._finalizer: Callable[[], Any] = weakref.finalize(
                self, _release_rows, store, lease_id, os.getpid()
            )
        else:
            self._finalizer = _nothing

    def release(self) -> None:
        self._finalizer()

    def __enter__(self) -> Lease:
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()


def release(lease: Lease | None) -> None:
    """Give back `lease`'s slots, if there is a lease (safe to call more than once)."""
    if lease is not None:
        lease.release()


def _nothing() -> None:
    return None


def _release_rows(store: Store, lease_id: str, pid: int) -> None:
    if os.getpid() != pid:
        return  # a forked child exiting: the slots are its parent's
    _renewer.remove(lease_id)
    try:
        store.release_slots(lease_id)
    except Exception as exc:  # the lease expires on its own
        log.warning(
            "Could not release concurrency slots (%s); they are free once this process exits", exc
        )


class _Renewer:
    """The background thread that keeps this process's leases from expiring."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._leases: dict[str, Store] = {}
        self._thread: threading.Thread | None = None

    def add(self, store: Store, lease_id: str) -> None:
        with self._lock:
            self._leases[lease_id] = store
            if self._thread is None or not self._thread.is_alive():
                self._thread = threading.Thread(target=self._loop, name="orch-limits", daemon=True)
                self._thread.start()

    def remove(self, lease_id: str) -> None:
        with self._lock:
            self._leases.pop(lease_id, None)

    def forget_all(self) -> None:
        """In a forked child: the parent's leases are the parent's to renew."""
        self._lock = threading.Lock()
        self._leases = {}
        self._thread = None

    def _loop(self) -> None:
        while True:
            time.sleep(RENEW_EVERY)
            self.renew()

    def renew(self) -> None:
        # Under the lock, so a lease released meanwhile is either renewed before its rows
        # are deleted or not renewed at all: no renewal ever misses rows it expected.
        with self._lock:
            by_store: dict[Store, list[str]] = {}
            for lease_id, store in self._leases.items():
                by_store.setdefault(store, []).append(lease_id)
            for store, lease_ids in by_store.items():
                self._renew(store, lease_ids)

    @staticmethod
    def _renew(store: Store, lease_ids: list[str]) -> None:
        try:
            renewed = store.renew_slots(lease_ids, time.time() + LEASE_SECONDS)
        except Exception as exc:
            log.warning("Could not renew concurrency slots: %s", exc)
            return
        if renewed == 0:
            log.warning(
                "Concurrency slots held by this process are gone: their limit was removed,"
                " or another process reclaimed them after %g s without a renewal",
                LEASE_SECONDS,
            )


_renewer = _Renewer()
if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_renewer.forget_all)


def holder_gone(slot: Slot) -> bool:
    """Whether the process holding `slot` is known to be dead (only knowable on this host)."""
    return slot.host == HOST and not process_alive(slot.pid, slot.pid_start)


# -- acquiring ----------------------------------------------------------------------------


def acquire(
    store: Store,
    names: Sequence[str],
    occupy: int = 1,
    *,
    timeout_seconds: float | None = None,
    task_run_id: str | None = None,
    holder: str | None = None,
    stopped: Callable[[], bool] | None = None,
    on_wait: Callable[[str], None] | None = None,
    sleep: Callable[[float], None] = time.sleep,
) -> Lease:
    """Wait until `occupy` slots of every limit among `names` are free, and take them.

    Names without a limit are ignored. `on_wait(message)` is called when the wait starts
    and whenever the reason changes; `stopped()` is checked between attempts (CancelledRun).
    """
    if occupy < 1:
        raise ValueError("occupy must be 1 or more")
    names = sorted(set(names))
    lease_id = os.urandom(8).hex()
    if not names:
        return Lease(store, lease_id, [])
    deadline = None if timeout_seconds is None else time.monotonic() + timeout_seconds
    shown = None
    while True:
        taken, usage = store.try_acquire_slots(
            lease_id,
            names,
            occupy,
            pid=os.getpid(),
            host=HOST,
            task_run_id=task_run_id,
            holder=holder,
            lease_seconds=LEASE_SECONDS,
            gone=holder_gone,
        )
        if taken:
            return Lease(store, lease_id, usage)
        too_small = [u for u in usage if u.limit < occupy]
        if too_small:
            u = too_small[0]
            raise ConcurrencySlotAcquisitionError(
                f"cannot take {occupy} slots of limit {u.name!r}: it has only {u.limit}"
            )
        message = waiting_message(usage, occupy)
        if on_wait is not None and message != shown:
            on_wait(message)
            shown = message
        if stopped is not None and stopped():
            raise CancelledRun(f"cancelled while {message}")
        if deadline is not None and time.monotonic() >= deadline:
            raise AcquireConcurrencySlotTimeoutError(
                f"timed out after {timeout_seconds:g} s {message}"
            )
        sleep(random.uniform(*POLL_SECONDS))


def waiting_message(usage: Sequence[SlotUsage], occupy: int = 1) -> str:
    """`waiting for a 'db' slot (2/2 in use)`, naming every limit that blocks."""
    blocked = [u for u in usage if u.in_use + occupy > u.limit]

    def count(u: SlotUsage) -> str:
        return f"{u.in_use}/{u.limit} {'in the last second' if u.per_second else 'in use'}"

    if len(blocked) == 1:
        u = blocked[0]
        kind = "rate-limit slot" if u.per_second else "slot"
        what = f"a {u.name!r} {kind}" if occupy == 1 else f"{occupy} {u.name!r} {kind}s"
        return f"waiting for {what} ({count(u)})"
    return "waiting for slots of " + ", ".join(f"{u.name!r} ({count(u)})" for u in blocked)


def acquire_for_task(
    store: Store, run: TaskRun, tags: Sequence[str], stopped: Callable[[], bool]
) -> Lease | None:
    """Take a slot of each limit named by a task run's tags; None when no tag is limited.

    While it waits, the task run is recorded PENDING with a message saying what it waits
    for; the run's state and message are put back before returning.
    """
    if not store.concurrency_limits(sorted(set(tags))):
        return None
    state, message = run.state, run.state_message

    def show(text: str) -> None:
        run.state, run.state_message = StateName.PENDING.value, text
        store.save_task_run(run, [(run.state, text, time.time())])

    try:
        return acquire(
            store, tags, task_run_id=run.id, holder=run.name, stopped=stopped, on_wait=show
        )
    finally:
        run.state, run.state_message = state, message


# -- public API ---------------------------------------------------------------------------


@contextmanager
def concurrency(
    names: str | list[str],
    occupy: int = 1,
    timeout_seconds: float | None = None,
    strict: bool = False,
) -> Iterator[None]:
    """Hold `occupy` slots of each named limit while the block runs, as Prefect's
    `prefect.concurrency.sync.concurrency`.

    The limits are those set with `orch limit set NAME N` in this project's `.orch/`, and
    they hold across every process using it; a task's tags take slots of the same limits.
    A name with no limit set does not limit anything: the block runs at once and a warning
    is logged, or ConcurrencySlotAcquisitionError is raised with `strict=True`. On a rate
    limit (`--per-second`) the block waits for an acquisition and nothing is held.

    Raises AcquireConcurrencySlotTimeoutError (a TimeoutError) if the slots are not free
    within `timeout_seconds` (None: wait as long as it takes). Slots are given back when the
    block exits, however it exits; if the process dies they are reclaimed within seconds.

        with concurrency("db"):
            write_rows(rows)
    """
    store, task_run, stopped = _caller()
    wanted = _limited(store, names, strict)
    lease = acquire(
        store,
        wanted,
        occupy,
        timeout_seconds=timeout_seconds,
        task_run_id=task_run.id if task_run else None,
        holder=task_run.name if task_run else None,
        stopped=stopped,
    )
    try:
        yield
    finally:
        lease.release()


def rate_limit(
    names: str | list[str],
    occupy: int = 1,
    timeout_seconds: float | None = None,
    strict: bool = False,
) -> None:
    """Block until `occupy` acquisitions of each named rate limit pass, as Prefect's
    `prefect.concurrency.sync.rate_limit`.

    A rate limit is set with `orch limit set NAME N --per-second`: at most N acquisitions
    pass in any one second, across every process using this `.orch/`. Naming a concurrency
    limit (set without `--per-second`) raises ConcurrencySlotAcquisitionError; an unknown
    name passes at once with a warning, or raises with `strict=True`.

        for page in pages:
            rate_limit("github-api")
            fetch(page)
    """
    store, task_run, stopped = _caller()
    wanted = _limited(store, names, strict)
    held = [limit.name for limit in store.concurrency_limits(wanted) if not limit.per_second]
    if held:
        raise ConcurrencySlotAcquisitionError(
            f"limit {held[0]!r} is a concurrency limit, not a rate limit: set it with"
            f" `orch limit set {held[0]} N --per-second`"
        )
    acquire(
        store,
        wanted,
        occupy,
        timeout_seconds=timeout_seconds,
        task_run_id=task_run.id if task_run else None,
        holder=task_run.name if task_run else None,
        stopped=stopped,
    )


def _caller() -> tuple[Store, TaskRun | None, Callable[[], bool] | None]:
    """The store of the run in progress (else this project's), its task run, its stop check."""
    flow_ctx = flow_run_var.get()
    task_ctx = task_run_var.get()
    task_run = task_ctx.task_run if task_ctx is not None else None
    if flow_ctx is not None:
        return flow_ctx.store, task_run, flow_ctx.stopped
    return open_store()[0], task_run, None


_warned: set[str] = set()


def _limited(store: Store, names: str | list[str], strict: bool) -> list[str]:
    """The names that have a limit; the others are refused (strict) or warned about once."""
    wanted = sorted({names} if isinstance(names, str) else set(names))
    known = {limit.name for limit in store.concurrency_limits(wanted)}
    missing = [name for name in wanted if name not in known]
    if missing and strict:
        raise ConcurrencySlotAcquisitionError(
            f"no concurrency limit {missing[0]!r}: set one with `orch limit set {missing[0]} N`"
        )
    for name in missing:
        if name not in _warned:
            _warned.add(name)
            log.warning("No concurrency limit %r is set: not limiting it", name)
    return [name for name in wanted if name in known]


# -- listing ------------------------------------------------------------------------------


def limit_rows(store: Store, now: float | None = None) -> list[dict[str, Any]]:
    """Every limit with its usage and holders: the `orch limit ls --json` shape."""
    now = time.time() if now is None else now
    slots: dict[str, list[Slot]] = {}
    for slot in store.concurrency_slots(now):
        slots.setdefault(slot.name, []).append(slot)
    rows = []
    for limit in store.concurrency_limits():
        holders: list[dict[str, Any]] = [
            {
                "pid": slot.pid,
                "host": slot.host,
                "task_run_id": slot.task_run_id,
                "holder": slot.holder,
                "occupy": slot.occupy,
                "acquired": slot.acquired,
                "expires": slot.expires,
                "alive": not (slot.held and holder_gone(slot)),
            }
            for slot in slots.get(limit.name, [])
        ]
        rows.append(
            {
                "name": limit.name,
                "limit": limit.limit,
                "per_second": limit.per_second,
                "in_use": sum(h["occupy"] for h in holders if h["alive"]),
                "holders": holders,
            }
        )
    return rows
