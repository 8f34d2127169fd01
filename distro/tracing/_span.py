"""The span execscope's tracers make: the SDK's span, cheaper to fill and to end."""

from __future__ import annotations

import threading
from collections.abc import Callable, Mapping, Sequence
from time import time_ns
from typing import Any, Final

from opentelemetry import trace as trace_api
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import Event, Span, SpanLimits, SpanProcessor, sampling
from opentelemetry.sdk.util import BoundedList
from opentelemetry.sdk.util.instrumentation import InstrumentationInfo, InstrumentationScope
from opentelemetry.trace.status import Status, StatusCode
from opentelemetry.util import types

from execscope.tracing._attributes import FastAttributes

_UNSET: Final = Status(StatusCode.UNSET)


class ExecscopeSpan(Span):
    """An ``opentelemetry.sdk.trace.Span`` (every method, property and field is the SDK's) whose
    attribute and event storage is :class:`FastAttributes`, and whose ``end`` hands the span
    itself to the processors instead of a ``ReadableSpan`` copy of its fields.

    Handing over the span is safe because an ended span refuses every change through its API,
    exactly as the SDK's does; the copy it saves held the same attribute, event and link objects
    anyway.
    """

    _attributes: FastAttributes
    _events: BoundedList[Event]

    def __init__(  # deliberately not Span.__init__; every field that sets is set here
        self,
        name: str,
        context: trace_api.SpanContext,
        parent: trace_api.SpanContext | None,
        sampler: sampling.Sampler,
        resource: Resource,
        attributes: types.Attributes,
        span_processor: SpanProcessor,
        kind: trace_api.SpanKind,
        links: Sequence[trace_api.Link],
        instrumentation_info: InstrumentationInfo | None,
        instrumentation_scope: InstrumentationScope | None,
        limits: SpanLimits,
        record_exception: bool,
        set_status_on_exception: bool,
        record_end_metrics: Callable[[], None] | None,
    ) -> None:
        self._name = name
        self._context = context
        self._kind = kind
        self._instrumentation_info = instrumentation_info
        self._instrumentation_scope = instrumentation_scope
        self._parent = parent
        self._start_time: int | None = None
        self._end_time: int | None = None
        self._resource = resource
        self._status = _UNSET
        self._sampler = sampler
        self._trace_config = None
        self._record_exception = record_exception
        self._set_status_on_exception = set_status_on_exception
        self._span_processor = span_processor
        self._limits = limits
        self._lock = threading.Lock()
        self._attributes = FastAttributes(
            limits.max_span_attributes, attributes, False, limits.max_span_attribute_length
        )
        self._events = BoundedList(limits.max_events)
        self._links = self._new_links(links) if links else BoundedList(limits.max_links)
        self._record_end_metrics = record_end_metrics

    def set_attribute(self, key: str, value: types.AnyValue) -> None:
        if self._end_time is not None:
            super().set_attribute(key, value)  # the SDK's warning
            return
        self._attributes[key] = value

    def set_attributes(self, attributes: Mapping[str, types.AnyValue]) -> None:
        if self._end_time is not None:
            super().set_attributes(attributes)
            return
        self._attributes._set_items(attributes)

    def add_event(self, name: str, attributes: types.Attributes = None, timestamp: int | None = None) -> None:
        if self._end_time is not None:
            super().add_event(name, attributes, timestamp)
            return
        limits = self._limits
        self._events.append(
            Event(
                name,
                FastAttributes(limits.max_event_attributes, attributes, True, limits.max_attribute_length),
                timestamp,
            )
        )

    def end(self, end_time: int | None = None) -> None:
        with self._lock:
            if self._start_time is None or self._end_time is not None:
                ended = False
            else:
                self._end_time = end_time if end_time is not None else time_ns()
                self._attributes._immutable = True
                ended = True
        if not ended:
            super().end(end_time)  # the SDK's error or warning
            return
        if self._record_end_metrics:
            self._record_end_metrics()
        processor: Any = self._span_processor
        processor._on_ending(self)
        processor.on_end(self)
