"""Applies attribute masking to a whole held span (its attributes and its events' attributes)."""

from __future__ import annotations

from typing import Any

from execscope.capture import Redactor
from execscope.processors._compact import ATTRIBUTES, EVENTS, CompactSpan, Pairs, with_attributes
from execscope.processors._redaction import SpanMasking, as_masking, known_clean, redact_attributes


def _masked_pairs(pairs: Pairs, masking: SpanMasking) -> Pairs | None:
    """The masked pairs, or None when nothing in them changes."""
    if not pairs:
        return None
    changed = redact_attributes(dict(pairs), masking)
    return tuple(changed.items()) if changed is not None else None


def redact_span(span: CompactSpan, masking: SpanMasking | Redactor) -> CompactSpan:
    """``span`` itself when nothing in it is sensitive, otherwise a masked copy.

    ``masking`` says what to mask (see :class:`SpanMasking`); a bare ``Redactor`` masks
    sensitive values only.
    """
    masking = as_masking(masking)
    if not masking.enabled:
        return span
    if known_clean(span, masking):
        return span
    attributes = _masked_pairs(span[ATTRIBUTES], masking)
    events: list[tuple[Any, ...]] | None = None
    for index, event in enumerate(span[EVENTS]):
        masked = _masked_pairs(event[2], masking)
        if masked is not None:
            if events is None:
                events = list(span[EVENTS])
            events[index] = (event[0], event[1], masked, event[3])
    if attributes is None and events is None:
        return span
    return with_attributes(
        span,
        attributes if attributes is not None else span[ATTRIBUTES],
        tuple(events) if events is not None else None,
    )
