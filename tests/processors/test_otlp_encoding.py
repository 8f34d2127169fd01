"""``encode_request`` writes the same OTLP export request as the official encoder, only faster.

The specification is the official encoder itself: for every batch here, the bytes parse into a
message equal to ``encode_spans(spans)``. Spans come from a real ``TracerProvider`` where the SDK can
make them, and are built as ``ReadableSpan``s only for what it cannot (fixed IDs, values the SDK
would clean). Where the official encoder fails (lone surrogates, a broken span), ``encode_request``
still encodes, and the test says what it writes instead.

Every test runs twice: with the compiled encoder of the common span (``_accelerated.c``, which hands any
other span to the Python encoder) and with the Python encoder alone.
"""

from __future__ import annotations

import enum
import logging
import math
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import Any

import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st
from opentelemetry import trace
from opentelemetry.exporter.otlp.proto.common.trace_encoder import encode_spans
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import Event, ReadableSpan, SpanLimits, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.sdk.util.instrumentation import InstrumentationScope
from opentelemetry.trace import Link, SpanContext, SpanKind, Status, StatusCode, TraceFlags, TraceState

from execscope.processors import _otlp_encoding
from execscope.processors._otlp_encoding import encode_request

INT64_MIN = -(2**63)
INT64_MAX = 2**63 - 1
TRACE_ID = 0x0AF7651916CD43DD8448EB211C80319C
SPAN_ID = 0x00F067AA0BA902B7
RESOURCE = Resource({"service.name": "checkout", "host.name": "web-1"})
SCOPE = InstrumentationScope("execscope.tests", "1.0")


