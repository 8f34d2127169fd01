"""The span exporter that writes finished spans into the embedded store.

It runs on the export thread of a batch span processor, never on the application's thread.
Each batch is one SQLite transaction. Several processes may hold a writer on one store at
once: SQLite serialises their transactions. A connection is opened lazily per process id so a
forked child never reuses its parent's connection.
"""

from __future__ import annotations

import logging
import os
import sqlite3
import threading
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from opentelemetry.sdk.resources import SERVICE_NAME, Resource
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export import SpanExporter, SpanExportResult

from execscope.store import _codec, _schema

_logger = logging.getLogger(__name__)

#: How often (at most) a writer checks the size and age limits.
RETENTION_INTERVAL_S = 30.0
#: When over the size limit, delete oldest traces until this fraction of the limit is used.
RETENTION_TARGET = 0.9


class StoreSpanExporter(SpanExporter):
    """Writes spans to the trace store at ``path`` (default: the ``store`` setting)."""

    def __init__(
        self,
        path: Path | None = None,
        *,
        max_size_mb: int | None = None,
        max_age_s: float | None = None,
    ) -> None:
        if path is None or max_size_mb is None or max_age_s is None:
            from execscope.settings import get_settings

            settings = get_settings().settings
            path = settings.store if path is None else path
            max_size_mb = settings.store_max_size_mb if max_size_mb is None else max_size_mb
            max_age_s = settings.store_max_age if max_age_s is None else max_age_s
        self.path = Path(path)
        self.max_size_bytes = max_size_mb * 1024 * 1024
        self.max_age_ns = int(max_age_s * 1e9)
        self._lock = threading.Lock()
        self._connection: sqlite3.Connection | None = None
        self._pid = -1
        self._resource_ids: dict[str, int] = {}
        self._next_retention = 0.0
        self._shutdown = False
        self._failures_logged = 0
        self.spans_written = 0
        self.spans_failed = 0

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        if self._shutdown:
            return SpanExportResult.FAILURE
        with self._lock:
            try:
                connection = self._connect()
                self._write(connection, spans)
                if time.monotonic() >= self._next_retention:
                    self._next_retention = time.monotonic() + RETENTION_INTERVAL_S
                    enforce_retention(connection, self.max_size_bytes, self.max_age_ns)
            except (sqlite3.Error, OSError) as error:
                self.spans_failed += len(spans)
                self._record_failure(error, len(spans))
                return SpanExportResult.FAILURE
        self.spans_written += len(spans)
        return SpanExportResult.SUCCESS

    def force_flush(self, timeout_millis: int = 30000) -> bool:
        return True

    def shutdown(self) -> None:
        with self._lock:
            self._shutdown = True
            if self._connection is not None and self._pid == os.getpid():
                self._connection.close()
            self._connection = None

    def _connect(self) -> sqlite3.Connection:
        if self._connection is None or self._pid != os.getpid():
            # After fork the parent's connection object is abandoned, never closed or used:
            # SQLite forbids carrying a connection across fork.
            self._connection = _schema.connect(self.path, create=True)
            self._pid = os.getpid()
            self._resource_ids = {}
        return self._connection

    def _write(self, connection: sqlite3.Connection, spans: Sequence[ReadableSpan]) -> None:
        connection.execute("BEGIN IMMEDIATE")
        try:
            rows = [_codec.span_row(span, self._resource_id(connection, span.resource)) for span in spans]
            placeholders = ",".join("?" * len(_codec.SPAN_COLUMNS))
            connection.executemany(
                f"INSERT OR REPLACE INTO spans ({','.join(_codec.SPAN_COLUMNS)}) VALUES ({placeholders})",
                rows,
            )
            connection.executemany(_UPSERT_TRACE, _summaries(rows))
            connection.execute(
                "INSERT INTO counters (name, value) VALUES ('spans_written', ?) "
                "ON CONFLICT(name) DO UPDATE SET value = value + excluded.value",
                (len(rows),),
            )
            connection.execute("COMMIT")
        except BaseException:
            connection.execute("ROLLBACK")
            raise

    def _resource_id(self, connection: sqlite3.Connection, resource: Resource | None) -> int | None:
        if resource is None:
            return None
        text = _codec.attributes_json(resource.attributes)
        digest = _codec.resource_digest(text)
        cached = self._resource_ids.get(digest)
        if cached is not None:
            return cached
        service = resource.attributes.get(SERVICE_NAME)
        connection.execute(
            "INSERT OR IGNORE INTO resources (digest, service, attributes) VALUES (?, ?, ?)",
            (digest, str(service) if service is not None else None, text),
        )
        row = connection.execute("SELECT id FROM resources WHERE digest = ?", (digest,)).fetchone()
        self._resource_ids[digest] = int(row[0])
        return int(row[0])

    def _record_failure(self, error: Exception, count: int) -> None:
        # Logged for the first few failures, then every hundredth, so a broken disk does not flood
        # the application's log; the exact number is always in ``spans_failed``.
        self._failures_logged += 1
        if self._failures_logged <= 3 or self._failures_logged % 100 == 0:
            _logger.warning(
                "execscope: could not write %d spans to the trace store at %s (%s); %d spans lost so far",
                count,
                self.path,
                error,
                self.spans_failed,
            )


