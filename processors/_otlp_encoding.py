"""A fast encoder of SDK spans into the bytes of an OTLP ``ExportTraceServiceRequest``.

Why it exists: the official encoder
(``opentelemetry.exporter.otlp.proto.common.trace_encoder.encode_spans``) builds a tree of Python
protobuf message objects, one per span, event, link, attribute and value, and then serialises it.
Building those objects costs some 20 to 30 µs per span, which dominates the CPU an export takes. Writing
the protobuf wire format directly, with per-process caches of the bytes that repeat from span to
span (resources, instrumentation scopes, attribute keys), is several times cheaper.

What it produces: parsed with ``ExportTraceServiceRequest.FromString``, the bytes are equal to the
message the official encoder builds from the same spans, with the same grouping (by resource, then
by instrumentation scope, both by equality and in order of first appearance), span kinds, status,
trace state, flags (with the parent-is-remote bits), events, links, dropped counts and attribute
values (including its rules for ``None``, ``bytes``, sequences and mappings). It differs only
where the official encoder would fail:

* Strings are UTF-8; a string with lone surrogates (which protobuf refuses to encode) is encoded
  with each of them replaced by ``?``, instead of dropping the attribute or failing the batch.
* An attribute that cannot be encoded (an integer outside int64, an unsupported type, a key that is
  not a string) is dropped and logged, as the official encoder does.
* A span that cannot be encoded at all (no span context, an ID or timestamp out of range) is left
  out and logged; the official encoder fails the whole batch. A span kind that is not a
  ``SpanKind`` is encoded as ``SPAN_KIND_UNSPECIFIED`` rather than failing.

A resource's and scope's fields are encoded once per origin (``_compact.ORIGINS``, whose keys are
never reused and whose objects are immutable in the SDK); attribute keys once per key, in a cache
that is bounded and cleared when full. Both caches are safe to share between threads (a race at
worst encodes the same bytes twice).
"""

from __future__ import annotations

import logging
import struct
from collections.abc import Callable, Iterable, Mapping, Sequence
from types import MappingProxyType
from typing import Any, Final

from opentelemetry.attributes import BoundedAttributes
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.util.instrumentation import InstrumentationScope
from opentelemetry.trace import SpanKind

from execscope.processors._compact import (
    ATTRIBUTES,
    DROPPED_ATTRIBUTES,
    DROPPED_EVENTS,
    DROPPED_LINKS,
    END,
    EVENTS,
    KIND,
    LINKS,
    NAME,
    ORIGIN,
    ORIGINS,
    PARENT_ID,
    PARENT_IS_REMOTE,
    SPAN_ID,
    START,
    STATUS_CODE,
    STATUS_DESCRIPTION,
    TRACE_ID,
    TRACE_STATE,
    CompactSpan,
    compact_span,
)
from execscope.processors._compiled import ACCELERATED, COMPILED

#: The ScopeSpans.spans field of a span written in C for the common span (``_accelerated.c``); it answers
#: None for any span it leaves to ``_encode_span`` below, which stays the specification.
_compiled_span_field: Callable[[CompactSpan], bytes | None] | None = (
    COMPILED.span_field if COMPILED is not None else None
)

__all__ = ["ACCELERATED", "encode_compact_request", "encode_request"]

_logger = logging.getLogger(__name__)

# Why hand-written wire encoding rather than the protobuf library: the library's cost is in making
# one Python message object per span, event, attribute and value (and in its type checks on every
# field assignment), not in the serialisation itself. Emitting the bytes directly skips all of
# those objects; the format is small and stable (tag = field number << 3 | wire type, then a
# varint, a fixed-width little-endian value, or a varint length and that many bytes).
# The byte constants below are such tags, named after the field they introduce.

_MASK64: Final = (1 << 64) - 1
_INT64_MIN: Final = -(1 << 63)
_INT64_MAX: Final = (1 << 63) - 1

_pack_fixed64 = struct.Struct("<Q").pack
_pack_fixed32 = struct.Struct("<I").pack
_pack_double = struct.Struct("<d").pack

#: The one-byte varints, by value: most lengths and counts are below 128.
_ONE_BYTE: Final = tuple(bytes((value,)) for value in range(128))
#: Strings shorter than this many bytes make an AnyValue shorter than 128 bytes.
_SHORT: Final = 0x7E
#: For each such length: KeyValue.value's one-byte length, AnyValue.string_value's tag and length.
_SHORT_STRING_HEADS: Final = tuple(bytes((size + 2, 0x0A, size)) for size in range(_SHORT))

