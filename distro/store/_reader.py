"""Read access to the trace store, safe while applications are writing to it (WAL readers)."""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from execscope.store import _codec, _schema


@dataclass(frozen=True)
class SpanFilter:
    """Conditions of ``execscope query``; every field narrows the result, None means any."""

    service: str | None = None
    name: str | None = None
    function: str | None = None
    correlation_id: str | None = None
    trace_id: str | None = None
    errors_only: bool = False
    since_ns: int | None = None
    min_duration_ns: int | None = None
    limit: int = 100


def _glob(value: str) -> tuple[str, str]:
    """Names may use ``*`` and ``?`` wildcards; anything else matches exactly."""
    if "*" in value or "?" in value:
        return "GLOB", value
    return "=", value


class TraceStore:
    """A reading view of one store folder. Raises ``FileNotFoundError`` when there is no store."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._connection = _schema.connect(path, create=False)
        self._connection.row_factory = sqlite3.Row
        self._resources: dict[int, dict[str, Any]] | None = None

    def close(self) -> None:
        self._connection.close()

    def __enter__(self) -> TraceStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def recent_traces(
        self, limit: int = 20, service: str | None = None, since_ns: int | None = None
    ) -> list[dict[str, Any]]:
        """Trace summaries, newest first."""
        clauses: list[str] = []
        params: list[Any] = []
        if service:
            clauses.append("service = ?")
            params.append(service)
        if since_ns is not None:
            clauses.append("start_ns >= ?")
            params.append(since_ns)
        where = f"WHERE {' AND '.join(clauses)}" if clauses else ""
        rows = self._connection.execute(
            f"SELECT * FROM traces {where} ORDER BY start_ns DESC LIMIT ?", (*params, limit)
        ).fetchall()
        return [_trace_summary(row) for row in rows]

    def trace(self, trace_id: str) -> dict[str, Any] | None:
        """A trace summary with all its spans (ordered by start), or None if the store does not have it."""
        trace_id = trace_id.lower()
        if len(trace_id) < 32:
            # Accept an unambiguous prefix, as people copy short ids from ``execscope traces``.
            matches = self._connection.execute(
                "SELECT trace_id FROM traces WHERE trace_id GLOB ? LIMIT 2", (trace_id + "*",)
            ).fetchall()
            if len(matches) != 1:
                return None
            trace_id = matches[0][0]
        row = self._connection.execute("SELECT * FROM traces WHERE trace_id = ?", (trace_id,)).fetchone()
        if row is None:
            return None
        spans = self._connection.execute(
            "SELECT * FROM spans WHERE trace_id = ? ORDER BY start_ns, span_id", (trace_id,)
        ).fetchall()
        document = _trace_summary(row)
        document["spans"] = [_codec.span_document(span, self._resource_map()) for span in spans]
        return document

    def latest_trace_id(self) -> str | None:
        row = self._connection.execute(
            "SELECT trace_id FROM traces ORDER BY start_ns DESC LIMIT 1"
        ).fetchone()
        return None if row is None else str(row[0])

    def query_spans(self, where: SpanFilter) -> list[dict[str, Any]]:
        """Spans matching every condition of ``where``, newest first."""
        clauses: list[str] = []
        params: list[Any] = []
        for column, value in (
            ("service", where.service),
            ("name", where.name),
            ("code_function", where.function),
            ("correlation_id", where.correlation_id),
        ):
            if value:
                operator, operand = _glob(value)
                clauses.append(f"{column} {operator} ?")
                params.append(operand)
        if where.trace_id:
            clauses.append("trace_id GLOB ?")
            params.append(where.trace_id.lower() + "*")
        if where.errors_only:
            clauses.append("status_code = 'ERROR'")
        if where.since_ns is not None:
            clauses.append("start_ns >= ?")
            params.append(where.since_ns)
        if where.min_duration_ns is not None:
            clauses.append("duration_ns >= ?")
            params.append(where.min_duration_ns)
        sql = "SELECT * FROM spans"
        if clauses:
            sql += " WHERE " + " AND ".join(clauses)
        sql += " ORDER BY start_ns DESC LIMIT ?"
        rows = self._connection.execute(sql, (*params, where.limit)).fetchall()
        return [_codec.span_document(row, self._resource_map()) for row in rows]

    def counters(self) -> dict[str, int]:
        return {
            str(row[0]): int(row[1]) for row in self._connection.execute("SELECT name, value FROM counters")
        }

    def _resource_map(self) -> Mapping[int, Mapping[str, Any]]:
        if self._resources is None:
            self._resources = {
                int(row["id"]): json.loads(row["attributes"])
                for row in self._connection.execute("SELECT id, attributes FROM resources")
            }
        return self._resources


def _trace_summary(row: sqlite3.Row) -> dict[str, Any]:
    return {
        "trace_id": row["trace_id"],
        "root_span_id": row["root_span_id"],
        "root_name": row["root_name"],
        "service": row["service"],
        "start_ns": row["start_ns"],
        "end_ns": row["end_ns"],
        "duration_ns": row["end_ns"] - row["start_ns"],
        "span_count": row["span_count"],
        "error_count": row["error_count"],
    }
