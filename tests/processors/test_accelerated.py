"""The pipeline's compiled fast path (``_accelerated.c``) agrees with the Python code it speeds up.

Three functions, each a shortcut for the common span that hands everything else back:

- ``compact_span`` makes an ended span's compact tuple, as ``_compact.compact_span`` does, or
  answers None and leaves the span to it;
- ``span_field`` writes a compact span's OTLP field byte for byte as the Python encoder does, or
  answers None and leaves the span to it;
- ``known_clean`` says a span needs no masking only when ``redact_attributes`` would indeed change
  nothing in it.

The Python code is the specification (``test_otlp_encoding`` and ``test_redaction`` hold it to the
official encoder and to the masking rules); here both are compared on generated spans, odd values
included.
"""

from __future__ import annotations

import enum
import os
from collections import OrderedDict, deque
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import Event, ReadableSpan, SpanLimits, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.sdk.trace.id_generator import IdGenerator
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

from execscope.attributes import CORRELATION_ID
from execscope.capture import Redactor
from execscope.processors import _compact, _otlp_encoding
from execscope.processors._compact import ATTRIBUTES, EVENTS, ORIGINS, CompactSpan, compact_span
from execscope.processors._redaction import SpanMasking, known_clean, redact_attributes
from execscope.tracing import ExecscopeTracerProvider

pytestmark = pytest.mark.skipif(
    not _otlp_encoding.ACCELERATED and os.environ.get("CI") != "true",
    reason="the compiled fast path is not built here",
)

INT64 = st.integers(min_value=-(2**63), max_value=2**63 - 1)


class Text(str):
    """A str subclass: encoded through its own methods, so never by the compiled path."""


class Number(enum.IntEnum):
    ONE = 1


def texts(max_size: int) -> st.SearchStrategy[str]:
    characters = st.characters() | st.sampled_from(["\ud800", "\udfff", "é", "☃"])
    return st.lists(characters, max_size=max_size).map("".join)


# The values the compiled path writes itself.
COMMON_SCALARS = (
    st.none()
    | st.booleans()
    | INT64
    | st.floats()
    | st.text(max_size=40)
    | st.text(max_size=200)
    | st.binary(max_size=20)
)
COMMON_VALUES = st.recursive(
    COMMON_SCALARS,
    lambda inner: st.lists(inner, max_size=4) | st.lists(inner, max_size=4).map(tuple),
    max_leaves=8,
)
# And those it must hand back (or write identically, where it can).
ODD_SCALARS = (
    texts(20)
    | st.integers(min_value=-(2**70), max_value=2**70)
    | st.builds(Text, st.text(max_size=5))
    | st.just(Number.ONE)
    | st.builds(bytearray, st.binary(max_size=4))
    | st.dictionaries(st.text(max_size=4), INT64, max_size=2)
    | st.just(object())
)
VALUES = st.recursive(
    COMMON_SCALARS | ODD_SCALARS,
    lambda inner: st.lists(inner, max_size=4) | st.lists(inner, max_size=4).map(tuple),
    max_leaves=8,
)


def pairs(keys: st.SearchStrategy[Any], values: st.SearchStrategy[Any]) -> st.SearchStrategy[tuple[Any, ...]]:
    return st.lists(st.tuples(keys, values), max_size=6).map(tuple)


def compact_spans(
    keys: st.SearchStrategy[Any],
    values: st.SearchStrategy[Any],
    ids: st.SearchStrategy[int],
    counts: st.SearchStrategy[int],
    times: st.SearchStrategy[int],
    names: st.SearchStrategy[Any],
) -> st.SearchStrategy[CompactSpan]:
    attributes = pairs(keys, values)
    events = st.lists(st.tuples(names, times, attributes, counts), max_size=3).map(tuple)
    links = st.lists(
        st.tuples(ids, ids, st.integers(0, 255), st.just(""), st.booleans(), attributes, counts), max_size=2
    ).map(tuple)
    return st.tuples(
        names,  # name
        ids,  # trace id
        ids,  # span id
        st.integers(0, 255),  # trace flags
        st.sampled_from(["", "vendor=value"]),  # trace state
        st.just(0) | ids,  # parent id
        st.booleans(),  # parent is remote
        st.integers(-2, 6),  # kind
        times,  # start
        times,  # end
        attributes,
        counts,  # dropped attributes
        events,
        counts,  # dropped events
        links,
        counts,  # dropped links
        st.none() | st.integers(0, 2),  # status code
        st.none() | st.text(max_size=30),  # status description
        st.just(0),  # origin
    )


