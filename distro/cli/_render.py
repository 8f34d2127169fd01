"""Terminal rendering of traces and spans: trees and colour on a terminal, plain text when piped."""

from __future__ import annotations

import datetime as dt
import json
from collections import Counter
from collections.abc import Iterable, Sequence
from typing import Any

import click

from execscope.attributes import (
    ARGS_PREFIX,
    ERROR_FRAME,
    HTTP_PATH_PREFIX,
    HTTP_QUERY_PREFIX,
    HTTP_REQUEST_BODY,
    MESSAGE,
    REPLY,
    RETURN_VALUE,
    STATE_DIFF,
)

_TTY_BRANCHES = ("├─ ", "└─ ", "│  ", "   ")
_PLAIN_BRANCHES = ("|- ", "`- ", "|  ", "   ")


def format_duration(ns: int) -> str:
    if ns < 1_000:
        return f"{ns}ns"
    if ns < 1_000_000:
        return f"{ns / 1_000:.1f}µs"
    if ns < 1_000_000_000:
        return f"{ns / 1_000_000:.2f}ms"
    return f"{ns / 1_000_000_000:.3f}s"


def format_time(ns: int) -> str:
    return dt.datetime.fromtimestamp(ns / 1e9).isoformat(sep=" ", timespec="milliseconds")


def traces_table(traces: list[dict[str, Any]], color: bool) -> str:
    header = ("TRACE ID", "ROOT", "SERVICE", "START", "DURATION", "SPANS", "ERRORS")
    rows = [
        (
            trace["trace_id"],
            trace["root_name"] or "?",
            trace["service"] or "?",
            format_time(trace["start_ns"]),
            format_duration(trace["duration_ns"]),
            str(trace["span_count"]),
            str(trace["error_count"]),
        )
        for trace in traces
    ]
    lines = _table(header, rows)
    if color:
        lines[0] = click.style(lines[0], bold=True)
        lines = [lines[0]] + [
            click.style(line, fg="red") if trace["error_count"] else line
            for line, trace in zip(lines[1:], traces, strict=True)
        ]
    return "\n".join(lines)


def spans_table(spans: list[dict[str, Any]], color: bool) -> str:
    header = ("START", "TRACE ID", "SPAN ID", "SERVICE", "NAME", "DURATION", "STATUS")
    rows = [
        (
            format_time(span["start_ns"]),
            span["trace_id"],
            span["span_id"],
            span["service"] or "?",
            span["name"],
            format_duration(span["duration_ns"]),
            span["status"]["code"],
        )
        for span in spans
    ]
    lines = _table(header, rows)
    if color:
        lines[0] = click.style(lines[0], bold=True)
    return "\n".join(lines)


def table(header: tuple[str, ...], rows: Sequence[tuple[str, ...]]) -> str:
    """Left-aligned columns separated by two spaces, as the other listing commands print them."""
    return "\n".join(_table(header, rows))


def _table(header: tuple[str, ...], rows: Sequence[tuple[str, ...]]) -> list[str]:
    widths = [max(len(cell) for cell in column) for column in zip(header, *rows, strict=False)]
    return [
        "  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip()
        for row in (header, *rows)
    ]


def trace_tree(trace: dict[str, Any], color: bool, all_attributes: bool = False) -> str:
    """The span tree of one trace with each span's duration and what execscope captured for it."""
    spans = trace["spans"]
    ids = {span["span_id"] for span in spans}
    children: dict[str | None, list[dict[str, Any]]] = {}
    for span in spans:
        parent = span["parent_span_id"] if span["parent_span_id"] in ids else None
        children.setdefault(parent, []).append(span)
    head = (
        f"trace {trace['trace_id']}  {trace['service'] or '?'}  {format_time(trace['start_ns'])}  "
        f"{format_duration(trace['duration_ns'])}  {trace['span_count']} spans, {trace['error_count']} errors"
    )
    # The trace's correlation id is shown once, in the heading; a span shows its own only when
    # it differs (work of another unit joined into this trace).
    correlations = Counter(span.get("correlation_id") for span in spans if span.get("correlation_id"))
    shared = correlations.most_common(1)[0][0] if correlations else None
    if shared:
        head += f"  correlation {shared}"
    lines = [click.style(head, bold=True) if color else head]
    branches = _TTY_BRANCHES if color else _PLAIN_BRANCHES
    _walk(children, None, "", lines, (branches, color, all_attributes, shared))
    return "\n".join(lines)


