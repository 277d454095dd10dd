"""Transaction records (`orchlite.transactions`): the keys of transactions that committed."""

from __future__ import annotations

import time

from .connection import Database


class TransactionRecords(Database):
    def transaction_committed(self, key: str) -> bool:
        """Whether a transaction with this key has committed."""
        row = self.conn.execute(
            "SELECT 1 FROM transaction_records WHERE key = ?", (key,)
        ).fetchone()
        return row is not None

    def record_transaction(self, key: str, flow_run_id: str | None) -> None:
        """Record that the transaction with this key committed (again, with `overwrite`)."""
        with self.transaction() as conn:
            conn.execute(
                "INSERT OR REPLACE INTO transaction_records (key, flow_run_id, committed)"
                " VALUES (?, ?, ?)",
                (key, flow_run_id, time.time()),
            )
