"""Applies attribute masking to a whole SDK span (its attributes and its events' attributes)."""

from __future__ import annotations

from opentelemetry.attributes import BoundedAttributes
from opentelemetry.sdk.trace import Event, ReadableSpan

from execscope.capture import Redactor
from execscope.processors._redaction import SpanMasking, as_masking, redact_attributes


def _bounded(masked: dict[str, object], original: object) -> BoundedAttributes:
    attributes = BoundedAttributes(maxlen=None, attributes=masked, immutable=True, max_value_len=None)  # type: ignore[arg-type]
    attributes.dropped = getattr(original, "dropped", 0)
    return attributes


def redact_span(span: ReadableSpan, masking: SpanMasking | Redactor) -> ReadableSpan:
    """``span`` itself when nothing in it is sensitive, otherwise a masked copy.

    ``masking`` says what to mask (see :class:`SpanMasking`); a bare ``Redactor`` masks
    sensitive values only.
    """
    masking = as_masking(masking)
    if not masking.enabled:
        return span
    attributes = redact_attributes(span.attributes, masking)
    events = None
    for index, event in enumerate(span.events):
        masked = redact_attributes(event.attributes, masking)
        if masked is not None:
            if events is None:
                events = list(span.events)
            events[index] = Event(event.name, masked, event.timestamp, limit=None)
    if attributes is None and events is None:
        return span
    return ReadableSpan(
        name=span.name,
        context=span.context,
        parent=span.parent,
        resource=span.resource,
        attributes=_bounded(attributes, span.attributes) if attributes is not None else span.attributes,
        events=events if events is not None else span.events,
        links=span.links,
        kind=span.kind,
        status=span.status,
        start_time=span.start_time,
        end_time=span.end_time,
        instrumentation_scope=span.instrumentation_scope,
    )
