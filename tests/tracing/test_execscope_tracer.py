"""execscope's tracer provider records exactly what the SDK's records, through the same API.

Each scenario runs once on the SDK's ``TracerProvider`` and once on ``ExecscopeTracerProvider``,
both with the same sequential ids, and the finished spans, dropped counts and logged warnings
must be equal (timestamps aside: the two runs happen at different times).
"""

from __future__ import annotations

import asyncio
import logging
import re
import traceback
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from opentelemetry import trace
from opentelemetry.attributes import BoundedAttributes
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import ReadableSpan, SpanLimits, SpanProcessor, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.sdk.trace.id_generator import IdGenerator
from opentelemetry.sdk.trace.sampling import ALWAYS_OFF, ParentBased, TraceIdRatioBased
from opentelemetry.trace import Link, SpanContext, SpanKind, Status, StatusCode, TraceFlags, TraceState

from execscope.processors._compact import compact_span
from execscope.tracing import ExecscopeTracerProvider
from execscope.tracing._attributes import FastAttributes
from execscope.tracing._span import ExecscopeSpan
from execscope.tracing._tracer import ExecscopeTracer

Scenario = Callable[[trace.Tracer], None]


class SequentialIds(IdGenerator):
    def __init__(self) -> None:
        self.next = 1

    def generate_span_id(self) -> int:
        self.next += 1
        return self.next

    def generate_trace_id(self) -> int:
        self.next += 1
        return self.next << 64


def _record(
    provider_class: type[TracerProvider], scenario: Scenario, **provider_options: Any
) -> tuple[list[ReadableSpan], list[dict[str, Any]]]:
    memory = InMemorySpanExporter()
    provider = provider_class(
        resource=Resource.create({"service.name": "equivalence"}),
        id_generator=SequentialIds(),
        **provider_options,
    )
    provider.add_span_processor(SimpleSpanProcessor(memory))
    tracer = provider.get_tracer("equivalence.tests", "1.0", schema_url="https://example.com/s")
    try:
        scenario(tracer)
    except Exception as error:  # the scenario's escaping exception is part of what is compared
        memory.export([])  # keep what finished
        scenario_error: Exception | None = error
    else:
        scenario_error = None
    spans = list(memory.get_finished_spans())
    return spans, [_comparable(span) for span in spans] + [{"raised": repr(scenario_error)}]


#: A traceback entry in the OpenTelemetry packages: two lines, the location and the code.
_SDK_FRAME = re.compile(r'  File "[^"]*/opentelemetry/[^"]*", line \d+, in \w+\n    [^\n]*\n')


def _without_sdk_frames(attributes: Any) -> list[tuple[str, Any]]:
    """The SDK's ``start_as_current_span`` is a generator the exception is thrown into, so its
    stack traces (and the exception the caller sees) gain two of the SDK's own frames; execscope's
    adds none. Everything else in the trace is the same."""
    return [
        (key, _SDK_FRAME.sub("", value) if key == "exception.stacktrace" else value)
        for key, value in (attributes or {}).items()
    ]


def _comparable(span: ReadableSpan) -> dict[str, Any]:
    """Everything an exporter reads, timestamps aside; attributes in their order."""

    def context(value: SpanContext | None) -> Any:
        if value is None:
            return None
        return (value.trace_id, value.span_id, int(value.trace_flags), value.trace_state, value.is_remote)

    return {
        "name": span.name,
        "context": context(span.context),
        "parent": context(span.parent),
        "kind": span.kind,
        "status": (span.status.status_code, span.status.description),
        "attributes": list((span.attributes or {}).items()),
        "events": [(event.name, _without_sdk_frames(event.attributes)) for event in span.events],
        "links": [(context(link.context), list((link.attributes or {}).items())) for link in span.links],
        "dropped": (span.dropped_attributes, span.dropped_events, span.dropped_links),
        "resource": dict(span.resource.attributes),
        "scope": span.instrumentation_scope,
    }


