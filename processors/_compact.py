"""Ended spans as tuples of plain values: the form in which the pipeline holds them.

Why not hold the SDK's span objects: a span waits in the tail sampler and in an export queue for
up to seconds, and one SDK span is a graph of about fifteen objects the garbage collector tracks
(the span, its attribute mappings, its event list and events, its lock, its contexts). Held by
the thousand, they outlive the young collections and are promoted, and the full collections that
this promotion triggers walk every one of them: with spans made in a tight loop, that cost the
application's thread more CPU than making the spans did. A tuple holding only strings, numbers
and such tuples is untracked by the collector at its first young collections, so a held compact
span costs the collector nothing, and the SDK span it was made from is freed when the
application lets go of it.

A compact span is a plain ``tuple`` (a subclass would stay tracked) indexed by the constants
below. Attributes are tuples of ``(key, value)`` pairs in their original order. Resource and
instrumentation scope, shared by many spans, are kept once in :data:`ORIGINS` and referred to by
an integer key.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable, Mapping
from typing import Any, Final

from opentelemetry.attributes import BoundedAttributes
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import Event, ReadableSpan, Span
from opentelemetry.sdk.util import BoundedList
from opentelemetry.sdk.util.instrumentation import InstrumentationScope
from opentelemetry.trace import Link, SpanContext, SpanKind, Status, StatusCode, TraceFlags, TraceState

from execscope.processors._compiled import COMPILED
from execscope.tracing._attributes import FastAttributes

#: A span held by the pipeline (see the module docstring).
CompactSpan = tuple[Any, ...]
#: ``((key, value), ...)``
Pairs = tuple[tuple[str, Any], ...]

NAME: Final = 0
TRACE_ID: Final = 1
SPAN_ID: Final = 2
TRACE_FLAGS: Final = 3
#: The W3C ``tracestate`` header of the span's context; "" when empty.
TRACE_STATE: Final = 4
#: The parent's span id; 0 for a root span.
PARENT_ID: Final = 5
PARENT_IS_REMOTE: Final = 6
#: ``SpanKind.value``
KIND: Final = 7
START: Final = 8
END: Final = 9
ATTRIBUTES: Final = 10
DROPPED_ATTRIBUTES: Final = 11
#: ``((name, timestamp, attributes, dropped attributes), ...)``
EVENTS: Final = 12
DROPPED_EVENTS: Final = 13
#: ``((trace id, span id, trace flags, trace state header, is remote, attributes, dropped), ...)``
LINKS: Final = 14
DROPPED_LINKS: Final = 15
#: ``StatusCode.value``; None for a span without a status object at all
STATUS_CODE: Final = 16
STATUS_DESCRIPTION: Final = 17
#: The key of the span's resource and scope in :data:`ORIGINS`.
ORIGIN: Final = 18

_ERROR: Final = StatusCode.ERROR.value
_KINDS: Final = {kind.value: kind for kind in SpanKind}
_STATUS_CODES: Final = {code.value: code for code in StatusCode}
_NO_PAIRS: Pairs = ()


class Origins:
    """Resource and instrumentation-scope pairs, each kept once under an integer key.

    Found by identity first (one dictionary lookup per span), then by equality, so the tracers
    that an application creates per call (a new scope object each time) share one key instead of
    growing the table. Keys are never reused; the identity cache is bounded and cleared when full.
    """

    _IDENTITY_CACHE_MAX: Final = 1024

    def __init__(self) -> None:
        self._by_identity: dict[tuple[int, int], tuple[Resource, InstrumentationScope | None, int]] = {}
        #: By the resource's key among equal resources and the scope (whose hash is cheap).
        self._by_value: dict[tuple[int, InstrumentationScope | None], int] = {}
        self._resource_keys: dict[Resource, int] = {}
        #: id(resource) -> (resource, its key): hashing a Resource serialises its attributes.
        self._resources_by_identity: dict[int, tuple[Resource, int]] = {}
        #: key -> (resource, scope, key of the resource among equal resources)
        self.entries: list[tuple[Resource, InstrumentationScope | None, int]] = []
        self._lock = threading.Lock()

    def key(self, resource: Resource, scope: InstrumentationScope | None) -> int:
        found = self._by_identity.get((id(resource), id(scope)))
        if found is not None and found[0] is resource and found[1] is scope:
            return found[2]
        with self._lock:
            resource_key = self._resource_key(resource)
            key = self._by_value.get((resource_key, scope))
            if key is None:
                key = len(self.entries)
                self.entries.append((resource, scope, resource_key))
                self._by_value[resource_key, scope] = key
            if len(self._by_identity) >= self._IDENTITY_CACHE_MAX:
                self._by_identity.clear()
            # The entry holds both objects, so their ids cannot be reused while it is cached.
            self._by_identity[id(resource), id(scope)] = (resource, scope, key)
            return key

    def _resource_key(self, resource: Resource) -> int:
        found = self._resources_by_identity.get(id(resource))
        if found is not None and found[0] is resource:
            return found[1]
        key = self._resource_keys.setdefault(resource, len(self._resource_keys))
        if len(self._resources_by_identity) >= self._IDENTITY_CACHE_MAX:
            self._resources_by_identity.clear()
        self._resources_by_identity[id(resource)] = (resource, key)
        return key

    def __getitem__(self, key: int) -> tuple[Resource, InstrumentationScope | None, int]:
        return self.entries[key]


#: The process's origins (fork keeps them: a child's spans refer to the same objects).
ORIGINS: Final = Origins()


#: Attribute maps whose ``_dict`` holds exactly their items.
_DICT_BACKED: Final = frozenset({BoundedAttributes, FastAttributes})


def _pairs(attributes: object) -> tuple[Pairs, int]:
    """``attributes`` as pairs, and how many the SDK dropped over its limit."""
    if not attributes:
        return _NO_PAIRS, getattr(attributes, "dropped", 0) or 0
    if type(attributes) in _DICT_BACKED:
        # Its public items() goes through Python-level __getitem__; the dict underneath answers
        # in C.
        return tuple(attributes._dict.items()), attributes.dropped  # type: ignore[attr-defined]
    if isinstance(attributes, Mapping):
        return tuple(attributes.items()), getattr(attributes, "dropped", 0) or 0
    return _NO_PAIRS, 0


def _trace_state_header(trace_state: TraceState | None) -> str:
    return trace_state.to_header() if trace_state else ""


def _event(event: Event) -> tuple[Any, ...]:
    attributes, dropped = _pairs(event.attributes)
    return (event.name, event.timestamp, attributes, dropped)


def _link(link: Link) -> tuple[Any, ...]:
    context = link.context
    attributes, dropped = _pairs(link.attributes)
    return (
        context.trace_id,
        context.span_id,
        int(context.trace_flags),
        _trace_state_header(context.trace_state),
        bool(context.is_remote),
        attributes,
        dropped,
    )


#: The ``ReadableSpan`` properties that return one of its fields as it is (or, for the
#: collections, a copy of it).
_FIELD_PROPERTIES: Final = {
    "name": "_name",
    "context": "_context",
    "parent": "_parent",
    "kind": "_kind",
    "start_time": "_start_time",
    "end_time": "_end_time",
    "attributes": "_attributes",
    "events": "_events",
    "links": "_links",
    "status": "_status",
    "resource": "_resource",
    "instrumentation_scope": "_instrumentation_scope",
    "dropped_events": "_events",
    "dropped_links": "_links",
}
_SDK_CONTEXT_GETTERS: Final = (ReadableSpan.get_span_context, Span.get_span_context)
#: Per span class: whether all those properties are the SDK's own (then the fields under them
#: are read directly: the properties cost a call each, and the collection ones copy).
_FIELD_READERS: dict[type, bool] = {}


def _reads_fields(cls: type) -> bool:
    known = _FIELD_READERS.get(cls)
    if known is None:
        known = _FIELD_READERS[cls] = (
            issubclass(cls, ReadableSpan)
            and all(getattr(cls, name, None) is getattr(ReadableSpan, name) for name in _FIELD_PROPERTIES)
            and getattr(cls, "get_span_context", None) in _SDK_CONTEXT_GETTERS
        )
    return known


def _dropped(collection: object) -> int:
    return collection.dropped if isinstance(collection, BoundedList) else 0


def compact_span(span: ReadableSpan, origins: Origins = ORIGINS) -> CompactSpan:
    """The compact form of an ended span (any ``ReadableSpan``, read through its public API)."""
    if _reads_fields(type(span)):
        compiled = _compiled_compact_span
        if compiled is not None:
            made = compiled(span, origins.key)
            if made is not None:
                return made
        name, context, parent, kind = span._name, span._context, span._parent, span._kind
        start, end, status = span._start_time, span._end_time, span._status
        resource, scope = span._resource, span._instrumentation_scope
        raw_attributes: object = span._attributes
        raw_events: Iterable[Event] = span._events or ()
        raw_links: Iterable[Link] = span._links or ()
        dropped_events, dropped_links = _dropped(span._events), _dropped(span._links)
    else:
        name, context, parent, kind = span.name, span.get_span_context(), span.parent, span.kind
        start, end, status = span.start_time, span.end_time, span.status
        resource, scope = span.resource, span.instrumentation_scope
        raw_attributes, raw_events, raw_links = span.attributes, span.events, span.links
        dropped_events, dropped_links = span.dropped_events, span.dropped_links
    if context is None:
        raise ValueError("the span has no span context")
    attributes, dropped_attributes = _pairs(raw_attributes)
    events = tuple([_event(event) for event in raw_events]) if raw_events else ()
    links = tuple([_link(link) for link in raw_links]) if raw_links else ()
    return (
        name,
        context.trace_id,
        context.span_id,
        int(context.trace_flags),
        _trace_state_header(context.trace_state),
        parent.span_id if parent is not None else 0,
        parent is not None and bool(parent.is_remote),
        kind.value if isinstance(kind, SpanKind) else -1,
        start or 0,
        end or 0,
        attributes,
        dropped_attributes,
        events,
        dropped_events,
        links,
        dropped_links,
        status.status_code.value if status is not None else None,
        status.description if status is not None else None,
        origins.key(resource, scope or None),
    )


#: ``compact_span`` in C (``_accelerated.c``) for a span whose fields are read directly: the same
#: tuple, or None for any span it leaves to the Python code above (which stays the
#: specification: a map that is not dict-backed, a subclass of a context, event or status type).
_OriginKey = Callable[[Resource, InstrumentationScope | None], int]
_compiled_compact_span: Callable[[ReadableSpan, _OriginKey], CompactSpan | None] | None = None
if COMPILED is not None:
    COMPILED.configure(
        SpanContext,
        TraceState,
        Event,
        BoundedList,
        _DICT_BACKED,
        SpanKind,
        Status,
        StatusCode,
        _trace_state_header,
        _link,
    )
    _compiled_compact_span = COMPILED.compact_span


def is_error(span: CompactSpan) -> bool:
    return bool(span[STATUS_CODE] == _ERROR)


def is_local_root(span: CompactSpan) -> bool:
    """No parent, or a parent in another process."""
    return not span[PARENT_ID] or bool(span[PARENT_IS_REMOTE])


def with_attributes(
    span: CompactSpan, attributes: Pairs, events: tuple[Any, ...] | None = None
) -> CompactSpan:
    """``span`` with other attributes (and events), everything else the same."""
    fields = list(span)
    fields[ATTRIBUTES] = attributes
    if events is not None:
        fields[EVENTS] = events
    return tuple(fields)


# -- back to SDK objects, for exporters that take them ------------------------------------------


def _bounded(pairs: Pairs, dropped: int) -> BoundedAttributes:
    attributes = BoundedAttributes(maxlen=None, attributes=dict(pairs), immutable=True, max_value_len=None)
    attributes.dropped = dropped
    return attributes


def _context(trace_id: int, span_id: int, flags: int, state: str, *, is_remote: bool) -> SpanContext:
    return SpanContext(
        trace_id,
        span_id,
        is_remote=is_remote,
        trace_flags=TraceFlags(flags),
        trace_state=TraceState.from_header([state]) if state else None,
    )


def _dropped_list(items: list[Any], dropped: int) -> BoundedList[Any] | list[Any]:
    if not dropped:
        return items
    bounded = BoundedList.from_seq(None, items)
    bounded.dropped = dropped
    return bounded


def to_readable(span: CompactSpan, origins: Origins = ORIGINS) -> ReadableSpan:
    """The ``ReadableSpan`` of a compact span, for exporters that take SDK spans."""
    resource, scope, _ = origins[span[ORIGIN]]
    parent = None
    if span[PARENT_ID]:
        parent = SpanContext(span[TRACE_ID], span[PARENT_ID], is_remote=span[PARENT_IS_REMOTE])
    events = [
        Event(name, _bounded(attributes, dropped), timestamp, limit=None)
        for name, timestamp, attributes, dropped in span[EVENTS]
    ]
    links = [
        Link(_context(trace_id, span_id, flags, state, is_remote=remote), _bounded(attributes, dropped))
        for trace_id, span_id, flags, state, remote, attributes, dropped in span[LINKS]
    ]
    readable = ReadableSpan(
        name=span[NAME],
        context=_context(
            span[TRACE_ID], span[SPAN_ID], span[TRACE_FLAGS], span[TRACE_STATE], is_remote=False
        ),
        parent=parent,
        resource=resource,
        attributes=_bounded(span[ATTRIBUTES], span[DROPPED_ATTRIBUTES]),
        kind=_KINDS.get(span[KIND], SpanKind.INTERNAL),
        status=(
            Status(_STATUS_CODES.get(span[STATUS_CODE], StatusCode.UNSET), span[STATUS_DESCRIPTION])
            if span[STATUS_CODE] is not None
            else None  # type: ignore[arg-type]
        ),
        start_time=span[START] or None,
        end_time=span[END] or None,
        instrumentation_scope=scope,
    )
    # Set after construction: ReadableSpan takes plain sequences, and the dropped counts live on
    # the SDK's bounded lists.
    readable._events = _dropped_list(events, span[DROPPED_EVENTS])
    readable._links = _dropped_list(links, span[DROPPED_LINKS])
    return readable
