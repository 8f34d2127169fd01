"""One correlation id per unit of work: taken from the caller, or made at the local root.

Where an id comes from, in order: the ``x-correlation-id`` header or the
``execscope.correlation_id`` baggage entry of the incoming request (the propagator puts either
into the context's baggage), the id already given to the same trace in this process, or a new
random 128-bit id (unique across processes and hosts without coordination).

Ids are remembered per trace id in a bounded table rather than carried in the context, because
the auto-instrumentor's recorded calls never pass through a span processor's ``on_start``: they
get their id when the recorder turns them into spans, from the same table. The first span of a
trace seen in this process fixes the id for every other span of it here, whichever order they
arrive in. The table forgets the least recently used traces beyond its capacity; only a trace
that stays silent while more than that many others pass would get a second id.
"""

from __future__ import annotations

import logging
import os
import random
import re
import threading
from collections import OrderedDict
from typing import Final

from opentelemetry import baggage, trace
from opentelemetry.baggage.propagation import W3CBaggagePropagator
from opentelemetry.context import Context
from opentelemetry.propagators.textmap import (
    CarrierT,
    Getter,
    Setter,
    TextMapPropagator,
    default_getter,
    default_setter,
)

from execscope.attributes import CORRELATION_ID

_logger = logging.getLogger(__name__)

#: The request/response header that carries the id between services that do not use baggage.
HEADER: Final = "x-correlation-id"
#: The W3C baggage entry that carries the id (the same name as the span attribute).
BAGGAGE_KEY: Final = CORRELATION_ID
#: Traces whose id is remembered; beyond it the least recently used are forgotten.
REGISTRY_CAPACITY: Final = 65_536
# What an id taken from a caller may look like: printable, no separators of baggage or headers.
_VALID_ID = re.compile(r"[A-Za-z0-9._:\-]{1,128}")


class _IdSource:
    """Random 128-bit ids from a generator seeded by the operating system, reseeded after fork.

    Why not ``os.urandom`` per id: it releases the GIL for its system call, and on a thread that
    makes spans while another thread (an export worker) waits for the GIL, every release hands
    the interpreter over and back, which cost about 15 µs of CPU per root span here. A Mersenne
    Twister seeded with 2,496 bytes from the OS gives ids as unique (ids only need to be
    unique, not secret) for 60 ns, without a system call. It is a private instance, never the
    program's shared ``random`` generator, and a forked child reseeds so that parent and child
    never draw the same sequence.
    """

    def __init__(self) -> None:
        self._random = random.Random(os.urandom(2496))
        os.register_at_fork(after_in_child=self._reseed)

    def _reseed(self) -> None:
        self._random = random.Random(os.urandom(2496))

    def new_id(self) -> str:
        return f"{self._random.getrandbits(128):032x}"


_ID_SOURCE: Final = _IdSource()


def new_correlation_id() -> str:
    """A new random 128-bit id, as 32 hex digits."""
    return _ID_SOURCE.new_id()


def valid_correlation_id(value: object) -> str | None:
    """``value`` when it is usable as a correlation id, otherwise None (and it is ignored)."""
    if isinstance(value, str) and _VALID_ID.fullmatch(value):
        return value
    if value is not None:
        _logger.debug("execscope: ignoring malformed incoming correlation id %.80r", value)
    return None


class CorrelationRegistry:
    """Trace id → correlation id, bounded, safe to use from any thread."""

    def __init__(self, capacity: int = REGISTRY_CAPACITY) -> None:
        self._capacity = capacity
        self._ids: OrderedDict[int, str] = OrderedDict()
        self._lock = threading.Lock()

    def resolve(self, trace_id: int, context: Context | None = None) -> str:
        """The id of ``trace_id``: the caller's (from ``context``'s baggage), a known one, or a new one."""
        incoming = baggage.get_baggage(BAGGAGE_KEY, context) if context is not None else None
        with self._lock:
            ids = self._ids
            if incoming is not None and (chosen := valid_correlation_id(incoming)) is not None:
                ids[trace_id] = chosen
            else:
                known = ids.get(trace_id)
                if known is None:
                    known = ids[trace_id] = new_correlation_id()
                chosen = known
            ids.move_to_end(trace_id)
            if len(ids) > self._capacity:
                ids.popitem(last=False)
            return chosen

    def known(self, trace_id: int) -> str | None:
        with self._lock:
            return self._ids.get(trace_id)


#: The process's registry (a forked child keeps it: its traces continue the parent's).
REGISTRY: Final = CorrelationRegistry()


def current_correlation_id(context: Context | None = None) -> str | None:
    """The correlation id of the work running now (``None`` outside any trace and baggage)."""
    incoming = baggage.get_baggage(BAGGAGE_KEY, context)
    if incoming is not None and (chosen := valid_correlation_id(incoming)) is not None:
        return chosen
    span_context = trace.get_current_span(context).get_span_context()
    if not span_context.is_valid:
        return None
    return REGISTRY.resolve(span_context.trace_id, context)


class CorrelationPropagator(TextMapPropagator):
    """Carries the correlation id in and out: ``x-correlation-id`` and W3C baggage.

    Extract: an ``x-correlation-id`` header becomes the context's baggage entry (a baggage entry
    sent by the caller arrives through this propagator's baggage handling too). Inject: the id of
    the current work is written as ``x-correlation-id`` and added to the ``baggage`` header next
    to the context's other entries, so it also reaches services that only forward baggage.
    Listed in ``OTEL_PROPAGATORS`` as ``execscope_correlation`` (the default execscope sets
    is ``tracecontext,baggage,execscope_correlation``).
    """

    _baggage = W3CBaggagePropagator()

    def extract(
        self, carrier: CarrierT, context: Context | None = None, getter: Getter[CarrierT] = default_getter
    ) -> Context:
        context = self._baggage.extract(carrier, context, getter)
        values = getter.get(carrier, HEADER)
        header = valid_correlation_id(values[0].strip()) if values else None
        if header is not None:
            context = baggage.set_baggage(BAGGAGE_KEY, header, context)
        return context

    def inject(
        self, carrier: CarrierT, context: Context | None = None, setter: Setter[CarrierT] = default_setter
    ) -> None:
        correlation_id = current_correlation_id(context)
        if correlation_id is None:
            return
        setter.set(carrier, HEADER, correlation_id)
        self._baggage.inject(carrier, baggage.set_baggage(BAGGAGE_KEY, correlation_id, context), setter)

    @property
    def fields(self) -> set[str]:
        return {HEADER, *self._baggage.fields}