def assert_same_recording(scenario: Scenario, caplog: pytest.LogCaptureFixture, **options: Any) -> None:
    caplog.set_level(logging.WARNING)
    _, expected = _record(TracerProvider, scenario, **options)
    expected_logs = [record.getMessage() for record in caplog.records]
    caplog.clear()
    spans, actual = _record(ExecscopeTracerProvider, scenario, **options)
    assert actual == expected
    assert [record.getMessage() for record in caplog.records] == expected_logs
    assert all(isinstance(span, ExecscopeSpan) for span in spans)


def plain_attributes(tracer: trace.Tracer) -> None:
    with tracer.start_as_current_span(
        "op", attributes={"a": 1, "b": 2.5, "c": True, "d": "x", "e": b"\x00"}
    ) as span:
        span.set_attribute("a", "replaced moves to the end")
        span.set_attributes({"f": None, "g": -3})
        span.add_event("checkpoint", {"n": 1})
        span.add_event("bare")


def values_the_sdk_cleans(tracer: trace.Tracer) -> None:
    with tracer.start_as_current_span(
        "op", attributes={"list": [1, 2], "": "empty key", "nested": {"k": [1]}}
    ) as span:
        span.set_attribute("object", object())  # type: ignore[arg-type]
        span.set_attribute(3, "not a string key")  # type: ignore[arg-type]
        span.set_attributes({"tuple": ("a", "b"), 4: "int key"})  # type: ignore[dict-item]
        span.add_event("cleaned", {"seq": ["x"], "obj": object()})  # type: ignore[dict-item]


def over_the_limits(tracer: trace.Tracer) -> None:
    with tracer.start_as_current_span("op", attributes={"a": 1, "b": 2, "c": 3, "d": 4}) as span:
        span.set_attribute("long", "x" * 50)
        span.set_attribute("e", 5)
        span.set_attributes({"f": 6, "g": "y" * 20})
        for index in range(4):
            span.add_event(f"event {index}", {"a": 1, "b": 2, "c": "z" * 30})
        span.add_link(SpanContext(9, 10, is_remote=True, trace_flags=TraceFlags(1)), {"x": 1})
        span.add_link(SpanContext(9, 11, is_remote=True), {"x": 2, "y": 3, "z": 4})


def nesting_status_and_exceptions(tracer: trace.Tracer) -> None:
    with tracer.start_as_current_span("root", kind=SpanKind.SERVER) as root:
        root.update_name("renamed root")
        with tracer.start_as_current_span("child", kind=SpanKind.CLIENT) as child:
            child.set_status(Status(StatusCode.OK))
            child.set_status(StatusCode.ERROR, "ignored after OK")
        with pytest.raises(ValueError), tracer.start_as_current_span("fails"):
            raise ValueError("recorded with its status")
        quiet = {"record_exception": False, "set_status_on_exception": False}
        with pytest.raises(KeyError), tracer.start_as_current_span("quiet", **quiet):  # type: ignore[arg-type]
            raise KeyError("neither recorded nor an error status")
        try:
            with tracer.start_as_current_span("interrupted"):
                raise KeyboardInterrupt
        except KeyboardInterrupt:
            pass
        root.record_exception(RuntimeError("recorded by hand"), {"extra": 1})
    raise LookupError("escapes the scenario")


def ended_spans_refuse_changes(tracer: trace.Tracer) -> None:
    span = tracer.start_span("ended")
    span.end()
    span.set_attribute("late", 1)
    span.set_attributes({"later": 2})
    span.add_event("too late")
    span.set_status(StatusCode.ERROR)
    span.update_name("no")
    span.end()
    with tracer.start_as_current_span("not ended on exit", end_on_exit=False) as kept:
        pass
    kept.set_attribute("still open", True)
    kept.end()


def remote_parents_links_and_explicit_times(tracer: trace.Tracer) -> None:
    remote = SpanContext(
        0xABC << 64, 0xDEF, is_remote=True, trace_flags=TraceFlags(1), trace_state=TraceState([("k", "v")])
    )
    context = trace.set_span_in_context(trace.NonRecordingSpan(remote))
    links = [Link(remote, {"why": "retry"}), Link(trace.INVALID_SPAN_CONTEXT)]
    with tracer.start_as_current_span("continued", context=context, links=links, start_time=10) as span:
        span.set_attribute("n", 1)
    explicit = tracer.start_span("explicit", start_time=100)
    explicit.end(end_time=200)