_UPSERT_TRACE = """
INSERT INTO traces (
    trace_id, root_name, root_span_id, root_rank, service, start_ns, end_ns, span_count, error_count
) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)
ON CONFLICT (trace_id) DO UPDATE SET
    root_name = CASE WHEN excluded.root_rank < traces.root_rank
        OR (excluded.root_rank = traces.root_rank AND excluded.start_ns < traces.start_ns)
        THEN excluded.root_name ELSE traces.root_name END,
    root_span_id = CASE WHEN excluded.root_rank < traces.root_rank
        OR (excluded.root_rank = traces.root_rank AND excluded.start_ns < traces.start_ns)
        THEN excluded.root_span_id ELSE traces.root_span_id END,
    service = CASE WHEN excluded.root_rank < traces.root_rank
        OR (excluded.root_rank = traces.root_rank AND excluded.start_ns < traces.start_ns)
        THEN excluded.service ELSE traces.service END,
    root_rank = min(traces.root_rank, excluded.root_rank),
    start_ns = min(traces.start_ns, excluded.start_ns),
    end_ns = max(traces.end_ns, excluded.end_ns),
    span_count = traces.span_count + excluded.span_count,
    error_count = traces.error_count + excluded.error_count
"""


def _summaries(rows: Sequence[_codec.SpanRow]) -> list[tuple[Any, ...]]:
    """One summary per trace in the batch; the trace's best root candidate names it."""
    by_trace: dict[str, list[_codec.SpanRow]] = {}
    for row in rows:
        by_trace.setdefault(row[0], []).append(row)
    summaries: list[tuple[Any, ...]] = []
    for trace_id, members in by_trace.items():
        root = min(members, key=lambda row: (_codec.root_rank(row), row[6]))
        summaries.append(
            (
                trace_id,
                root[4],
                root[1],
                _codec.root_rank(root),
                root[11],
                min(row[6] for row in members),
                max(row[7] for row in members),
                len(members),
                sum(1 for row in members if _codec.is_error(row)),
            )
        )
    return summaries


def enforce_retention(connection: sqlite3.Connection, max_size_bytes: int, max_age_ns: int) -> int:
    """Delete whole traces past the age limit, then oldest traces until under the size limit.

    Returns the number of traces deleted; each deletion is counted in the store by its reason.
    """
    deleted = _delete_traces(
        connection, "SELECT trace_id FROM traces WHERE end_ns < ?", (time.time_ns() - max_age_ns,), "age"
    )
    while (used := _used_bytes(connection)) > max_size_bytes:
        total = connection.execute("SELECT count(*) FROM traces").fetchone()[0]
        if total == 0:
            break
        excess = 1.0 - (max_size_bytes * RETENTION_TARGET) / used
        batch = max(1, int(total * excess))
        removed = _delete_traces(
            connection, "SELECT trace_id FROM traces ORDER BY start_ns LIMIT ?", (batch,), "size"
        )
        deleted += removed
        if removed == 0:
            break
    if deleted:
        connection.execute("PRAGMA incremental_vacuum")
    return deleted


def _delete_traces(
    connection: sqlite3.Connection, select: str, params: tuple[object, ...], reason: str
) -> int:
    connection.execute("BEGIN IMMEDIATE")
    try:
        ids = [row[0] for row in connection.execute(select, params)]
        if ids:
            connection.executemany("DELETE FROM spans WHERE trace_id = ?", [(i,) for i in ids])
            connection.executemany("DELETE FROM traces WHERE trace_id = ?", [(i,) for i in ids])
            connection.execute(
                "INSERT INTO counters (name, value) VALUES (?, ?) "
                "ON CONFLICT(name) DO UPDATE SET value = value + excluded.value",
                (f"traces_deleted_{reason}", len(ids)),
            )
        connection.execute("COMMIT")
    except BaseException:
        connection.execute("ROLLBACK")
        raise
    return len(ids)


def _used_bytes(connection: sqlite3.Connection) -> int:
    page_size = connection.execute("PRAGMA page_size").fetchone()[0]
    pages = connection.execute("PRAGMA page_count").fetchone()[0]
    free = connection.execute("PRAGMA freelist_count").fetchone()[0]
    return int((pages - free) * page_size)