#: Bound of the attribute key cache; it is cleared when it reaches it.
_MAX_KEYS: Final = 4096

# AnyValue fields.
_ANY_STRING: Final = b"\x0a"  # 1 string_value
_ANY_FALSE: Final = b"\x10\x00"  # 2 bool_value
_ANY_TRUE: Final = b"\x10\x01"
_ANY_INT: Final = b"\x18"  # 3 int_value (int64 varint)
_ANY_DOUBLE: Final = b"\x21"  # 4 double_value (fixed64)
_ANY_ARRAY: Final = b"\x2a"  # 5 array_value
_ANY_KVLIST: Final = b"\x32"  # 6 kvlist_value
_ANY_BYTES: Final = b"\x3a"  # 7 bytes_value
# ArrayValue.values and KeyValueList.values are both field 1.
_LIST_ITEM: Final = b"\x0a"
# KeyValue: 1 key, 2 value.
_KV_KEY: Final = b"\x0a"
_KV_VALUE: Final = b"\x12"

# Request / ResourceSpans / ScopeSpans.
_REQUEST_RESOURCE_SPANS: Final = b"\x0a"  # ExportTraceServiceRequest.resource_spans = 1
_RESOURCE_SPANS_RESOURCE: Final = b"\x0a"  # ResourceSpans.resource = 1
_RESOURCE_SPANS_SCOPE_SPANS: Final = b"\x12"  # ResourceSpans.scope_spans = 2
_RESOURCE_SPANS_SCHEMA_URL: Final = b"\x1a"  # ResourceSpans.schema_url = 3
_RESOURCE_ATTRIBUTES: Final = b"\x0a"  # Resource.attributes = 1
_SCOPE_SPANS_SCOPE: Final = b"\x0a"  # ScopeSpans.scope = 1
_SCOPE_SPANS_SPAN: Final = b"\x12"  # ScopeSpans.spans = 2
_SCOPE_SPANS_SCHEMA_URL: Final = b"\x1a"  # ScopeSpans.schema_url = 3
_SCOPE_NAME: Final = b"\x0a"  # InstrumentationScope.name = 1
_SCOPE_VERSION: Final = b"\x12"  # InstrumentationScope.version = 2
_SCOPE_ATTRIBUTES: Final = b"\x1a"  # InstrumentationScope.attributes = 3

# Span.
_SPAN_TRACE_ID: Final = b"\x0a\x10"  # 1, always 16 bytes
_SPAN_SPAN_ID: Final = b"\x12\x08"  # 2, always 8 bytes
_SPAN_TRACE_STATE: Final = b"\x1a"  # 3
_SPAN_PARENT_SPAN_ID: Final = b"\x22\x08"  # 4, always 8 bytes
_SPAN_NAME: Final = b"\x2a"  # 5
_SPAN_START: Final = b"\x39"  # 7 start_time_unix_nano (fixed64)
_SPAN_END: Final = b"\x41"  # 8 end_time_unix_nano (fixed64)
_SPAN_ATTRIBUTES: Final = b"\x4a"  # 9
_SPAN_DROPPED_ATTRIBUTES: Final = b"\x50"  # 10
_SPAN_EVENTS: Final = b"\x5a"  # 11
_SPAN_DROPPED_EVENTS: Final = b"\x60"  # 12
_SPAN_LINKS: Final = b"\x6a"  # 13
_SPAN_DROPPED_LINKS: Final = b"\x70"  # 14
_SPAN_STATUS: Final = b"\x7a"  # 15

# Span.Event: 1 time_unix_nano (fixed64), 2 name, 3 attributes, 4 dropped_attributes_count.
_EVENT_TIME: Final = b"\x09"
_EVENT_NAME: Final = b"\x12"
_EVENT_ATTRIBUTES: Final = b"\x1a"
_EVENT_DROPPED_ATTRIBUTES: Final = b"\x20"

# Span.Link: 1 trace_id, 2 span_id, 4 attributes, 5 dropped_attributes_count, 6 flags (fixed32).
# The official encoder does not write the link's trace_state (3), so neither does this one.
_LINK_TRACE_ID: Final = b"\x0a\x10"
_LINK_SPAN_ID: Final = b"\x12\x08"
_LINK_ATTRIBUTES: Final = b"\x22"
_LINK_DROPPED_ATTRIBUTES: Final = b"\x28"

