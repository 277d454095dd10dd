"""Variables (`orchlite.variables.Variable`): named JSON values with tags."""

from __future__ import annotations

import time

from .connection import Database


class Variables(Database):
    def set_variable(self, name: str, value: str, tags: str, *, overwrite: bool) -> bool:
        """Store a variable (JSON `value` and `tags`); False if it exists and not `overwrite`."""
        now = time.time()
        with self.transaction() as conn:
            if overwrite:
                conn.execute(
                    "INSERT INTO variables (name, value, tags, created, updated)"
                    " VALUES (?, ?, ?, ?, ?) ON CONFLICT(name) DO UPDATE SET"
                    " value = excluded.value, tags = excluded.tags, updated = excluded.updated",
                    (name, value, tags, now, now),
                )
                return True
            cursor = conn.execute(
                "INSERT OR IGNORE INTO variables (name, value, tags, created, updated)"
                " VALUES (?, ?, ?, ?, ?)",
                (name, value, tags, now, now),
            )
            return cursor.rowcount == 1

    def get_variable(self, name: str) -> tuple[str, str, float] | None:
        """(JSON value, JSON tags, when it was last set), or None."""
        row = self.conn.execute(
            "SELECT value, tags, updated FROM variables WHERE name = ?", (name,)
        ).fetchone()
        return None if row is None else (row[0], row[1], row[2])

    def delete_variable(self, name: str) -> bool:
        with self.transaction() as conn:
            return conn.execute("DELETE FROM variables WHERE name = ?", (name,)).rowcount == 1

    def list_variables(self) -> list[tuple[str, str, str, float]]:
        """(name, JSON value, JSON tags, updated) of every variable, by name."""
        rows = self.conn.execute(
            "SELECT name, value, tags, updated FROM variables ORDER BY name"
        ).fetchall()
        return [(r[0], r[1], r[2], r[3]) for r in rows]