COMMON_SPANS = compact_spans(
    keys=st.text(max_size=30),
    values=COMMON_VALUES,
    ids=st.integers(1, 2**64 - 1),
    counts=st.integers(0, 500),
    times=st.integers(0, 2**64 - 1),
    names=st.text(max_size=30),
)
ANY_SPANS = compact_spans(
    keys=texts(10) | st.builds(Text, st.text(max_size=3)) | st.integers(0, 3),
    values=VALUES,
    ids=st.integers(-1, 2**129),
    counts=st.integers(-1, 2**65),
    times=st.integers(-1, 2**65),
    names=texts(10) | st.none(),
)


def python_field(span: CompactSpan) -> bytes:
    body = _otlp_encoding._encode_span(span)
    return _otlp_encoding._SCOPE_SPANS_SPAN + _otlp_encoding._varint(len(body)) + body


def compiled_field(span: CompactSpan) -> bytes | None:
    compiled = _otlp_encoding._compiled_span_field
    assert compiled is not None
    return compiled(span)


def test_ci_builds_the_compiled_fast_path() -> None:
    assert _otlp_encoding.ACCELERATED, "execscope.processors._accelerated was not compiled or does not load"


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(span=COMMON_SPANS)
def test_the_common_span_is_written_in_c_byte_for_byte_as_in_python(span: CompactSpan) -> None:
    assert compiled_field(span) == python_field(span)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(span=ANY_SPANS)
def test_any_other_span_is_written_identically_or_handed_back(span: CompactSpan) -> None:
    written = compiled_field(span)
    try:
        expected = python_field(span)
    except Exception:  # the Python encoder leaves this span out of the batch (and logs it)
        assert written is None
        return
    assert written is None or written == expected


@pytest.mark.parametrize(
    ("field", "value"),
    [
        pytest.param(ATTRIBUTES, (("key", "lone \ud800 surrogate"),), id="lone-surrogate"),
        pytest.param(ATTRIBUTES, (("key", 2**63),), id="beyond-int64"),
        pytest.param(ATTRIBUTES, (("key", {"a": 1}),), id="mapping"),
        pytest.param(ATTRIBUTES, (("key", Text("subclass")),), id="str-subclass"),
        pytest.param(ATTRIBUTES, ((7, "key-not-a-str"),), id="key-not-a-str"),
        pytest.param(1, -1, id="negative-trace-id"),
        pytest.param(2, 2**64, id="span-id-too-large"),
        pytest.param(8, -5, id="negative-start"),
        pytest.param(0, None, id="no-name"),
        pytest.param(7, True, id="kind-not-an-int"),
    ],
)
def test_what_the_compiled_path_leaves_to_python(field: int, value: Any) -> None:
    span = list(COMMON_EXAMPLE)
    span[field] = value
    assert compiled_field(tuple(span)) is None
    assert compiled_field(COMMON_EXAMPLE) is not None


def test_a_span_that_is_not_a_compact_span_is_handed_back() -> None:
    assert compiled_field(COMMON_EXAMPLE[:-1]) is None
    assert compiled_field(list(COMMON_EXAMPLE)) is None  # type: ignore[arg-type]


COMMON_EXAMPLE: CompactSpan = (
    "GET /orders/{id}",
    0x0AF7651916CD43DD8448EB211C80319C,
    0x00F067AA0BA902B7,
    1,
    "",
    0x1234,
    True,
    1,
    1_700_000_000_000_000_000,
    1_700_000_000_000_250_000,
    (("http.route", "/orders/{id}"), ("retry", False), ("ratio", 0.25), ("tags", ("a", "b"))),
    0,
    (("checkpoint", 1_700_000_000_000_100_000, (("index", 3),), 0),),
    0,
    ((0x0AF7651916CD43DD8448EB211C80319C, 9, 1, "", True, (), 0),),
    0,
    2,
    "ValueError: bad",
    0,
)


# -- known_clean ----------------------------------------------------------------------------------


def span_with(
    attributes: tuple[tuple[str, Any], ...], *event_attributes: tuple[tuple[str, Any], ...]
) -> CompactSpan:
    span = list(COMMON_EXAMPLE)
    span[ATTRIBUTES] = attributes
    span[EVENTS] = tuple(("event", 1, each, 0) for each in event_attributes)
    return tuple(span)


MASKED_KEYS = st.sampled_from(["route", "password", "note", "db.statement", "url.full", CORRELATION_ID])