def _walk(
    children: dict[str | None, list[dict[str, Any]]],
    parent: str | None,
    prefix: str,
    lines: list[str],
    style: tuple[tuple[str, str, str, str], bool, bool, str | None],
) -> None:
    branches, color, all_attributes, shared_correlation = style
    members = children.get(parent, [])
    for index, span in enumerate(members):
        last = index == len(members) - 1
        error = span["status"]["code"] == "ERROR"
        title = f"{span['name']}  {format_duration(span['duration_ns'])}"
        if error:
            title += "  ERROR" + (
                f": {one_line(span['status']['message'])}" if span["status"]["message"] else ""
            )
        if color:
            title = click.style(title, fg="red" if error else None, bold=parent is None)
        lines.append(prefix + branches[1 if last else 0] + title)
        detail_prefix = prefix + branches[3 if last else 2]
        for detail in map(one_line, span_details(span, all_attributes, shared_correlation)):
            lines.append(detail_prefix + (click.style(detail, dim=True) if color else detail))
        _walk(children, span["span_id"], detail_prefix, lines, style)


def one_line(text: str) -> str:
    """``text`` on one line (a multi-line error message would break the tree's indentation)."""
    return text.replace("\r\n", "\n").replace("\n", " ⏎ ") if "\n" in text else text


def _prefixed(attributes: dict[str, Any], prefix: str) -> dict[str, Any]:
    return {key[len(prefix) :]: value for key, value in attributes.items() if key.startswith(prefix)}


def span_details(
    span: dict[str, Any], all_attributes: bool = False, shared_correlation: str | None = None
) -> Iterable[str]:
    """Captured arguments, return value, state diff and exceptions, one line each; with
    ``all_attributes`` also every other attribute. The correlation id is shown unless it is
    ``shared_correlation`` (the trace's, shown in its heading)."""
    attributes = span["attributes"]
    request = {**_prefixed(attributes, HTTP_PATH_PREFIX), **_prefixed(attributes, HTTP_QUERY_PREFIX)}
    if request:
        yield "request: " + ", ".join(f"{name}={value}" for name, value in request.items())
    if HTTP_REQUEST_BODY in attributes:
        yield f"body: {attributes[HTTP_REQUEST_BODY]}"
    arguments = _prefixed(attributes, ARGS_PREFIX)
    if arguments:
        yield "args: " + ", ".join(f"{name}={value}" for name, value in arguments.items())
    if MESSAGE in attributes:
        yield f"message: {attributes[MESSAGE]}"
    if RETURN_VALUE in attributes:
        yield f"return: {attributes[RETURN_VALUE]}"
    if REPLY in attributes:
        yield f"reply: {attributes[REPLY]}"
    if STATE_DIFF in attributes:
        yield "state: " + _state_diff(attributes[STATE_DIFF])
    if ERROR_FRAME in attributes:
        yield f"raised at: {attributes[ERROR_FRAME]}"
    if all_attributes:
        for key, value in attributes.items():
            if not key.startswith("execscope."):
                yield f"{key}: {value}"
    correlation = span.get("correlation_id")
    if correlation and correlation != shared_correlation:
        yield f"correlation: {correlation}"
    for event in span["events"]:
        if event["name"] == "exception":
            kind = event["attributes"].get("exception.type", "?")
            yield f"exception: {kind}: {event['attributes'].get('exception.message', '')}"
        else:
            shown = ", ".join(f"{key}={value}" for key, value in event["attributes"].items())
            yield f"event: {event['name']}" + (f" ({shown})" if shown else "")


def _state_diff(value: Any) -> str:
    """A state diff document in one line.

    The document is ``{"changed": {key: [old, new]}, "added": {key: new}, "removed": {key: old}}``.
    """
    try:
        diff = json.loads(value) if isinstance(value, str) else value
    except ValueError:
        return str(value)
    if not isinstance(diff, dict):
        return str(value)
    parts = []
    for key, (old, new) in sorted((diff.get("changed") or {}).items()):
        parts.append(f"{key}: {old} -> {new}")
    for key, new in sorted((diff.get("added") or {}).items()):
        parts.append(f"+{key}={new}")
    for key in sorted(diff.get("removed") or {}):
        parts.append(f"-{key}")
    return "; ".join(parts) or "(unchanged)"
