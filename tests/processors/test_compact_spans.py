"""The pipeline holds ended spans as compact tuples: lossless, and invisible to the garbage collector."""

from __future__ import annotations

import gc

from opentelemetry.exporter.otlp.proto.common.trace_encoder import encode_spans
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import ReadableSpan, SpanLimits, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import (
    Link,
    NonRecordingSpan,
    SpanContext,
    SpanKind,
    Status,
    StatusCode,
    TraceFlags,
    TraceState,
    set_span_in_context,
)

from execscope.processors._compact import (
    ATTRIBUTES,
    ORIGIN,
    Origins,
    compact_span,
    is_error,
    is_local_root,
    to_readable,
)
from execscope.processors._otlp_encoding import encode_compact_request


def _finished_spans() -> list[ReadableSpan]:
    """Spans with everything a span can carry, dropped counts included, made by the real SDK."""
    memory = InMemorySpanExporter()
    limits = SpanLimits(max_span_attributes=3, max_events=1, max_links=1, max_event_attributes=1)
    provider = TracerProvider(resource=Resource.create({"service.name": "compact"}), span_limits=limits)
    provider.add_span_processor(SimpleSpanProcessor(memory))
    tracer = provider.get_tracer("compact.tests", "1.2", schema_url="https://example.com/schema")
    state = TraceState([("k", "v")])
    linked = SpanContext(7, 8, is_remote=True, trace_flags=TraceFlags(1), trace_state=state)
    remote_parent = SpanContext(5, 6, is_remote=True, trace_flags=TraceFlags(1))

    with tracer.start_as_current_span(
        "request",
        context=set_span_in_context(NonRecordingSpan(remote_parent)),
        kind=SpanKind.SERVER,
        links=[Link(linked, {"link.why": "retry"}), Link(linked)],
    ) as root:
        root.set_attributes({"a": 1, "b": 2.5, "c": True, "d": "dropped: over the limit"})
        root.add_event("first", {"tags": ("x", "y"), "n": 3})
        root.add_event("second: over the limit")
        with tracer.start_as_current_span("child", kind=SpanKind.CLIENT) as child:
            child.set_status(Status(StatusCode.ERROR, "it broke"))
            child.set_attribute("blob", b"\x00\x01")
    return list(memory.get_finished_spans())


def _decoded(payload: bytes) -> ExportTraceServiceRequest:
    return ExportTraceServiceRequest.FromString(payload)


def test_a_compact_span_encodes_to_the_official_encoders_request() -> None:
    spans = _finished_spans()
    compact = [compact_span(span) for span in spans]
    assert _decoded(encode_compact_request(compact)) == encode_spans(spans)


def test_back_to_an_sdk_span_loses_nothing_an_exporter_reads() -> None:
    spans = _finished_spans()
    rebuilt = [to_readable(compact_span(span)) for span in spans]
    assert encode_spans(rebuilt) == encode_spans(spans)
    for original, copy in zip(spans, rebuilt, strict=True):
        assert copy.dropped_attributes == original.dropped_attributes
        assert copy.dropped_events == original.dropped_events
        assert copy.dropped_links == original.dropped_links
        assert copy.context.trace_flags == original.context.trace_flags
        assert copy.context.trace_state == original.context.trace_state
        # Equal, not always the same object: equal resources and scopes are kept once.
        assert copy.resource == original.resource
        assert copy.instrumentation_scope == original.instrumentation_scope


def test_a_held_compact_span_is_not_tracked_by_the_garbage_collector() -> None:
    held = [compact_span(span) for span in _finished_spans()]
    for _ in range(4):  # nested tuples are untracked level by level, one collection each at most
        gc.collect()
    assert not any(gc.is_tracked(span) for span in held)


def test_roots_and_errors_are_read_from_the_compact_form() -> None:
    root, child = sorted(_finished_spans(), key=lambda span: span.name)[::-1][:2]
    assert root.name == "request" and child.name == "child"
    assert is_local_root(compact_span(root))  # its parent is remote
    assert not is_local_root(compact_span(child))
    assert is_error(compact_span(child)) and not is_error(compact_span(root))


def test_equal_resources_and_scopes_share_one_origin_however_many_tracers_are_made() -> None:
    origins = Origins()
    provider = TracerProvider(resource=Resource.create({"service.name": "per-call tracers"}))
    memory = InMemorySpanExporter()
    provider.add_span_processor(SimpleSpanProcessor(memory))
    for _ in range(3):
        with provider.get_tracer("made.per.call").start_as_current_span("call"):
            pass
        with provider.get_tracer("another.scope").start_as_current_span("call"):
            pass
    keys = [compact_span(span, origins)[ORIGIN] for span in memory.get_finished_spans()]
    assert keys == [0, 1] * 3
    assert len(origins.entries) == 2


def test_a_span_class_with_its_own_attribute_property_is_read_through_it() -> None:
    class Renamed(ReadableSpan):
        @property
        def attributes(self):  # type: ignore[no-untyped-def, override]
            return {"from": "the property"}

    span = Renamed("x", context=SpanContext(1, 2, is_remote=False), attributes={"from": "the field"})
    assert compact_span(span)[ATTRIBUTES] == (("from", "the property"),)