# Status: 2 message, 3 code.
_STATUS_MESSAGE: Final = b"\x12"
_STATUS_CODE: Final = b"\x18"

# SpanFlags: the official encoder writes only the "has is-remote" bit and, for a remote parent
# (or linked context), the "is remote" bit; never the W3C trace flags.
_HAS_IS_REMOTE: Final = 0x100
_IS_REMOTE: Final = 0x200
# Span.flags = 16 (fixed32): its tag needs two varint bytes.
_SPAN_FLAGS_LOCAL: Final = b"\x85\x01" + _pack_fixed32(_HAS_IS_REMOTE)
_SPAN_FLAGS_REMOTE: Final = b"\x85\x01" + _pack_fixed32(_HAS_IS_REMOTE | _IS_REMOTE)
# Span.Link.flags = 6 (fixed32).
_LINK_FLAGS_LOCAL: Final = b"\x35" + _pack_fixed32(_HAS_IS_REMOTE)
_LINK_FLAGS_REMOTE: Final = b"\x35" + _pack_fixed32(_HAS_IS_REMOTE | _IS_REMOTE)

#: Span.kind = 6, by ``SpanKind.value``: the OTLP value of each SDK kind is the SDK's value plus one.
_KIND_FIELDS: Final[dict[int, bytes]] = {kind.value: bytes((0x30, kind.value + 1)) for kind in SpanKind}

#: The whole Span.status field of a status without a description. The official encoder always
#: sets the status message, so an unset status is still written as an empty message.
_STATUS_UNSET_FIELD: Final = _SPAN_STATUS + b"\x00"

#: ``tag + length + UTF-8 key`` of KeyValue.key followed by the KeyValue.value tag, by key.
_KEY_PREFIXES: dict[str, bytes] = {}
#: By origin key: ResourceSpans' resource and schema_url fields, ScopeSpans' scope and schema_url
#: fields. As many entries as ``ORIGINS`` has.
_ORIGIN_FIELDS: dict[int, tuple[bytes, bytes, bytes, bytes]] = {}


def _varint(value: int) -> bytes:
    """The unsigned varint (base-128, least significant group first) of ``value`` >= 0."""
    if 0 <= value < 0x80:
        return _ONE_BYTE[value]
    if 0x80 <= value < 0x4000:
        # Two bytes: the length of a typical span.
        return bytes(((value & 0x7F) | 0x80, value >> 7))
    if value < 0:
        raise ValueError(f"cannot encode {value} as an unsigned varint")
    out = bytearray()
    while value > 0x7F:
        out.append((value & 0x7F) | 0x80)
        value >>= 7
    out.append(value)
    return bytes(out)


def _utf8(text: str) -> bytes:
    """``text`` in UTF-8, with lone surrogates (which UTF-8 cannot hold) replaced by ``?``.

    Protobuf raises on such strings; a captured file name or argument can carry them (Python
    decodes undecodable bytes to surrogates), and one such value must not cost the span or batch.
    """
    try:
        return text.encode()
    except UnicodeEncodeError:
        return text.encode("utf-8", "replace")


def _field(tag: bytes, payload: bytes) -> bytes:
    """A length-delimited field: ``tag``, the length of ``payload``, then ``payload``."""
    return tag + _varint(len(payload)) + payload


def _key_prefix(key: str) -> bytes:
    """KeyValue's key field and value tag for ``key``, computed once per key and cached."""
    if not isinstance(key, str):
        raise TypeError(f"attribute key {key!r} is a {type(key).__name__}, not a str")
    encoded = _utf8(key)
    # proto3 leaves an empty string out of the wire format.
    prefix = (_field(_KV_KEY, encoded) if encoded else b"") + _KV_VALUE
    if len(_KEY_PREFIXES) >= _MAX_KEYS:
        _KEY_PREFIXES.clear()
    _KEY_PREFIXES[key] = prefix
    return prefix


def _int_value(value: int) -> bytes:
    """AnyValue.int_value; like protobuf, refuses what int64 cannot hold."""
    if not _INT64_MIN <= value <= _INT64_MAX:
        raise ValueError(f"Value out of range: {value}")
    # Negative int64s are written as their 64-bit two's complement (ten varint bytes).
    return _ANY_INT + _varint(value & _MASK64)


