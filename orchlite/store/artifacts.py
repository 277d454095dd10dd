"""Artifacts (`orchlite.artifacts`): versioned per key, attached to the runs that made them
(and deleted with them: `Maintenance.delete_runs_before`)."""

from __future__ import annotations

import time

from ..redaction import active as redaction_active
from ..redaction import redact, redact_optional
from .connection import Database
from .records import Artifact

_COLUMNS = "id, key, type, data, description, flow_run_id, task_run_id, created, updated"


class Artifacts(Database):
    def add_artifact(self, artifact: Artifact) -> None:
        artifact.data = redact(artifact.data) if redaction_active() else artifact.data
        artifact.description = redact_optional(artifact.description)
        with self.transaction() as conn:
            conn.execute(
                f"INSERT INTO artifacts ({_COLUMNS}) VALUES (?,?,?,?,?,?,?,?,?)",
                (
                    artifact.id,
                    artifact.key,
                    artifact.type,
                    artifact.data,
                    artifact.description,
                    artifact.flow_run_id,
                    artifact.task_run_id,
                    artifact.created,
                    artifact.updated,
                ),
            )

    def update_artifact(self, artifact_id: str, data: str, description: str | None) -> bool:
        """Replace an artifact's data (and description, when given); False if it is gone."""
        data = redact(data) if redaction_active() else data
        with self.transaction() as conn:
            cursor = conn.execute(
                "UPDATE artifacts SET data = ?, description = COALESCE(?, description),"
                " updated = ? WHERE id = ?",
                (data, redact_optional(description), time.time(), artifact_id),
            )
            return cursor.rowcount == 1

    def artifacts(
        self,
        *,
        key: str | None = None,
        flow_run_id: str | None = None,
        latest_per_key: bool = False,
        limit: int = 1000,
    ) -> list[Artifact]:
        """Artifacts, newest first: every version of `key`, those of one flow run (with its
        task runs'), or, with `latest_per_key`, the newest version of each key."""
        where: list[str] = []
        args: list[object] = []
        if key is not None:
            where.append("key = ?")
            args.append(key)
        if flow_run_id is not None:
            where.append("flow_run_id = ?")
            args.append(flow_run_id)
        if latest_per_key:
            where.append(
                "key IS NOT NULL AND created = (SELECT MAX(created) FROM artifacts b"
                " WHERE b.key = artifacts.key)"
            )
        sql = f"SELECT {_COLUMNS} FROM artifacts"
        if where:
            sql += " WHERE " + " AND ".join(where)
        sql += " ORDER BY created DESC, id LIMIT ?"
        rows = self.conn.execute(sql, (*args, limit)).fetchall()
        return [Artifact(*row) for row in rows]