def masking() -> SpanMasking:
    return SpanMasking(Redactor(), sanitize_sql=True)


def test_strings_are_known_clean_once_masking_has_seen_them_unchanged() -> None:
    masks = masking()
    span = span_with((("http.route", "/orders/{id}"), ("retry", False), ("count", 3)), (("phase", "load"),))

    assert not known_clean(span, masks)  # never seen: must be read
    assert redact_attributes(dict(span[ATTRIBUTES]), masks) is None
    assert redact_attributes({"phase": "load"}, masks) is None
    assert known_clean(span, masks)


def test_numbers_and_the_correlation_id_need_no_reading() -> None:
    masks = masking()
    assert known_clean(span_with((("count", 3), ("ratio", 0.5), ("ok", True), ("none", None))), masks)
    assert known_clean(span_with(((CORRELATION_ID, "4bf92f3577b34da6a3ce929d0e0e4736"),)), masks)


@pytest.mark.parametrize(
    "attributes",
    [
        pytest.param((("password", "hunter2"),), id="sensitive-key"),
        pytest.param((("note", f"Authorization: Bearer {'a1' * 16}"),), id="credential-text"),
        pytest.param((("db.statement", "SELECT 1"),), id="sql"),
        pytest.param((("blob", b"bytes"),), id="bytes"),
        pytest.param((("tags", ("a", "b")),), id="sequence"),
        pytest.param((("long", "x" * 300),), id="long-string"),
    ],
)
def test_what_is_never_known_clean_without_reading_it(attributes: tuple[tuple[str, Any], ...]) -> None:
    masks = masking()
    redact_attributes(dict(attributes), masks)  # whatever the masking learns from it
    assert not known_clean(span_with(attributes), masks)
    assert not known_clean(span_with((), attributes), masks)  # in an event's attributes too


def test_nothing_is_known_clean_when_redaction_is_off() -> None:
    from execscope.capture import NoopRedactor

    masks = SpanMasking(NoopRedactor(), sanitize_sql=True)
    assert not known_clean(span_with((("count", 3),)), masks)


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(seen=st.lists(pairs(MASKED_KEYS, VALUES), max_size=4), span=pairs(MASKED_KEYS, VALUES))
def test_known_clean_only_where_masking_changes_nothing(
    seen: list[tuple[tuple[str, Any], ...]], span: tuple[tuple[str, Any], ...]
) -> None:
    masks = masking()
    for attributes in seen:
        redact_attributes(dict(attributes), masks)
    if known_clean(span_with(span), masks):
        assert redact_attributes(dict(span), masks) is None


# -- compact_span ---------------------------------------------------------------------------------


def python_compact(span: ReadableSpan) -> CompactSpan:
    saved, _compact._compiled_compact_span = _compact._compiled_compact_span, None
    try:
        return compact_span(span)
    finally:
        _compact._compiled_compact_span = saved


def compiled_compact(span: ReadableSpan) -> CompactSpan | None:
    compiled = _compact._compiled_compact_span
    assert compiled is not None
    made: CompactSpan | None = compiled(span, ORIGINS.key)
    return made


PLAIN = st.none() | st.booleans() | INT64 | st.floats(allow_nan=False) | st.text(max_size=20)
ATTRIBUTE_VALUES = PLAIN | st.lists(st.text(max_size=5), max_size=3) | st.lists(INT64, max_size=3).map(tuple)
SPAN_ATTRIBUTES = st.dictionaries(st.text(min_size=1, max_size=8), ATTRIBUTE_VALUES, max_size=6)
PARENTS = st.sampled_from(["root", "local", "remote"])


class CountingIds(IdGenerator):
    """IDs that do not draw on the ``random`` module (which hypothesis asks strategies not to use)."""

    def __init__(self) -> None:
        self.last = 0

    def generate_span_id(self) -> int:
        self.last += 1
        return self.last

    def generate_trace_id(self) -> int:
        self.last += 1
        return (1 << 100) + self.last