def used_as_a_decorator(tracer: trace.Tracer) -> None:
    @tracer.start_as_current_span("decorated", attributes={"kind": "sync"})
    def work(value: int) -> int:
        trace.get_current_span().set_attribute("value", value)
        return value * 2

    @tracer.start_as_current_span("decorated async")
    async def work_async() -> str:
        return "done"

    assert work(2) == 4 and work(3) == 6
    assert asyncio.run(work_async()) == "done"


SCENARIOS = [
    plain_attributes,
    values_the_sdk_cleans,
    nesting_status_and_exceptions,
    ended_spans_refuse_changes,
    remote_parents_links_and_explicit_times,
    used_as_a_decorator,
]


@pytest.mark.parametrize("scenario", SCENARIOS, ids=lambda scenario: scenario.__name__)
def test_records_what_the_sdk_records(scenario: Scenario, caplog: pytest.LogCaptureFixture) -> None:
    assert_same_recording(scenario, caplog)


def test_limits_truncate_and_drop_as_the_sdk_does(caplog: pytest.LogCaptureFixture) -> None:
    limits = SpanLimits(
        max_span_attributes=5,
        max_events=2,
        max_links=1,
        max_event_attributes=2,
        max_link_attributes=2,
        max_attribute_length=10,
        max_span_attribute_length=8,
    )
    assert_same_recording(over_the_limits, caplog, span_limits=limits)


@pytest.mark.parametrize(
    "sampler", [ALWAYS_OFF, ParentBased(TraceIdRatioBased(0.5))], ids=["always_off", "ratio"]
)
def test_samplers_decide_as_they_do_for_the_sdk(sampler: Any, caplog: pytest.LogCaptureFixture) -> None:
    def many_roots(tracer: trace.Tracer) -> None:
        for index in range(40):
            with tracer.start_as_current_span(f"root {index}") as span:
                span.set_attribute("recording", span.is_recording())
                with tracer.start_as_current_span("child"):
                    pass

    assert_same_recording(many_roots, caplog, sampler=sampler)


_PLAIN_VALUES = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    st.floats(allow_nan=False),
    st.text(max_size=12),
    st.binary(max_size=4),
)
_ANY_VALUES = st.one_of(
    _PLAIN_VALUES, st.lists(_PLAIN_VALUES, max_size=3), st.tuples(st.integers(), st.text())
)


@settings(max_examples=60, deadline=None)
@given(
    initial=st.dictionaries(st.text(max_size=6), _ANY_VALUES, max_size=6),
    updates=st.lists(st.tuples(st.text(max_size=6), _ANY_VALUES), max_size=8),
)
def test_any_attributes_end_up_as_the_sdk_cleans_them(
    initial: dict[str, Any], updates: list[tuple[str, Any]]
) -> None:
    def scenario(tracer: trace.Tracer) -> None:
        with tracer.start_as_current_span("op", attributes=initial) as span:
            for key, value in updates:
                span.set_attribute(key, value)
            span.set_attributes(dict(updates))
            span.add_event("e", dict(updates))

    limits = SpanLimits(max_span_attributes=7, max_span_attribute_length=5)
    assert (
        _record(ExecscopeTracerProvider, scenario, span_limits=limits)[1]
        == (_record(TracerProvider, scenario, span_limits=limits)[1])
    )


def test_its_spans_have_every_field_the_sdks_spans_have() -> None:
    """Catches an SDK release that adds a field its methods read: ExecscopeSpan sets them itself."""
    seen: dict[str, set[str]] = {}

    class Fields(SpanProcessor):
        def on_start(self, span: Any, parent_context: Any = None) -> None:
            seen[type(span).__name__] = set(vars(span))

    for provider_class in (TracerProvider, ExecscopeTracerProvider):
        provider = provider_class()
        provider.add_span_processor(Fields())
        provider.get_tracer("fields").start_span("s").end()
    assert seen["ExecscopeSpan"] == seen["_Span"]