def _any_value(value: object) -> bytes:
    """The body of the AnyValue of ``value``, by the official ``_encode_value``'s rules, in its order.

    ``None`` is an empty AnyValue, ``bool`` comes before ``int``, ``str`` and ``bytes`` before
    ``Sequence`` (any other sequence, ``bytearray`` included, is an array), then ``Mapping`` (a key
    list, keys through ``str()``). Raises for anything it would refuse.
    """
    if value is None:
        return b""
    if isinstance(value, bool):
        return _ANY_TRUE if value else _ANY_FALSE
    if isinstance(value, str):
        return _field(_ANY_STRING, _utf8(value))
    if isinstance(value, int):
        return _int_value(int(value))
    if isinstance(value, float):
        return _ANY_DOUBLE + _pack_double(value)
    if isinstance(value, bytes):
        return _field(_ANY_BYTES, bytes(value))
    if isinstance(value, Sequence):
        return _field(_ANY_ARRAY, b"".join([_field(_LIST_ITEM, _any_value(item)) for item in value]))
    if isinstance(value, Mapping):
        entries = [_field(_LIST_ITEM, _key_value(str(key), item)) for key, item in value.items()]
        return _field(_ANY_KVLIST, b"".join(entries))
    raise TypeError(f"Invalid type {type(value)} of value {value}")


def _key_value(key: str, value: object) -> bytes:
    """The body of a KeyValue."""
    return (_KEY_PREFIXES.get(key) or _key_prefix(key)) + _field(b"", _any_value(value))


def _append_attributes(attributes: Iterable[tuple[str, object]], tag: bytes, out: list[bytes]) -> None:
    """Append one ``tag`` field per attribute (a KeyValue) of the ``(key, value)`` pairs to ``out``.

    An attribute that cannot be encoded is dropped and logged, like the official encoder does, so
    one odd value does not cost the rest of the span. Short strings and integers, nearly all values,
    are encoded inline: the field is appended as its pieces (joined once, with the whole span),
    which saves building each entry by concatenation.
    """
    prefixes = _KEY_PREFIXES
    for key, value in attributes:
        try:
            prefix = prefixes.get(key) or _key_prefix(key)
            if isinstance(value, str):
                try:
                    encoded = value.encode()
                except UnicodeEncodeError:
                    encoded = value.encode("utf-8", "replace")
                size = len(encoded)
                if size < _SHORT:
                    length = len(prefix) + 3 + size
                    if length < 0x80:
                        out += (tag, _ONE_BYTE[length], prefix, _SHORT_STRING_HEADS[size], encoded)
                        continue
                value_bytes = _field(_ANY_STRING, encoded)
            elif type(value) is int:
                value_bytes = _int_value(value)
            else:
                value_bytes = _any_value(value)
            entry = prefix + _varint(len(value_bytes)) + value_bytes
            out += (tag, _varint(len(entry)), entry)
        except Exception as error:
            _logger.warning("OTLP encoding dropped attribute %r: %s", key, error)


def _mapping_pairs(attributes: Mapping[str, object] | None) -> Iterable[tuple[str, object]]:
    """The pairs of a resource's or scope's attribute mapping (encoded once per process)."""
    if not attributes:
        return ()
    if isinstance(attributes, (MappingProxyType, BoundedAttributes)):
        # Both iterate through Python-level __iter__/__getitem__; their copy() is one C-level copy.
        try:  # noqa: SIM105 - contextlib.suppress costs more than the copy saves
            attributes = attributes.copy()
        except AttributeError:
            pass  # a proxy of a mapping without copy(): iterated as it is
    return attributes.items()


def _encode_status(code: int, description: str | None) -> bytes:
    """The Span.status field: an empty message for unset, else the code and any description."""
    if not code and not description:
        return _STATUS_UNSET_FIELD
    body = _field(_STATUS_MESSAGE, _utf8(description)) if description else b""
    if code:
        body += _STATUS_CODE + _varint(code)
    return _field(_SPAN_STATUS, body)


def _encode_event(event: tuple[Any, ...]) -> bytes:
    """The body of a Span.Event (a compact span's event: name, timestamp, attributes, dropped)."""
    name, timestamp, attributes, dropped = event
    parts: list[bytes] = []
    if timestamp:
        parts += (_EVENT_TIME, _pack_fixed64(timestamp))
    if name:
        parts.append(_field(_EVENT_NAME, _utf8(name)))
    _append_attributes(attributes, _EVENT_ATTRIBUTES, parts)
    if dropped:
        parts += (_EVENT_DROPPED_ATTRIBUTES, _varint(dropped))
    return b"".join(parts)


