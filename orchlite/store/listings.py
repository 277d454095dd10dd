"""Listings of flow runs: by id prefix, newest first, paged, per flow, unfinished."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from ..errors import RunNotFoundError
from .connection import Database
from .records import FlowRun, RunKey, RunMark
from .sql import FLOW_RUN_COLUMNS, UNFINISHED_STATES, like_pattern

IDS_CHUNK = 500
"""Runs asked for in one query (SQLite bounds a query's parameters)."""


class RunListings(Database):
    """Flow runs read many at a time, for the CLI, the TUI and crash recovery."""

    def resolve_run_id(self, ref: str) -> str:
        """A full run id from an id, a unique id prefix, or `last`."""
        ref = ref.strip()
        if ref == "last":
            # `+` keeps SQLite off the parent index: walking the created index from the
            # newest end finds the answer at once; sorting every top-level run does not.
            row = self.conn.execute(
                "SELECT id FROM flow_runs WHERE +parent_run_id IS NULL"
                " ORDER BY created DESC LIMIT 1"
            ).fetchone()
            if row is None:
                raise RunNotFoundError("no runs recorded yet")
            return str(row[0])
        if not ref or not all(c in "0123456789abcdef" for c in ref.lower()):
            raise RunNotFoundError(f"no run matches {ref!r}: run ids are hexadecimal")
        prefix = ref.lower()
        rows = self.conn.execute(
            "SELECT id FROM flow_runs WHERE id >= ? AND id < ? ORDER BY id LIMIT 6",
            (prefix, prefix + "g"),
        ).fetchall()
        if not rows:
            raise RunNotFoundError(f"no run matches {ref!r}")
        if len(rows) > 1:
            shown = ", ".join(r[0][:12] for r in rows[:5])
            raise RunNotFoundError(f"{ref!r} matches several runs ({shown}…): give more of the id")
        return str(rows[0][0])

    def list_flow_runs(
        self,
        *,
        flow: str | Sequence[str] | None = None,
        state: str | Sequence[str] | None = None,
        limit: int = 20,
        include_subflows: bool = True,
        tags: Sequence[str] | None = None,
    ) -> list[FlowRun]:
        """Flow runs, newest first (with `tags`: those carrying any of them)."""
        where, values = _flow_and_state(flow, state)
        if tags:
            marks = ", ".join("?" * len(tags))
            where.append(f"EXISTS (SELECT 1 FROM json_each(tags) WHERE value IN ({marks}))")
            values += list(tags)
        if not include_subflows:
            where.append("parent_run_id IS NULL")
        clause = f"WHERE {' AND '.join(where)}" if where else ""
        rows = self.conn.execute(
            f"SELECT {FLOW_RUN_COLUMNS} FROM flow_runs {clause} ORDER BY created DESC LIMIT ?",
            (*values, limit),
        ).fetchall()
        return [FlowRun(*row) for row in rows]

    def flow_runs_page(
        self,
        *,
        flow: str | Sequence[str] | None = None,
        state: str | Sequence[str] | None = None,
        text: str = "",
        tags: Sequence[str] = (),
        since: float | None = None,
        until: float | None = None,
        before: RunKey | None = None,
        down_to: RunKey | None = None,
        limit: int = -1,
    ) -> list[FlowRun]:
        """Flow runs newest first by (created, id), for keyset paging (-1: no limit).

        The filters are those of `count_flow_runs`. `before` keeps the runs older than that
        key (the next page), `down_to` those at that key or newer (the pages already shown,
        read again). Each bound is a range on the created index, so a page costs the same
        however deep it is.
        """
        where, values = _page_filters(flow, state, text, tags, since, until)
        if before is not None:
            where.append("created <= ? AND (created < ? OR id < ?)")
            values += [before[0], before[0], before[1]]
        if down_to is not None:
            where.append("created >= ? AND (created > ? OR id >= ?)")
            values += [down_to[0], down_to[0], down_to[1]]
        clause = f"WHERE {' AND '.join(where)}" if where else ""
        rows = self.conn.execute(
            f"SELECT {FLOW_RUN_COLUMNS} FROM flow_runs {clause}"
            " ORDER BY created DESC, id DESC LIMIT ?",
            (*values, limit),
        ).fetchall()
        return [FlowRun(*row) for row in rows]

    def count_flow_runs(
        self,
        *,
        flow: str | Sequence[str] | None = None,
        state: str | Sequence[str] | None = None,
        text: str = "",
        tags: Sequence[str] = (),
        since: float | None = None,
        until: float | None = None,
    ) -> int:
        """How many flow runs match: of `flow` (a name or any of several), in `state` (one or
        any of several), whose id, name, flow, trigger, state or message contains `text`
        (ignoring ASCII case), carrying every one of `tags`, created at or after `since` and
        before `until`."""
        where, values = _page_filters(flow, state, text, tags, since, until)
        clause = f"WHERE {' AND '.join(where)}" if where else ""
        row = self.conn.execute(f"SELECT COUNT(*) FROM flow_runs {clause}", values).fetchone()
        return int(row[0])

    def latest_runs_per_flow(self, *, flows: int = 8, runs: int = 20) -> list[list[FlowRun]]:
        """The newest `runs` runs of each of the `flows` flows that ran most recently, the
        flow that ran last first. Index seeks only: the flow names are walked one by one
        on the (flow, created) index rather than grouping every run."""
        names = self.conn.execute(
            "WITH RECURSIVE names(flow) AS ("
            " SELECT MIN(flow_name) FROM flow_runs"
            " UNION ALL SELECT (SELECT MIN(flow_name) FROM flow_runs WHERE flow_name > flow)"
            " FROM names WHERE flow IS NOT NULL)"
            " SELECT flow, (SELECT MAX(created) FROM flow_runs WHERE flow_name = flow) AS last"
            " FROM names WHERE flow IS NOT NULL ORDER BY last DESC LIMIT ?",
            (flows,),
        ).fetchall()
        return [
            [
                FlowRun(*row)
                for row in self.conn.execute(
                    f"SELECT {FLOW_RUN_COLUMNS} FROM flow_runs WHERE flow_name = ?"
                    " ORDER BY created DESC LIMIT ?",
                    (name, runs),
                )
            ]
            for name, _last in names
        ]

    def child_flow_runs(self, run_id: str) -> list[FlowRun]:
        rows = self.conn.execute(
            f"SELECT {FLOW_RUN_COLUMNS} FROM flow_runs WHERE parent_run_id = ?"
            " ORDER BY parent_position, created",
            (run_id,),
        ).fetchall()
        return [FlowRun(*row) for row in rows]

    def retries_of(self, run_id: str) -> list[FlowRun]:
        """The runs that retried `run_id` (`orch retry`, the daemon's retries), oldest first."""
        rows = self.conn.execute(
            f"SELECT {FLOW_RUN_COLUMNS} FROM flow_runs WHERE retry_of = ? ORDER BY created",
            (run_id,),
        ).fetchall()
        return [FlowRun(*row) for row in rows]

    def run_marks(self, run_ids: Sequence[str]) -> dict[str, RunMark]:
        """(state, started, ended) of each of these flow runs that exists: what changes as a
        run moves on, read by primary key so that a view can tell cheaply whether the runs
        it shows changed."""
        marks: dict[str, RunMark] = {}
        for start in range(0, len(run_ids), IDS_CHUNK):
            chunk = run_ids[start : start + IDS_CHUNK]
            for run_id, *mark in self.conn.execute(
                "SELECT id, state, started, ended FROM flow_runs"
                f" WHERE id IN ({','.join('?' * len(chunk))})",
                tuple(chunk),
            ):
                marks[run_id] = (mark[0], mark[1], mark[2])
        return marks

    def count_runs_created(self, oldest: float, newest: float, limit: int) -> int:
        """How many flow runs were created from `oldest` to `newest`, counting up to `limit`
        (an index range): a view that counted the span of runs it shows tells by counting
        again whether any was deleted, without naming each."""
        row = self.conn.execute(
            "SELECT COUNT(*) FROM (SELECT 1 FROM flow_runs WHERE created BETWEEN ? AND ? LIMIT ?)",
            (oldest, newest, limit),
        ).fetchone()
        return int(row[0])

    def count_existing_runs(self, run_ids: Sequence[str]) -> int:
        """How many of these flow runs exist, by primary key: a view tells by it whether
        runs it shows were deleted (retention) without reading them."""
        found = 0
        for start in range(0, len(run_ids), IDS_CHUNK):
            chunk = run_ids[start : start + IDS_CHUNK]
            row = self.conn.execute(
                f"SELECT COUNT(*) FROM flow_runs WHERE id IN ({','.join('?' * len(chunk))})",
                tuple(chunk),
            ).fetchone()
            found += int(row[0])
        return found

    def unfinished_flow_runs(self) -> list[FlowRun]:
        """Runs not in a terminal state (for crash recovery).

        Asked by the positive list of states, so the state index answers it without reading
        every finished run.
        """
        marks = ",".join("?" * len(UNFINISHED_STATES))
        rows = self.conn.execute(
            f"SELECT {FLOW_RUN_COLUMNS} FROM flow_runs WHERE state IN ({marks})",
            UNFINISHED_STATES,
        ).fetchall()
        return [FlowRun(*row) for row in rows]


def _flow_and_state(
    flow: str | Sequence[str] | None, state: str | Sequence[str] | None
) -> tuple[list[str], list[Any]]:
    """WHERE terms and their values for the listings' flow and state filters (one or any of
    several values each)."""
    where: list[str] = []
    values: list[Any] = []
    for column, wanted in (("flow_name", flow), ("state", state)):
        if wanted is None:
            continue
        names = [wanted] if isinstance(wanted, str) else list(wanted)
        where.append(f"{column} IN ({', '.join('?' * len(names))})")
        values += names
    return where, values


TEXT_COLUMNS = ("id", "name", "flow_name", "trigger", "state", "state_message")
"""The columns a text search looks in."""


def _page_filters(
    flow: str | Sequence[str] | None,
    state: str | Sequence[str] | None,
    text: str,
    tags: Sequence[str],
    since: float | None,
    until: float | None,
) -> tuple[list[str], list[Any]]:
    """WHERE terms and their values for the filters of `RunListings.count_flow_runs`."""
    where, values = _flow_and_state(flow, state)
    if text:
        where.append("(" + " OR ".join(f"{c} LIKE ? ESCAPE '\\'" for c in TEXT_COLUMNS) + ")")
        values += [like_pattern(text)] * len(TEXT_COLUMNS)
    for tag in tags:  # every one of them
        where.append("EXISTS (SELECT 1 FROM json_each(tags) WHERE value = ?)")
        values.append(tag)
    if since is not None:
        where.append("created >= ?")
        values.append(since)
    if until is not None:
        where.append("created < ?")
        values.append(until)
    return where, values