def test_processors_see_the_started_span_and_the_ended_one() -> None:
    events: list[tuple[str, object]] = []

    class Watch(SpanProcessor):
        def on_start(self, span: Any, parent_context: Any = None) -> None:
            events.append(("start", span))
            assert span.is_recording() and span.start_time

        def on_end(self, span: ReadableSpan) -> None:
            events.append(("end", span))
            assert span.end_time is not None and span.end_time >= span.start_time  # type: ignore[operator]

    provider = ExecscopeTracerProvider()
    provider.add_span_processor(Watch())
    with provider.get_tracer("watch").start_as_current_span("watched") as span:
        assert events == [("start", span)]
    assert [kind for kind, _ in events] == ["start", "end"]
    assert not span.is_recording()


def test_the_pipeline_holds_the_same_compact_span_either_way(caplog: pytest.LogCaptureFixture) -> None:
    def scenario(tracer: trace.Tracer) -> None:
        over_the_limits(tracer)
        nesting_status_and_exceptions(tracer)

    def compact(provider_class: type[TracerProvider]) -> Iterator[tuple[Any, ...]]:
        for span in _record(provider_class, scenario, span_limits=SpanLimits(max_span_attributes=3))[0]:
            fields = list(compact_span(span))
            fields[8:10] = [0, 0]  # start, end
            fields[12] = tuple(  # no timestamps
                (event[0], _without_sdk_frames(dict(event[2])), event[3]) for event in fields[12]
            )
            yield tuple(fields)

    assert list(compact(ExecscopeTracerProvider)) == list(compact(TracerProvider))


def test_tracers_are_the_sdks_configured_tracers_with_execscopes_methods() -> None:
    provider = ExecscopeTracerProvider()
    tracer = provider.get_tracer("same.scope", "1")
    assert type(tracer) is ExecscopeTracer
    assert provider.get_tracer("same.scope", "1") is tracer  # the SDK's cache still answers


def test_a_disabled_sdk_gives_its_no_op_tracer(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OTEL_SDK_DISABLED", "true")
    tracer = ExecscopeTracerProvider().get_tracer("disabled")
    assert isinstance(tracer, trace.NoOpTracer)
    with tracer.start_as_current_span("nothing") as span:
        assert not span.is_recording()


def test_an_exception_leaving_a_current_span_keeps_the_callers_traceback() -> None:
    def raise_inside(tracer: trace.Tracer) -> None:
        with tracer.start_as_current_span("fails"):
            raise ValueError("unchanged")

    with pytest.raises(ValueError) as raised:
        raise_inside(ExecscopeTracerProvider().get_tracer("traceback"))
    frames = [frame.name for frame in traceback.extract_tb(raised.value.__traceback__)]
    assert frames == ["test_an_exception_leaving_a_current_span_keeps_the_callers_traceback", "raise_inside"]


def test_the_current_span_is_restored_however_the_block_ends() -> None:
    tracer = ExecscopeTracerProvider().get_tracer("context")
    before = trace.get_current_span()
    for error in (None, ValueError("e"), KeyboardInterrupt()):
        try:
            with tracer.start_as_current_span("block") as span:
                assert trace.get_current_span() is span
                if error is not None:
                    raise error
        except (ValueError, KeyboardInterrupt):
            pass
        assert trace.get_current_span() is before
        assert not span.is_recording()


def test_its_attribute_maps_have_every_field_the_sdks_have() -> None:
    assert set(vars(FastAttributes(3, {"a": 1}, True, 5))) == set(
        vars(BoundedAttributes(3, {"a": 1}, True, 5))
    )


def test_invalid_limits_are_refused_as_the_sdk_refuses_them() -> None:
    for limits in ((-1, None), (None, -1)):
        with pytest.raises(ValueError) as sdk:
            BoundedAttributes(limits[0], None, True, limits[1])
        with pytest.raises(ValueError) as ours:
            FastAttributes(limits[0], None, True, limits[1])
        assert str(ours.value) == str(sdk.value)
