"""Turns SDK spans into store rows and store rows into the JSON-ready span documents the CLI prints."""

from __future__ import annotations

import hashlib
import json
import sqlite3
from collections.abc import Mapping, Sequence
from typing import Any

from opentelemetry.sdk.resources import SERVICE_NAME
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.trace import StatusCode, format_span_id, format_trace_id

from execscope.attributes import CODE_FUNCTION_NAME, CORRELATION_ID, LEGACY_CODE_FUNCTION

SpanRow = tuple[Any, ...]

SPAN_COLUMNS = (
    "trace_id",
    "span_id",
    "parent_span_id",
    "parent_is_remote",
    "name",
    "kind",
    "start_ns",
    "end_ns",
    "duration_ns",
    "status_code",
    "status_message",
    "service",
    "correlation_id",
    "code_function",
    "attributes",
    "events",
    "links",
    "resource_id",
    "scope_name",
    "scope_version",
)


def attributes_json(attributes: Mapping[str, Any] | None) -> str:
    # Attribute values are str/bool/int/float or homogeneous sequences of them (SDK-validated);
    # tuples become lists. ``default=str`` keeps a stray value from failing a whole batch.
    return json.dumps(dict(attributes or {}), separators=(",", ":"), default=str)


def resource_digest(attributes_text: str) -> str:
    return hashlib.sha1(attributes_text.encode(), usedforsecurity=False).hexdigest()


def span_row(span: ReadableSpan, resource_id: int | None) -> SpanRow:
    context = span.context
    assert context is not None  # SDK spans always carry a context
    attributes = span.attributes or {}
    parent = span.parent
    start = span.start_time or 0
    end = span.end_time or start
    events = [
        {"name": event.name, "time_ns": event.timestamp, "attributes": dict(event.attributes or {})}
        for event in span.events
    ]
    links = [
        {
            "trace_id": format_trace_id(link.context.trace_id),
            "span_id": format_span_id(link.context.span_id),
            "attributes": dict(link.attributes or {}),
        }
        for link in span.links
    ]
    function = attributes.get(CODE_FUNCTION_NAME) or attributes.get(LEGACY_CODE_FUNCTION)
    correlation = attributes.get(CORRELATION_ID)
    service = span.resource.attributes.get(SERVICE_NAME) if span.resource else None
    scope = span.instrumentation_scope
    return (
        format_trace_id(context.trace_id),
        format_span_id(context.span_id),
        format_span_id(parent.span_id) if parent is not None else None,
        1 if parent is not None and parent.is_remote else 0,
        span.name,
        span.kind.name,
        start,
        end,
        max(0, end - start),
        span.status.status_code.name,
        span.status.description,
        str(service) if service is not None else None,
        str(correlation) if correlation is not None else None,
        str(function) if function is not None else None,
        attributes_json(attributes),
        json.dumps(events, separators=(",", ":"), default=str),
        json.dumps(links, separators=(",", ":"), default=str),
        resource_id,
        scope.name if scope else None,
        scope.version if scope else None,
    )


def root_rank(row: SpanRow) -> int:
    """0 for a trace's true root, 1 for a local root under a remote parent, 2 otherwise."""
    if row[2] is None:
        return 0
    return 1 if row[3] else 2


def span_document(row: sqlite3.Row, resources: Mapping[int, Mapping[str, Any]]) -> dict[str, Any]:
    """The JSON form of one stored span, as ``execscope show --json`` and ``query --json`` print it."""
    return {
        "trace_id": row["trace_id"],
        "span_id": row["span_id"],
        "parent_span_id": row["parent_span_id"],
        "name": row["name"],
        "kind": row["kind"],
        "start_ns": row["start_ns"],
        "end_ns": row["end_ns"],
        "duration_ns": row["duration_ns"],
        "status": {"code": row["status_code"], "message": row["status_message"]},
        "service": row["service"],
        "correlation_id": row["correlation_id"],
        "attributes": json.loads(row["attributes"]),
        "events": json.loads(row["events"]),
        "links": json.loads(row["links"]),
        "resource": dict(resources.get(row["resource_id"], {})),
        "scope": {"name": row["scope_name"], "version": row["scope_version"]},
    }


def is_error(row: Sequence[Any]) -> bool:
    return bool(row[9] == StatusCode.ERROR.name)