@st.composite
def ended_spans(draw: st.DrawFn) -> ReadableSpan:
    """A span made by the distro's provider, with whatever a span can carry, limits reached at times."""
    exporter = InMemorySpanExporter()
    limits = SpanLimits(max_span_attributes=5, max_events=2, max_links=1, max_event_attributes=2)
    provider = ExecscopeTracerProvider(
        resource=Resource({"service.name": "shop"}), span_limits=limits, id_generator=CountingIds()
    )
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    tracer = provider.get_tracer("execscope.tests", draw(st.sampled_from([None, "1.0"])))
    parent = draw(PARENTS)
    context = None
    if parent != "root":
        state = TraceState([("vendor", "value")]) if draw(st.booleans()) else TraceState()
        parent_context = SpanContext(
            0x0AF7651916CD43DD8448EB211C80319C,
            0x1234,
            is_remote=parent == "remote",
            trace_flags=TraceFlags(TraceFlags.SAMPLED),
            trace_state=state,
        )
        context = set_span_in_context(NonRecordingSpan(parent_context))
    links = [
        Link(SpanContext(7, 9, is_remote=draw(st.booleans())), draw(SPAN_ATTRIBUTES))
        for _ in range(draw(st.integers(0, 2)))
    ]
    span = tracer.start_span(
        "operation",
        context=context,
        kind=draw(st.sampled_from(SpanKind)),
        attributes=draw(SPAN_ATTRIBUTES),
        links=links,
    )
    for key, value in draw(SPAN_ATTRIBUTES).items():
        span.set_attribute(key, value)
    for _ in range(draw(st.integers(0, 3))):
        span.add_event(draw(st.text(max_size=6)), draw(SPAN_ATTRIBUTES))
    status = draw(st.sampled_from([None, StatusCode.OK, StatusCode.ERROR]))
    if status is not None:
        span.set_status(
            Status(status, draw(st.none() | st.text(max_size=10)) if status is StatusCode.ERROR else None)
        )
    span.end()
    (ended,) = exporter.get_finished_spans()
    return ended


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(span=ended_spans())
def test_a_span_of_the_distros_provider_is_compacted_in_c_exactly_as_in_python(span: ReadableSpan) -> None:
    assert compiled_compact(span) == python_compact(span)


def test_spans_of_the_sdks_provider_are_compacted_in_c_too() -> None:
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    with provider.get_tracer("t").start_as_current_span("sdk", attributes={"a": 1}) as span:
        span.add_event("checkpoint", {"index": 1})
    (sdk_span,) = exporter.get_finished_spans()
    assert compiled_compact(sdk_span) == python_compact(sdk_span)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    attributes=SPAN_ATTRIBUTES,
    events=st.lists(st.tuples(st.text(max_size=6), SPAN_ATTRIBUTES), max_size=3),
    parent=st.none() | st.builds(SpanContext, st.just(7), st.integers(1, 2**64 - 1), st.booleans()),
    status=st.sampled_from(
        [Status(StatusCode.UNSET), Status(StatusCode.ERROR, "boom"), Status(StatusCode.OK)]
    ),
    as_list=st.booleans(),
)
def test_a_hand_made_span_as_the_recorder_makes_them_is_compacted_in_c_exactly_as_in_python(
    attributes: dict[str, Any],
    events: list[tuple[str, dict[str, Any]]],
    parent: SpanContext | None,
    status: Status,
    as_list: bool,
) -> None:
    made = [Event(name, event_attributes, timestamp=5) for name, event_attributes in events]
    span = ReadableSpan(
        "recorded call",
        SpanContext(7, 8, False),
        parent=parent,
        attributes=attributes,
        events=made if as_list else tuple(made),
        status=status,
        start_time=1,
        end_time=2,
    )
    assert compiled_compact(span) is not None
    assert compiled_compact(span) == python_compact(span)


@pytest.mark.parametrize(
    "span",
    [
        pytest.param(
            ReadableSpan("ordered", SpanContext(1, 2, False), attributes=OrderedDict(a=1)), id="ordered-dict"
        ),
        pytest.param(ReadableSpan("no-context"), id="no-context"),
        pytest.param(
            ReadableSpan("events-in-a-deque", SpanContext(1, 2, False), events=deque([Event("e", {"a": 1})])),
            id="events-in-a-deque",
        ),
    ],
)
def test_what_the_compiled_compaction_leaves_to_python(span: ReadableSpan) -> None:
    assert compiled_compact(span) is None


def test_a_span_larger_than_the_compiled_encoders_first_buffer() -> None:
    span = list(COMMON_EXAMPLE)
    span[ATTRIBUTES] = tuple((f"key.{index}", "x" * 300) for index in range(40))  # about 13 KB
    span[EVENTS] = tuple(("event", index + 1, (("text", "y" * 200),), 0) for index in range(20))
    large = tuple(span)
    written = compiled_field(large)
    assert written is not None and len(written) > 12_000
    assert written == python_field(large)
