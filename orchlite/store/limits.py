"""Concurrency and rate limits (`orch limit`), and the slots taken against them."""

from __future__ import annotations

import socket
import sqlite3
import time
from collections.abc import Callable, Sequence
from typing import Any

from .connection import Database
from .records import ConcurrencyLimit, Slot, SlotUsage
from .sql import start_of

_SLOT_COLUMNS = (
    "lease, name, occupy, held, pid, host, task_run_id, holder, acquired, expires, pid_start"
)


class Limits(Database):
    """Limits by name, and slots taken against them under leases."""

    def set_concurrency_limit(
        self, name: str, limit: int, *, per_second: bool = False, now: float | None = None
    ) -> None:
        """Create or change the limit `name`; slots already taken stay taken."""
        now = time.time() if now is None else now
        with self.transaction() as conn:
            conn.execute(
                "INSERT INTO concurrency_limits (name, max_slots, per_second, created)"
                " VALUES (?,?,?,?) ON CONFLICT (name) DO UPDATE SET"
                " max_slots = excluded.max_slots, per_second = excluded.per_second",
                (name, limit, int(per_second), now),
            )

    def delete_concurrency_limit(self, name: str) -> bool:
        """Remove a limit and the slots taken against it; False if there was none."""
        with self.transaction() as conn:
            cursor = conn.execute("DELETE FROM concurrency_limits WHERE name = ?", (name,))
            return cursor.rowcount > 0

    def concurrency_limits(self, names: Sequence[str] | None = None) -> list[ConcurrencyLimit]:
        """All limits, or those among `names`, by name."""
        sql = "SELECT name, max_slots, per_second, created FROM concurrency_limits"
        values: tuple[str, ...] = ()
        if names is not None:
            if not names:
                return []
            sql += f" WHERE name IN ({','.join('?' * len(names))})"
            values = tuple(names)
        rows = self.conn.execute(sql + " ORDER BY name", values).fetchall()
        return [ConcurrencyLimit(r[0], r[1], bool(r[2]), r[3]) for r in rows]

    def concurrency_slots(self, now: float | None = None) -> list[Slot]:
        """Slots that count, oldest first (their holders may be gone): those whose lease has
        not expired, and every held slot of this host (see `try_acquire_slots`)."""
        now = time.time() if now is None else now
        rows = self.conn.execute(
            f"SELECT {_SLOT_COLUMNS} FROM concurrency_slots"
            " WHERE expires > ? OR (held = 1 AND host = ?) ORDER BY acquired",
            (now, socket.gethostname()),
        ).fetchall()
        return [_slot(row) for row in rows]

    def try_acquire_slots(
        self,
        lease: str,
        names: Sequence[str],
        occupy: int,
        *,
        pid: int,
        host: str,
        task_run_id: str | None,
        holder: str | None,
        lease_seconds: float,
        gone: Callable[[Slot], bool],
        now: float | None = None,
    ) -> tuple[bool, list[SlotUsage]]:
        """Take `occupy` slots of every existing limit among `names`, or none, in one commit.

        Expired slots of these limits are deleted first, except the held slots of `host`:
        on the holder's own host a slot is held while its process lives, however long it
        went without renewing (stopped with Ctrl-Z, a suspended machine, a clock jump).
        When the slots do not fit, held slots whose holder `gone()` says is dead are
        deleted and the fit is checked again.
        A concurrency slot expires `lease_seconds` from now unless renewed; a rate-limit
        acquisition one second from now. Returns whether the slots were taken and each
        limit's usage (after taking them, or as it blocked). Names without a limit are
        ignored.
        """
        now = time.time() if now is None else now
        with self.transaction() as conn:
            limits = self.concurrency_limits(sorted(set(names)))
            if not limits:
                return True, []
            marks = ",".join("?" * len(limits))
            keys = tuple(limit.name for limit in limits)
            conn.execute(
                f"DELETE FROM concurrency_slots WHERE name IN ({marks}) AND expires <= ?"
                " AND (held = 0 OR host != ?)",
                (*keys, now, host),
            )
            usage = self._slot_usage(conn, limits)
            if any(u.in_use + occupy > u.limit for u in usage):
                rows = conn.execute(
                    f"SELECT {_SLOT_COLUMNS} FROM concurrency_slots"
                    f" WHERE name IN ({marks}) AND held = 1",
                    keys,
                ).fetchall()
                dead = {slot.lease for slot in map(_slot, rows) if gone(slot)}
                if dead:
                    conn.executemany(
                        "DELETE FROM concurrency_slots WHERE lease = ? AND held = 1",
                        [(d,) for d in dead],
                    )
                    usage = self._slot_usage(conn, limits)
            if any(u.in_use + occupy > u.limit for u in usage):
                return False, usage
            conn.executemany(
                f"INSERT INTO concurrency_slots ({_SLOT_COLUMNS}) VALUES (?,?,?,?,?,?,?,?,?,?,?)",
                [
                    (
                        lease,
                        limit.name,
                        occupy,
                        int(not limit.per_second),
                        pid,
                        host,
                        task_run_id,
                        holder,
                        now,
                        now + (1.0 if limit.per_second else lease_seconds),
                        start_of(pid, host),
                    )
                    for limit in limits
                ],
            )
            for u in usage:
                u.in_use += occupy
            return True, usage

    @staticmethod
    def _slot_usage(conn: sqlite3.Connection, limits: list[ConcurrencyLimit]) -> list[SlotUsage]:
        marks = ",".join("?" * len(limits))
        taken = dict(
            conn.execute(
                "SELECT name, SUM(occupy) FROM concurrency_slots"
                f" WHERE name IN ({marks}) GROUP BY name",
                tuple(limit.name for limit in limits),
            ).fetchall()
        )
        return [
            SlotUsage(limit.name, int(taken.get(limit.name) or 0), limit.limit, limit.per_second)
            for limit in limits
        ]

    def renew_slots(self, leases: Sequence[str], expires: float) -> int:
        """Push back the expiry of these leases' held slots; how many slot rows were renewed."""
        if not leases:
            return 0
        marks = ",".join("?" * len(leases))
        with self.transaction() as conn:
            cursor = conn.execute(
                f"UPDATE concurrency_slots SET expires = ? WHERE lease IN ({marks}) AND held = 1",
                (expires, *leases),
            )
            return cursor.rowcount

    def release_slots(self, lease: str) -> None:
        """Give back a lease's held slots (rate-limit acquisitions keep counting)."""
        with self.transaction() as conn:
            conn.execute("DELETE FROM concurrency_slots WHERE lease = ? AND held = 1", (lease,))


def _slot(row: Sequence[Any]) -> Slot:
    return Slot(row[0], row[1], row[2], bool(row[3]), *row[4:])
