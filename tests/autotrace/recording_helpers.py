"""Reading recorded spans in the recording tests (test_recording*.py): attributes, parentage."""

from __future__ import annotations

import textwrap
from typing import Any

from opentelemetry.sdk.trace import ReadableSpan

from execscope.attributes import CORRELATION_ID


def source(text: str) -> str:
    """A module's source written indented inside a test."""
    return textwrap.dedent(text).lstrip()


def attr(span: ReadableSpan, key: str) -> Any:
    """The attribute ``key`` of ``span``; fails if the span does not have it."""
    assert span.attributes is not None and key in span.attributes, f"{span.name} has no {key!r}"
    return span.attributes[key]


def attributes(span: ReadableSpan) -> dict[str, Any]:
    return dict(span.attributes or {})


def captured(span: ReadableSpan) -> dict[str, Any]:
    """The attributes execscope captured from values: arguments, return value, state diff."""
    return {k: v for k, v in attributes(span).items() if k.startswith("execscope.") and k != CORRELATION_ID}


def event(span: ReadableSpan, index: int = 0) -> dict[str, Any]:
    """The attributes of the span's event number ``index``."""
    assert len(span.events) > index, f"{span.name} has {len(span.events)} events"
    return dict(span.events[index].attributes or {})


def assert_child(child: ReadableSpan, parent: ReadableSpan) -> None:
    assert child.parent is not None, f"{child.name} has no parent"
    assert child.context is not None and parent.context is not None
    assert child.parent.span_id == parent.context.span_id, f"{child.name} is not a child of {parent.name}"
    assert child.context.trace_id == parent.context.trace_id


def assert_root(span: ReadableSpan) -> None:
    assert span.parent is None, f"{span.name} has a parent"


def span_id(span: ReadableSpan) -> int:
    assert span.context is not None
    return int(span.context.span_id)


def trace_id(span: ReadableSpan) -> int:
    assert span.context is not None
    return int(span.context.trace_id)