@pytest.fixture(autouse=True, params=["compiled", "python"])
def encoder(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    if request.param == "python":
        monkeypatch.setattr(_otlp_encoding, "_compiled_span_field", None)
    elif not _otlp_encoding.ACCELERATED:
        pytest.skip("the compiled encoder is not built here")
    name: str = request.param
    return name


def decoded(spans: Sequence[ReadableSpan]) -> ExportTraceServiceRequest:
    request: ExportTraceServiceRequest = ExportTraceServiceRequest.FromString(encode_request(spans))
    return request


def assert_same_as_official(spans: Sequence[ReadableSpan]) -> None:
    assert decoded(spans) == encode_spans(spans)


class Recorder:
    """Tracer providers that all export to one in-memory exporter, in the order spans end."""

    def __init__(self) -> None:
        self.exporter = InMemorySpanExporter()
        self.providers: list[TracerProvider] = []

    def provider(self, resource: Resource = RESOURCE, limits: SpanLimits | None = None) -> TracerProvider:
        provider = TracerProvider(resource=resource, span_limits=limits)
        provider.add_span_processor(SimpleSpanProcessor(self.exporter))
        self.providers.append(provider)
        return provider

    def tracer(
        self, name: str = "execscope.tests", version: str | None = "1.0", **kwargs: Any
    ) -> trace.Tracer:
        return self.provider().get_tracer(name, version, **kwargs)

    def spans(self) -> tuple[ReadableSpan, ...]:
        return self.exporter.get_finished_spans()


@pytest.fixture
def recorder() -> Iterator[Recorder]:
    recorder = Recorder()
    yield recorder
    for provider in recorder.providers:
        provider.shutdown()


def readable(
    name: str = "operation",
    attributes: Mapping[str, Any] | None = None,
    *,
    resource: Resource = RESOURCE,
    scope: InstrumentationScope | None = SCOPE,
    span_id: int = SPAN_ID,
    **kwargs: Any,
) -> ReadableSpan:
    """A finished span with fixed IDs and times, its attributes exactly as given (not cleaned)."""
    kwargs.setdefault("context", SpanContext(TRACE_ID, span_id, is_remote=False))
    return ReadableSpan(
        name=name,
        attributes=attributes,
        resource=resource,
        instrumentation_scope=scope,
        start_time=1_700_000_000_000_000_000,
        end_time=1_700_000_000_000_250_000,
        **kwargs,
    )


# -- the batch ----------------------------------------------------------------------------------


def test_an_empty_batch_is_an_empty_request() -> None:
    assert encode_request([]) == b""
    assert_same_as_official([])


def test_a_realistic_batch_is_byte_for_byte_what_protobuf_serialises(recorder: Recorder) -> None:
    # Stronger than equality: fields are written in field-number order, as protobuf does.
    tracer = recorder.tracer()
    with tracer.start_as_current_span("request", attributes={"http.route": "/orders"}) as root:
        root.add_event("received", {"bytes": 512})
        with tracer.start_as_current_span("query", kind=SpanKind.CLIENT) as child:
            child.set_status(Status(StatusCode.ERROR, "timeout"))
    spans = recorder.spans()
    assert encode_request(spans) == encode_spans(spans).SerializeToString()


# -- attribute values ---------------------------------------------------------------------------


def test_every_attribute_value_type_the_sdk_accepts(recorder: Recorder) -> None:
    attributes: dict[str, Any] = {
        "str": "value",
        "empty.str": "",
        "true": True,
        "false": False,
        "zero": 0,
        "int": 42,
        "negative": -7,
        "float": 0.25,
        "negative.zero": -0.0,
        "infinity": math.inf,
        "bytes": b"\x00\xffraw",
        "empty.bytes": b"",
        "none": None,
        "strs": ["a", "b"],
        "bools": (True, False),
        "ints": [1, -1, INT64_MAX],
        "floats": [1.5, -2.5],
        "empty.list": [],
        "mixed": ["a", 1, 2.0, None, b"x"],
        "nested": [[1, 2], ["x"]],
        "mapping": {"inner": "v", "deeper": {"n": 1}, "list": [True]},
        "long.str": "x" * 5000,
        "longer.str": "y" * 70_000,
    }
    with recorder.tracer().start_as_current_span("typed", attributes=attributes):
        pass
    assert_same_as_official(recorder.spans())


def test_values_only_a_hand_made_span_can_carry() -> None:
    class Level(enum.IntEnum):
        HIGH = 3

    class Name(str):
        pass

    class Ratio(float):
        pass

    attributes = {
        "int.enum": Level.HIGH,
        "str.subclass": Name("n"),
        "float.subclass": Ratio(0.5),
        "bytearray": bytearray(b"ab"),  # a Sequence, not bytes: an array of ints
        "range": range(3),
        "non.str.keys": {1: "one", None: "none", (1, 2): "pair"},
        "tuple.of.dicts": ({"a": 1}, {"b": [None]}),
        "empty.key.inside": {"": "v"},
        "": "empty key",
    }
    assert_same_as_official([readable(attributes=attributes)])


def test_attributes_in_any_mapping() -> None:
    class Attributes(Mapping[str, Any]):
        """A read-only mapping without copy()."""

        def __init__(self, items: dict[str, Any]) -> None:
            self._items = items

        def __getitem__(self, key: str) -> Any:
            return self._items[key]

        def __iter__(self) -> Iterator[str]:
            return iter(self._items)

        def __len__(self) -> int:
            return len(self._items)

    attributes = Attributes({"a": 1, "b": "two"})
    events = [Event("event", Attributes({"c": [3]}), timestamp=1)]
    assert_same_as_official([readable(attributes=attributes, events=events)])


def test_int64_bounds_are_kept_and_integers_beyond_them_are_dropped() -> None:
    # The official encoder drops (and logs) an attribute whose value, or any value inside it, is
    # out of int64's range; the rest of the span is kept.
    attributes = {
        "min": INT64_MIN,
        "max": INT64_MAX,
        "too.big": INT64_MAX + 1,
        "too.small": INT64_MIN - 1,
        "huge": 10**30,
        "list.with.too.big": [1, 2**64],
        "mapping.with.too.small": {"n": INT64_MIN - 1},
        "after": "kept",
    }
    request = decoded([readable(attributes=attributes)])
    assert request == encode_spans([readable(attributes=attributes)])
    kept = [kv.key for kv in request.resource_spans[0].scope_spans[0].spans[0].attributes]
    assert kept == ["min", "max", "after"]


def test_values_the_official_encoder_refuses_are_dropped_alone(caplog: pytest.LogCaptureFixture) -> None:
    attributes: dict[Any, Any] = {
        "object": object(),
        "set": {1, 2},
        "list.with.object": [1, object()],
        42: "a key that is not a str",
        "after": "kept",
    }
    with caplog.at_level(logging.WARNING):
        request = decoded([readable(attributes=attributes)])
    assert request == encode_spans([readable(attributes=attributes)])
    assert [kv.key for kv in request.resource_spans[0].scope_spans[0].spans[0].attributes] == ["after"]
    assert "dropped attribute 'object'" in caplog.text


def test_unicode_is_utf8(recorder: Recorder) -> None:
    tracer = recorder.tracer("scope.ünïcode", "ß-1")
    with tracer.start_as_current_span("naïve ☃ 🚀", attributes={"ключ": "значение", "emoji": "👍🏽"}) as span:
        span.add_event("événement", {"数": ["一", "二"]})
        span.set_status(Status(StatusCode.ERROR, "échec 💥"))
    assert_same_as_official(recorder.spans())


# -- lone surrogates: protobuf refuses them, encode_request replaces them with "?" ------------------


def with_text(text: str) -> ReadableSpan:
    """A span with ``text`` in every string field the encoder writes."""
    return readable(
        f"name {text}",
        {f"key {text}": f"value {text}", "list": [text], "mapping": {text: text}},
        resource=Resource({"service.name": text}, schema_url=f"https://schema/{text}"),
        scope=InstrumentationScope(f"scope {text}", text, f"https://scope/{text}", {"a": text}),
        events=[Event(f"event {text}", {"e": text}, timestamp=1)],
        links=[Link(SpanContext(TRACE_ID, 7, is_remote=False), {"l": text})],
        status=Status(StatusCode.ERROR, f"failed {text}"),
        context=SpanContext(TRACE_ID, SPAN_ID, is_remote=False, trace_state=TraceState([("k", "v")])),
    )


def test_lone_surrogates_are_replaced_where_protobuf_would_raise() -> None:
    surrogates = "a\ud800b\udcff"
    with pytest.raises(UnicodeEncodeError):
        encode_spans([with_text(surrogates)])
    assert decoded([with_text(surrogates)]) == encode_spans([with_text("a?b?")])


def test_a_lone_surrogate_costs_neither_the_attribute_nor_the_span() -> None:
    # The official encoder drops such an attribute; encode_request keeps it, replaced.
    attributes = {"path": "/data/\udcff.csv", "other": 1}
    assert decoded([readable(attributes=attributes)]) == encode_spans(
        [readable(attributes={"path": "/data/?.csv", "other": 1})]
    )


# -- span fields --------------------------------------------------------------------------------


@pytest.mark.parametrize("kind", list(SpanKind))
def test_every_span_kind(recorder: Recorder, kind: SpanKind) -> None:
    with recorder.tracer().start_as_current_span("kind", kind=kind):
        pass
    assert_same_as_official(recorder.spans())


def test_a_kind_that_is_not_a_span_kind_is_unspecified() -> None:
    odd = readable(kind="server")
    span = decoded([odd]).resource_spans[0].scope_spans[0].spans[0]
    assert span.kind == span.SPAN_KIND_UNSPECIFIED
    assert span.name == "operation"


@pytest.mark.parametrize(
    ("status", "description"),
    [(StatusCode.UNSET, None), (StatusCode.OK, None), (StatusCode.ERROR, None), (StatusCode.ERROR, "boom")],
)
def test_status_code_and_description(recorder: Recorder, status: StatusCode, description: str | None) -> None:
    with recorder.tracer().start_as_current_span("status") as span:
        span.set_status(Status(status, description))
    assert_same_as_official(recorder.spans())


def test_an_exception_sets_an_error_status_with_its_description_and_an_event(recorder: Recorder) -> None:
    with (
        pytest.raises(ValueError, match="bad input"),
        recorder.tracer().start_as_current_span("failing"),
    ):
        raise ValueError("bad input")
    spans = recorder.spans()
    assert spans[0].status.description == "ValueError: bad input"
    assert_same_as_official(spans)


def test_a_status_without_a_status_at_all() -> None:
    assert_same_as_official([readable(status=None)])


def test_root_local_and_remote_parents_with_trace_state(recorder: Recorder) -> None:
    tracer = recorder.tracer()
    remote = SpanContext(
        TRACE_ID,
        SPAN_ID,
        is_remote=True,
        trace_flags=TraceFlags(TraceFlags.SAMPLED),
        trace_state=TraceState([("vendor", "opaque"), ("other", "v2")]),
    )
    with tracer.start_as_current_span("root"), tracer.start_as_current_span("local child"):
        pass
    with tracer.start_as_current_span(
        "remote child", context=trace.set_span_in_context(trace.NonRecordingSpan(remote))
    ):
        pass
    spans = recorder.spans()
    request = decoded(spans)
    assert request == encode_spans(spans)
    by_name = {span.name: span for span in request.resource_spans[0].scope_spans[0].spans}
    assert by_name["root"].parent_span_id == b""
    assert by_name["local child"].flags == 0x100
    assert by_name["remote child"].flags == 0x300
    assert by_name["remote child"].trace_state == "vendor=opaque,other=v2"


def test_events_with_and_without_attributes(recorder: Recorder) -> None:
    with recorder.tracer().start_as_current_span("events") as span:
        span.add_event("plain")
        span.add_event("with attributes", {"a": 1, "b": ["x", "y"]}, timestamp=123)
        span.add_event("", {"unnamed": True})
    assert_same_as_official(recorder.spans())


def test_links_with_attributes_to_local_and_remote_contexts(recorder: Recorder) -> None:
    links = [
        Link(SpanContext(TRACE_ID, 1, is_remote=False)),
        Link(
            SpanContext(TRACE_ID, 2, is_remote=True, trace_state=TraceState([("t", "s")])), {"why": "batch"}
        ),
        Link(SpanContext(TRACE_ID + 1, 3, is_remote=False), {"n": [1, 2], "ok": True}),
    ]
    with recorder.tracer().start_as_current_span("linked", links=links) as span:
        span.add_link(SpanContext(TRACE_ID, 4, is_remote=True), {"late": "yes"})
    assert_same_as_official(recorder.spans())


def test_dropped_attribute_event_and_link_counts(recorder: Recorder) -> None:
    limits = SpanLimits(
        max_span_attributes=2,
        max_events=1,
        max_links=1,
        max_event_attributes=1,
        max_link_attributes=1,
        max_attribute_length=4,
    )
    tracer = recorder.provider(limits=limits).get_tracer("limited")
    links = [Link(SpanContext(TRACE_ID, n, is_remote=False), {"a": 1, "b": 2}) for n in (1, 2, 3)]
    with tracer.start_as_current_span("limited", links=links, attributes={"a": "long value", "b": 2}) as span:
        span.set_attribute("c", 3)
        span.add_event("first", {"x": 1, "y": 2})
        span.add_event("second")
    spans = recorder.spans()
    assert (spans[0].dropped_attributes, spans[0].dropped_events, spans[0].dropped_links) == (1, 1, 2)
    assert_same_as_official(spans)


def test_a_span_without_times() -> None:
    span = ReadableSpan("unstarted", SpanContext(TRACE_ID, SPAN_ID, is_remote=False))
    assert_same_as_official([span])


# -- grouping by resource and scope -------------------------------------------------------------


def test_spans_are_grouped_by_resource_then_scope_in_order_of_first_appearance(recorder: Recorder) -> None:
    web = recorder.provider(
        Resource({"service.name": "web"}, schema_url="https://opentelemetry.io/schemas/1")
    )
    worker = recorder.provider(Resource({"service.name": "worker"}))
    tracers = [
        web.get_tracer("http", "2.0", schema_url="https://opentelemetry.io/schemas/1.2"),
        worker.get_tracer("jobs"),
        web.get_tracer("db", attributes={"db.system": "sqlite", "pool": 4}),
        worker.get_tracer("jobs", "3.1", attributes={"queue": ["a", "b"]}),
        web.get_tracer("http", "2.0", schema_url="https://opentelemetry.io/schemas/1.2"),
    ]
    for round_ in range(3):
        for index, tracer in enumerate(tracers):
            with tracer.start_as_current_span(f"span {round_}.{index}"):
                pass
    spans = recorder.spans()
    request = decoded(spans)
    assert request == encode_spans(spans)
    assert [len(resource.scope_spans) for resource in request.resource_spans] == [2, 2]
    assert len(request.resource_spans[0].scope_spans[0].spans) == 6


def test_equal_resources_and_scopes_from_distinct_objects_share_a_group(recorder: Recorder) -> None:
    first = recorder.provider(Resource({"service.name": "same"})).get_tracer("scope", "1")
    second = recorder.provider(Resource({"service.name": "same"})).get_tracer("scope", "1")
    for tracer in (first, second, first):
        with tracer.start_as_current_span("span"):
            pass
    spans = recorder.spans()
    assert spans[0].resource is not spans[1].resource
    request = decoded(spans)
    assert request == encode_spans(spans)
    assert len(request.resource_spans) == 1
    assert len(request.resource_spans[0].scope_spans) == 1


def test_equal_resources_are_written_as_the_first_one_seen() -> None:
    # 1 == True: the official encoder's dictionary keeps the first key, and writes its attributes.
    one, true = Resource({"n": 1}), Resource({"n": True})
    spans = [readable(resource=one), readable(resource=true, span_id=2), readable(resource=one, span_id=3)]
    assert_same_as_official(spans)
    assert_same_as_official(list(reversed(spans)))


def test_spans_without_a_scope_and_with_an_empty_resource() -> None:
    spans = [
        readable(scope=None),
        readable(resource=Resource.get_empty(), span_id=2),
        readable(scope=InstrumentationScope(""), span_id=3),
    ]
    assert_same_as_official(spans)


def test_cached_resources_and_scopes_stay_correct_across_batches() -> None:
    for index in range(300):
        resource = Resource({"service.name": f"service-{index}"})
        scope = InstrumentationScope(f"scope-{index}", str(index))
        assert_same_as_official([readable(resource=resource, scope=scope), readable(span_id=2)])


# -- what the official encoder cannot do --------------------------------------------------------


@pytest.mark.parametrize(
    "broken",
    [
        pytest.param(lambda: readable(context=None), id="no span context"),
        pytest.param(
            lambda: readable(context=SpanContext(2**128, 1, is_remote=False)), id="trace id too big"
        ),
        pytest.param(
            lambda: ReadableSpan("negative", SpanContext(1, 1, False), start_time=-1), id="negative"
        ),
    ],
)
def test_a_span_that_cannot_be_encoded_is_left_out_and_logged(
    broken: Callable[[], ReadableSpan], caplog: pytest.LogCaptureFixture
) -> None:
    good = [readable(span_id=1), readable(span_id=2, scope=None)]
    # The official encoder fails the whole batch.
    with pytest.raises((AttributeError, OverflowError, ValueError)):
        encode_spans([good[0], broken(), good[1]])
    with caplog.at_level(logging.ERROR):
        request = decoded([good[0], broken(), good[1]])
    assert request == encode_spans(good)
    assert "left out 1 of 3 spans" in caplog.text


# -- generated attributes -----------------------------------------------------------------------


def texts(max_size: int) -> st.SearchStrategy[str]:
    """Any text, often with lone surrogates and "?" (``st.text`` never makes surrogates)."""
    characters = st.characters() | st.sampled_from(["\ud800", "\udcff", "\udfff", "?"])
    return st.lists(characters, max_size=max_size).map("".join)


KEYS = texts(12)
SCALARS = (
    st.none()
    | st.booleans()
    | st.integers(min_value=INT64_MIN, max_value=INT64_MAX)
    | st.integers(min_value=-(2**70), max_value=2**70)
    | st.floats(allow_nan=False)
    | texts(40)
    | texts(300)
    | st.binary(max_size=20)
)
VALUES = st.recursive(
    SCALARS,
    lambda inner: (
        st.lists(inner, max_size=4)
        | st.lists(inner, max_size=4).map(tuple)
        | st.dictionaries(KEYS, inner, max_size=4)
    ),
    max_leaves=12,
)
ATTRIBUTES = st.dictionaries(KEYS, VALUES, max_size=8)


class KeysCollide(Exception):
    """Replacing lone surrogates made two keys of one mapping equal: no dict can say that."""


def replaced(value: Any) -> Any:
    """``value`` with every string's lone surrogates replaced by ``?``, as encode_request writes them."""
    if isinstance(value, str):
        return value.encode("utf-8", "replace").decode()
    if isinstance(value, (list, tuple)):
        return type(value)(replaced(item) for item in value)
    if isinstance(value, dict):
        result = {replaced(key): replaced(item) for key, item in value.items()}
        if len(result) != len(value):
            raise KeysCollide
        return result
    return value


# The fixture that picks the encoder is the same for every example.
@settings(
    max_examples=300,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
@given(span_attributes=ATTRIBUTES, event_attributes=ATTRIBUTES, link_attributes=ATTRIBUTES)
def test_generated_attributes_match_the_official_encoder(
    span_attributes: dict[str, Any], event_attributes: dict[str, Any], link_attributes: dict[str, Any]
) -> None:
    def span(
        span_attrs: dict[str, Any], event_attrs: dict[str, Any], link_attrs: dict[str, Any]
    ) -> ReadableSpan:
        return readable(
            attributes=span_attrs,
            events=[Event("event", event_attrs, timestamp=5)],
            links=[Link(SpanContext(TRACE_ID, 9, is_remote=True), link_attrs)],
        )

    originals = (span_attributes, event_attributes, link_attributes)
    try:
        sanitised = tuple(replaced(attributes) for attributes in originals)
    except KeysCollide:
        assume(False)
    assert decoded([span(*originals)]) == encode_spans([span(*sanitised)])
