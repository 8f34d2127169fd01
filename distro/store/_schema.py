"""The trace store's SQLite schema.

Why SQLite (the standard library's ``sqlite3``) and not DuckDB: several processes of one
application (prefork workers, ``multiprocessing`` children) must write to one store at once,
and a reader (``execscope traces``) must work while they do. SQLite in WAL mode serialises
writers across processes with a file lock and lets readers run beside them; DuckDB allows only
one read-write process per database file. SQLite also ships with Python: no extra dependency.
"""

from __future__ import annotations

import sqlite3
from pathlib import Path

SCHEMA_VERSION = 1
DATABASE_NAME = "traces.db"
#: How long a writer or reader waits for another process's write lock before giving up.
BUSY_TIMEOUT_MS = 10_000

_DDL = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS resources (
    id INTEGER PRIMARY KEY,
    digest TEXT NOT NULL UNIQUE,
    service TEXT,
    attributes TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS spans (
    trace_id TEXT NOT NULL,
    span_id TEXT NOT NULL,
    parent_span_id TEXT,
    parent_is_remote INTEGER NOT NULL DEFAULT 0,
    name TEXT NOT NULL,
    kind TEXT NOT NULL,
    start_ns INTEGER NOT NULL,
    end_ns INTEGER NOT NULL,
    duration_ns INTEGER NOT NULL,
    status_code TEXT NOT NULL,
    status_message TEXT,
    service TEXT,
    correlation_id TEXT,
    code_function TEXT,
    attributes TEXT NOT NULL,
    events TEXT NOT NULL,
    links TEXT NOT NULL,
    resource_id INTEGER REFERENCES resources(id),
    scope_name TEXT,
    scope_version TEXT,
    PRIMARY KEY (trace_id, span_id)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS spans_by_start ON spans (start_ns);
CREATE INDEX IF NOT EXISTS spans_by_correlation ON spans (correlation_id) WHERE correlation_id IS NOT NULL;
CREATE INDEX IF NOT EXISTS spans_by_service ON spans (service, start_ns);
CREATE INDEX IF NOT EXISTS spans_by_name ON spans (name, start_ns);
CREATE INDEX IF NOT EXISTS spans_by_function ON spans (code_function) WHERE code_function IS NOT NULL;
CREATE INDEX IF NOT EXISTS spans_by_error ON spans (start_ns) WHERE status_code = 'ERROR';
CREATE TABLE IF NOT EXISTS traces (
    trace_id TEXT PRIMARY KEY,
    root_name TEXT,
    root_span_id TEXT,
    root_rank INTEGER NOT NULL,
    service TEXT,
    start_ns INTEGER NOT NULL,
    end_ns INTEGER NOT NULL,
    span_count INTEGER NOT NULL,
    error_count INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS traces_by_start ON traces (start_ns);
CREATE INDEX IF NOT EXISTS traces_by_end ON traces (end_ns);
CREATE TABLE IF NOT EXISTS counters (name TEXT PRIMARY KEY, value INTEGER NOT NULL);
"""


def database_path(store_dir: Path) -> Path:
    return store_dir / DATABASE_NAME


def connect(store_dir: Path, *, create: bool) -> sqlite3.Connection:
    """Open the store; with ``create`` make the folder and schema first (idempotent, multi-process safe)."""
    path = database_path(store_dir)
    if create:
        store_dir.mkdir(parents=True, exist_ok=True)
    elif not path.exists():
        raise FileNotFoundError(f"no trace store at {store_dir}")
    connection = sqlite3.connect(
        path, timeout=BUSY_TIMEOUT_MS / 1000, isolation_level=None, check_same_thread=False
    )
    connection.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
    if create:
        # auto_vacuum must be chosen before the first table exists; later it is a no-op.
        connection.execute("PRAGMA auto_vacuum = INCREMENTAL")
        connection.execute("PRAGMA journal_mode = WAL")
        connection.execute("PRAGMA synchronous = NORMAL")
        connection.execute("BEGIN IMMEDIATE")
        try:
            for statement in _DDL.split(";"):
                if statement.strip():
                    connection.execute(statement)
            connection.execute(
                "INSERT OR IGNORE INTO meta (key, value) VALUES ('schema_version', ?)", (str(SCHEMA_VERSION),)
            )
            connection.execute("COMMIT")
        except BaseException:
            connection.execute("ROLLBACK")
            raise
    return connection