def _encode_link(link: tuple[Any, ...]) -> bytes:
    """The body of a Span.Link; the official encoder writes no trace state for links."""
    trace_id, span_id, _flags, _state, is_remote, attributes, dropped = link
    parts = [_LINK_TRACE_ID, trace_id.to_bytes(16, "big"), _LINK_SPAN_ID, span_id.to_bytes(8, "big")]
    _append_attributes(attributes, _LINK_ATTRIBUTES, parts)
    if dropped:
        parts += (_LINK_DROPPED_ATTRIBUTES, _varint(dropped))
    parts.append(_LINK_FLAGS_REMOTE if is_remote else _LINK_FLAGS_LOCAL)
    return b"".join(parts)


def _encode_span(span: CompactSpan) -> bytes:
    """The body of a Span message, its fields in field-number order (as protobuf writes them)."""
    parts = [
        _SPAN_TRACE_ID,
        span[TRACE_ID].to_bytes(16, "big"),
        _SPAN_SPAN_ID,
        span[SPAN_ID].to_bytes(8, "big"),
    ]
    trace_state = span[TRACE_STATE]
    if trace_state:
        parts.append(_field(_SPAN_TRACE_STATE, _utf8(trace_state)))
    parent = span[PARENT_ID]
    if parent:
        parts += (_SPAN_PARENT_SPAN_ID, parent.to_bytes(8, "big"))
    name = span[NAME]
    if name:
        try:
            encoded = name.encode()
        except UnicodeEncodeError:
            encoded = name.encode("utf-8", "replace")
        parts += (_SPAN_NAME, _varint(len(encoded)), encoded)
    # Anything but a SpanKind's value is SPAN_KIND_UNSPECIFIED (0, so not written).
    parts.append(_KIND_FIELDS.get(span[KIND], b""))
    start = span[START]
    if start:
        parts += (_SPAN_START, _pack_fixed64(start))
    end = span[END]
    if end:
        parts += (_SPAN_END, _pack_fixed64(end))
    _append_attributes(span[ATTRIBUTES], _SPAN_ATTRIBUTES, parts)
    dropped = span[DROPPED_ATTRIBUTES]
    if dropped:
        parts += (_SPAN_DROPPED_ATTRIBUTES, _varint(dropped))
    for event in span[EVENTS]:
        parts.append(_field(_SPAN_EVENTS, _encode_event(event)))
    dropped = span[DROPPED_EVENTS]
    if dropped:
        parts += (_SPAN_DROPPED_EVENTS, _varint(dropped))
    for link in span[LINKS]:
        parts.append(_field(_SPAN_LINKS, _encode_link(link)))
    dropped = span[DROPPED_LINKS]
    if dropped:
        parts += (_SPAN_DROPPED_LINKS, _varint(dropped))
    code = span[STATUS_CODE]
    if code is not None:
        parts.append(_encode_status(code, span[STATUS_DESCRIPTION]))
    parts.append(_SPAN_FLAGS_REMOTE if parent and span[PARENT_IS_REMOTE] else _SPAN_FLAGS_LOCAL)
    return b"".join(parts)


def _resource_fields(resource: Resource) -> tuple[bytes, bytes]:
    """ResourceSpans' resource field and schema_url field for ``resource``."""
    parts: list[bytes] = []
    _append_attributes(_mapping_pairs(resource.attributes), _RESOURCE_ATTRIBUTES, parts)
    # The resource message is always written, even when empty.
    resource_field = _field(_RESOURCE_SPANS_RESOURCE, b"".join(parts))
    schema_url = resource.schema_url
    schema_field = _field(_RESOURCE_SPANS_SCHEMA_URL, _utf8(schema_url)) if schema_url else b""
    return resource_field, schema_field


def _scope_fields(scope: InstrumentationScope | None) -> tuple[bytes, bytes]:
    """ScopeSpans' scope field and schema_url field for ``scope``."""
    if scope is None:
        # The official encoder writes an empty scope message, and no schema URL.
        return _SCOPE_SPANS_SCOPE + b"\x00", b""
    parts: list[bytes] = []
    if scope.name:
        parts.append(_field(_SCOPE_NAME, _utf8(scope.name)))
    if scope.version:
        parts.append(_field(_SCOPE_VERSION, _utf8(scope.version)))
    _append_attributes(_mapping_pairs(scope.attributes), _SCOPE_ATTRIBUTES, parts)
    scope_field = _field(_SCOPE_SPANS_SCOPE, b"".join(parts))
    schema_url = scope.schema_url
    schema_field = _field(_SCOPE_SPANS_SCHEMA_URL, _utf8(schema_url)) if schema_url else b""
    return scope_field, schema_field


