"""The schema's migrations: an ordered list of named SQL scripts.

`PRAGMA user_version` is the number of migrations applied. Migrations are only ever
appended: a store's version counts positions in this list, so an entry is never reordered,
removed or edited once released.
"""

from __future__ import annotations

from typing import NamedTuple


class Migration(NamedTuple):
    """One step of the schema: a name to refer to it by, and its SQL script."""

    name: str
    sql: str


MIGRATIONS: list[Migration] = [
    # 1: the first schema.
    Migration(
        "first schema",
        """
    CREATE TABLE flow_runs (
        id TEXT PRIMARY KEY,
        flow_name TEXT NOT NULL,
        name TEXT NOT NULL,
        target TEXT,
        parameters TEXT NOT NULL DEFAULT '{}',
        state TEXT NOT NULL,
        state_message TEXT,
        trigger TEXT NOT NULL DEFAULT 'manual',
        parent_run_id TEXT REFERENCES flow_runs(id) ON DELETE SET NULL,
        parent_position INTEGER,
        retry_of TEXT,
        created REAL NOT NULL,
        started REAL,
        ended REAL,
        attempts INTEGER NOT NULL DEFAULT 0,
        pid INTEGER,
        host TEXT,
        heartbeat REAL,
        deadline REAL,
        result_ref TEXT,
        result_data BLOB,
        result_serializer TEXT,
        tags TEXT NOT NULL DEFAULT '[]'
    );
    CREATE INDEX flow_runs_created ON flow_runs(created);
    CREATE INDEX flow_runs_flow ON flow_runs(flow_name, created);
    CREATE INDEX flow_runs_state ON flow_runs(state, created);
    CREATE INDEX flow_runs_parent ON flow_runs(parent_run_id);

    -- One b-tree per table on the hot path: a task run is keyed by (flow run, call
    -- position), and history rows are clustered by run, so recording a task costs one
    -- commit that touches two b-trees.
    CREATE TABLE task_runs (
        flow_run_id TEXT NOT NULL,
        position INTEGER NOT NULL,
        id TEXT NOT NULL,
        standalone INTEGER NOT NULL DEFAULT 0,
        task_key TEXT NOT NULL,
        name TEXT NOT NULL,
        dynamic_key TEXT NOT NULL,
        state TEXT NOT NULL,
        state_message TEXT,
        attempts INTEGER NOT NULL DEFAULT 0,
        inputs_hash TEXT,
        cache_key TEXT,
        result_ref TEXT,
        result_data BLOB,
        result_serializer TEXT,
        error_type TEXT,
        error_message TEXT,
        traceback TEXT,
        created REAL NOT NULL,
        started REAL,
        ended REAL,
        tags TEXT NOT NULL DEFAULT '[]',
        PRIMARY KEY (flow_run_id, position)
    ) WITHOUT ROWID;

    -- run_id is the flow run (or a standalone task run), position is NULL for rows about
    -- the flow run itself.
    CREATE TABLE state_history (
        run_id TEXT NOT NULL,
        seq INTEGER NOT NULL,
        position INTEGER,
        state TEXT NOT NULL,
        message TEXT,
        ts REAL NOT NULL,
        PRIMARY KEY (run_id, seq)
    ) WITHOUT ROWID;

    CREATE TABLE logs (
        id INTEGER PRIMARY KEY,
        flow_run_id TEXT,
        task_run_id TEXT,
        task_name TEXT,
        ts REAL NOT NULL,
        level INTEGER NOT NULL,
        logger TEXT NOT NULL,
        message TEXT NOT NULL
    );
    CREATE INDEX logs_flow ON logs(flow_run_id, id);

    CREATE TABLE cache_entries (
        key TEXT PRIMARY KEY,
        task_key TEXT NOT NULL,
        task_run_id TEXT,
        result_ref TEXT,
        result_data BLOB,
        result_serializer TEXT NOT NULL,
        created REAL NOT NULL,
        expires REAL
    );
    """,
    ),
    # 2: the task runs a task run waited for (positions in its flow run, as JSON).
    Migration(
        "task run upstream",
        """
    ALTER TABLE task_runs ADD COLUMN upstream TEXT NOT NULL DEFAULT '[]';
    """,
    ),
    # 3: concurrency and rate limits (`orch limit`) and the slots taken against them.
    Migration(
        "concurrency limits",
        """
    CREATE TABLE concurrency_limits (
        name TEXT PRIMARY KEY,
        max_slots INTEGER NOT NULL CHECK (max_slots >= 1),
        per_second INTEGER NOT NULL DEFAULT 0,
        created REAL NOT NULL
    );

    -- One row per limit a lease takes. A concurrency slot (held = 1) counts until it is
    -- released, its lease expires unrenewed, or its holder process is gone. A rate-limit
    -- acquisition (held = 0) counts for one second after it was taken, whatever happens.
    CREATE TABLE concurrency_slots (
        lease TEXT NOT NULL,
        name TEXT NOT NULL REFERENCES concurrency_limits(name) ON DELETE CASCADE,
        occupy INTEGER NOT NULL,
        held INTEGER NOT NULL,
        pid INTEGER NOT NULL,
        host TEXT NOT NULL,
        task_run_id TEXT,
        holder TEXT,
        acquired REAL NOT NULL,
        expires REAL NOT NULL,
        PRIMARY KEY (lease, name)
    ) WITHOUT ROWID;
    CREATE INDEX concurrency_slots_name ON concurrency_slots(name, expires);
    """,
    ),
    # 4: schedules: the newest slot handled per schedule key, and the slot each
    # scheduled run was claimed for (`orch daemon`).
    Migration(
        "schedule marks and slots",
        """
    CREATE TABLE schedule_marks (
        key TEXT PRIMARY KEY,
        last_fired REAL NOT NULL,
        updated REAL NOT NULL
    );
    CREATE TABLE schedule_slots (
        run_id TEXT PRIMARY KEY REFERENCES flow_runs(id) ON DELETE CASCADE,
        key TEXT NOT NULL,
        slot REAL NOT NULL
    );
    CREATE INDEX schedule_slots_key ON schedule_slots(key, slot);
    """,
    ),
    # 5: flow-level retries under the daemon: the flow's retry policy as its run started
    # (JSON {"retries": n, "delays": [...]}), and the attempts made by the earlier runs of
    # a retry chain (a run the daemon scheduled after a crash continues their count).
    Migration(
        "flow retry policy",
        """
    ALTER TABLE flow_runs ADD COLUMN retry_policy TEXT;
    ALTER TABLE flow_runs ADD COLUMN prior_attempts INTEGER NOT NULL DEFAULT 0;
    """,
    ),
    # 6: task runs and state history keyed by integers, so that recording a task appends
    # to one page of each table. Every run id (a flow run, or a standalone task run) gets
    # a number that is never reused, a task run's `num` is (run number << 32) | call
    # position, and a history row's `num` is (run number << 32) | its index in the run.
    # The WITHOUT ROWID tables they replace kept whole rows in their interior pages, and
    # most appends rebalanced several pages.
    Migration(
        "run numbers",
        """
    CREATE TABLE run_numbers (
        num INTEGER PRIMARY KEY AUTOINCREMENT,
        run_id TEXT NOT NULL UNIQUE
    );
    INSERT INTO run_numbers (run_id) SELECT id FROM flow_runs ORDER BY created, id;
    INSERT OR IGNORE INTO run_numbers (run_id)
        SELECT flow_run_id FROM task_runs GROUP BY flow_run_id ORDER BY MIN(created);
    INSERT OR IGNORE INTO run_numbers (run_id)
        SELECT run_id FROM state_history GROUP BY run_id ORDER BY MIN(seq);

    CREATE TABLE task_runs_by_num (
        num INTEGER PRIMARY KEY,
        flow_run_id TEXT NOT NULL,
        position INTEGER NOT NULL,
        id TEXT NOT NULL,
        standalone INTEGER NOT NULL DEFAULT 0,
        task_key TEXT NOT NULL,
        name TEXT NOT NULL,
        dynamic_key TEXT NOT NULL,
        state TEXT NOT NULL,
        state_message TEXT,
        attempts INTEGER NOT NULL DEFAULT 0,
        inputs_hash TEXT,
        cache_key TEXT,
        result_ref TEXT,
        result_data BLOB,
        result_serializer TEXT,
        error_type TEXT,
        error_message TEXT,
        traceback TEXT,
        created REAL NOT NULL,
        started REAL,
        ended REAL,
        tags TEXT NOT NULL DEFAULT '[]',
        upstream TEXT NOT NULL DEFAULT '[]'
    );
    INSERT INTO task_runs_by_num
        SELECT (n.num << 32) | t.position, t.flow_run_id, t.position, t.id, t.standalone,
            t.task_key, t.name, t.dynamic_key, t.state, t.state_message, t.attempts,
            t.inputs_hash, t.cache_key, t.result_ref, t.result_data, t.result_serializer,
            t.error_type, t.error_message, t.traceback, t.created, t.started, t.ended,
            t.tags, t.upstream
        FROM task_runs t JOIN run_numbers n ON n.run_id = t.flow_run_id ORDER BY 1;
    DROP TABLE task_runs;
    ALTER TABLE task_runs_by_num RENAME TO task_runs;

    CREATE TABLE state_history_by_num (
        num INTEGER PRIMARY KEY,
        run_id TEXT NOT NULL,
        position INTEGER,
        state TEXT NOT NULL,
        message TEXT,
        ts REAL NOT NULL
    );
    INSERT INTO state_history_by_num
        SELECT (n.num << 32) | ROW_NUMBER() OVER (PARTITION BY h.run_id ORDER BY h.seq),
            h.run_id, h.position, h.state, h.message, h.ts
        FROM state_history h JOIN run_numbers n ON n.run_id = h.run_id ORDER BY 1;
    DROP TABLE state_history;
    ALTER TABLE state_history_by_num RENAME TO state_history;
    """,
    ),
    # 7: a short redacted text of each stored result, made when it was persisted, so that
    # nothing has to unpickle a result to show it.
    Migration(
        "result previews",
        """
    ALTER TABLE flow_runs ADD COLUMN result_preview TEXT;
    ALTER TABLE task_runs ADD COLUMN result_preview TEXT;
    ALTER TABLE cache_entries ADD COLUMN result_preview TEXT;
    """,
    ),
    # 8 (process starts): beside each recorded pid, when that process started
    # (`processes.process_start`), so a pid since reused by another process is not taken
    # for a run's process or a slot's holder.
    Migration(
        "process starts",
        """
    ALTER TABLE flow_runs ADD COLUMN pid_start TEXT;
    ALTER TABLE concurrency_slots ADD COLUMN pid_start TEXT;
    """,
    ),
    # 9: a `with transaction(key=...)` block that committed, so the next one with that key
    # begins committed.
    Migration(
        "transaction records",
        """
    CREATE TABLE transaction_records (
        key TEXT PRIMARY KEY,
        flow_run_id TEXT,
        committed REAL NOT NULL
    ) WITHOUT ROWID;
    """,
    ),
    # 10: `orchlite.variables.Variable`, named JSON values with tags.
    Migration(
        "variables",
        """
    CREATE TABLE variables (
        name TEXT PRIMARY KEY,
        value TEXT NOT NULL,
        tags TEXT NOT NULL DEFAULT '[]',
        created REAL NOT NULL,
        updated REAL NOT NULL
    ) WITHOUT ROWID;
    """,
    ),
    # 11: `orchlite.artifacts`, versioned per key, attached to the run that made them and
    # deleted with it.
    Migration(
        "artifacts",
        """
    CREATE TABLE artifacts (
        id TEXT PRIMARY KEY,
        key TEXT,
        type TEXT NOT NULL,
        data TEXT NOT NULL,
        description TEXT,
        flow_run_id TEXT,
        task_run_id TEXT,
        created REAL NOT NULL,
        updated REAL NOT NULL
    );
    CREATE INDEX artifacts_by_key ON artifacts (key, created);
    CREATE INDEX artifacts_by_run ON artifacts (flow_run_id, created);
    """,
    ),
    # 12: a flow run paused by `pause_flow_run`, the input it waits for (a JSON schema), and
    # the resume request another process leaves for it with its verdict.
    Migration(
        "pauses",
        """
    CREATE TABLE run_pauses (
        flow_run_id TEXT PRIMARY KEY,
        key TEXT,
        schema TEXT,
        deadline REAL NOT NULL,
        status TEXT NOT NULL,
        input TEXT,
        verdict TEXT,
        updated REAL NOT NULL
    ) WITHOUT ROWID;
    """,
    ),
    # 13: beside each claimed slot, the name of what claimed it (the schedule's name, or how
    # `orch schedules` describes it, or the trigger's description), for
    # `orchlite.runtime.deployment.name`, also once the declaration changed.
    Migration(
        "slot names",
        """
    ALTER TABLE schedule_slots ADD COLUMN name TEXT;
    """,
    ),
    # 14: the input each earlier pause of a run accepted, by pause key, so a suspended run
    # relaunched from its start answers those pauses again without waiting.
    Migration(
        "pause answers",
        """
    ALTER TABLE run_pauses ADD COLUMN answers TEXT NOT NULL DEFAULT '{}';
    """,
    ),
    # 15: how a run starts (JSON of `shell_jobs.RunOptions`: its working directory, and a shell
    # job's timeout and retries), so a relaunch, a retry and `orch retry` start it alike.
    Migration(
        "run options",
        """
    ALTER TABLE flow_runs ADD COLUMN run_options TEXT;
    """,
    ),
    # 16: a schedule paused with `orch schedule pause NAME`, by name, and when.
    Migration(
        "schedule pauses",
        """
    CREATE TABLE schedule_pauses (
        name TEXT PRIMARY KEY,
        paused REAL NOT NULL
    ) WITHOUT ROWID;
    """,
    ),
    # 17: the alerts claimed for a run: one row per (run, alert rule, state), written before the
    # alert is sent, so that of the processes that see a run end (its own, its supervisor,
    # the daemon) exactly one sends it.
    Migration(
        "alert deliveries",
        """
    CREATE TABLE alert_deliveries (
        flow_run_id TEXT NOT NULL REFERENCES flow_runs(id) ON DELETE CASCADE,
        rule TEXT NOT NULL,
        state TEXT NOT NULL,
        claimed REAL NOT NULL,
        pid INTEGER NOT NULL,
        host TEXT NOT NULL,
        PRIMARY KEY (flow_run_id, rule, state)
    ) WITHOUT ROWID;
    """,
    ),
    # 18: history rows without the run's id, which their number already holds (run number
    # << 32): a third of each row, so recording a task run appends fewer bytes and fills a
    # new page a third as often.
    Migration(
        "history rows without run ids",
        """
    CREATE TABLE state_history_numbered (
        num INTEGER PRIMARY KEY,
        position INTEGER,
        state TEXT NOT NULL,
        message TEXT,
        ts REAL NOT NULL
    );
    INSERT INTO state_history_numbered SELECT num, position, state, message, ts
        FROM state_history ORDER BY num;
    DROP TABLE state_history;
    ALTER TABLE state_history_numbered RENAME TO state_history;
    """,
    ),
    # 19: when the in-process retry of a RETRYING flow run is due, written with that state,
    # so the daemon stopping during the retry's delay schedules it for the same time.
    Migration(
        "retry due times",
        """
    ALTER TABLE flow_runs ADD COLUMN retry_due REAL;
    """,
    ),
    # 20: a task run's state changes as lines of its own row (`history.history_lines`), so
    # recording a task run writes one page of one table; state_history keeps the flow runs'.
    Migration(
        "task run histories in their rows",
        """
    ALTER TABLE task_runs ADD COLUMN history TEXT NOT NULL DEFAULT '';
    CREATE TABLE task_run_histories (num INTEGER PRIMARY KEY, history TEXT NOT NULL);
    INSERT INTO task_run_histories
        SELECT task_num, history FROM (
            SELECT task_num,
                group_concat(line, '') OVER (PARTITION BY task_num ORDER BY num) AS history,
                lead(num) OVER (PARTITION BY task_num ORDER BY num) AS later
            FROM (
                SELECT num, ((num >> 32) << 32) | position AS task_num,
                    state || ' ' || CAST(round(ts * 1000000) AS INTEGER)
                        || coalesce(' ' || replace(replace(message,
                        char(92), char(92, 92)), char(10), char(92, 110)), '')
                        || char(10) AS line
                FROM state_history WHERE position IS NOT NULL))
        WHERE later IS NULL;
    UPDATE task_runs SET history = (SELECT history FROM task_run_histories h
        WHERE h.num = task_runs.num) WHERE num IN (SELECT num FROM task_run_histories);
    DROP TABLE task_run_histories;
    CREATE TABLE flow_history (
        num INTEGER PRIMARY KEY,
        state TEXT NOT NULL,
        message TEXT,
        ts REAL NOT NULL
    );
    INSERT INTO flow_history SELECT num, state, message, ts FROM state_history
        WHERE position IS NULL ORDER BY num;
    DROP TABLE state_history;
    ALTER TABLE flow_history RENAME TO state_history;
    """,
    ),
]
SCHEMA_VERSION = len(MIGRATIONS)