def _origin_fields(origin: int) -> tuple[bytes, bytes, bytes, bytes]:
    """The resource and scope fields of an origin key, encoded at its first batch."""
    fields = _ORIGIN_FIELDS.get(origin)
    if fields is None:
        resource, scope, _ = ORIGINS[origin]
        fields = _ORIGIN_FIELDS[origin] = (*_resource_fields(resource), *_scope_fields(scope))
    return fields


class _ScopeGroup:
    """The encoded spans of one instrumentation scope (by equality) of one resource."""

    __slots__ = ("schema_field", "scope_field", "spans")

    def __init__(self, scope_field: bytes, schema_field: bytes) -> None:
        self.scope_field = scope_field
        self.schema_field = schema_field
        #: The ScopeSpans.spans fields, one per span.
        self.spans: list[bytes] = []

    def encode(self) -> bytes:
        return self.scope_field + b"".join(self.spans) + self.schema_field


class _ResourceGroup:
    """The scope groups of one resource (by equality), in order of their first span."""

    __slots__ = ("resource_field", "schema_field", "scopes")

    def __init__(self, resource_field: bytes, schema_field: bytes) -> None:
        self.resource_field = resource_field
        self.schema_field = schema_field
        #: By origin key: one per scope (by equality) of this resource.
        self.scopes: dict[int, _ScopeGroup] = {}

    def encode(self) -> bytes:
        scope_spans = [_field(_RESOURCE_SPANS_SCOPE_SPANS, group.encode()) for group in self.scopes.values()]
        return self.resource_field + b"".join(scope_spans) + self.schema_field


def encode_request(spans: Sequence[ReadableSpan]) -> bytes:
    """The serialised OTLP ``ExportTraceServiceRequest`` of SDK spans.

    Parses into a message equal to ``encode_spans(spans)`` of the official encoder (see the module
    docstring for the few inputs on which it fails and this does not). A span that cannot be encoded
    is left out and the batch is still encoded; the spans left out are logged as one error.
    """
    compacted: list[CompactSpan] = []
    failures: list[Exception] = []
    for span in spans:
        try:
            compacted.append(compact_span(span))
        except Exception as error:
            failures.append(error)
    return _encode(compacted, failures, len(spans))


def encode_compact_request(spans: Sequence[CompactSpan]) -> bytes:
    """The serialised OTLP ``ExportTraceServiceRequest`` of compact spans (see :func:`encode_request`)."""
    return _encode(spans, [], len(spans))


def _encode(spans: Sequence[CompactSpan], failures: list[Exception], total: int) -> bytes:
    # Resource groups by the resource's key among equal resources; span lists by origin key (the
    # resource and scope, by equality), each in order of first appearance.
    groups: dict[int, _ResourceGroup] = {}
    targets: dict[int, list[bytes]] = {}
    compiled = _compiled_span_field
    for span in spans:
        try:
            field = compiled(span) if compiled is not None else None
            if field is None:
                body = _encode_span(span)
                field = _SCOPE_SPANS_SPAN + _varint(len(body)) + body
            origin = span[ORIGIN]
            target = targets.get(origin)
            if target is None:
                resource_field, resource_schema, scope_field, scope_schema = _origin_fields(origin)
                resource_key = ORIGINS[origin][2]
                group = groups.get(resource_key)
                if group is None:
                    group = _ResourceGroup(resource_field, resource_schema)
                scope_group = _ScopeGroup(scope_field, scope_schema)
                # Everything is encoded before anything is added: a failure leaves no empty group.
                groups[resource_key] = group
                group.scopes[origin] = scope_group
                target = targets[origin] = scope_group.spans
            target.append(field)
        except Exception as error:
            failures.append(error)
    if failures:
        _logger.error(
            "OTLP encoding left out %d of %d spans that could not be encoded; the first failed with %r",
            len(failures),
            total,
            failures[0],
            exc_info=failures[0],
        )
    return b"".join([_field(_REQUEST_RESOURCE_SPANS, group.encode()) for group in groups.values()])
