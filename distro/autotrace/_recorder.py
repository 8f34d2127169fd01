"""Turns finished calls into SDK spans, off the calling thread.

The calling thread only appends a finished :class:`~execscope.autotrace._runtime.Call` to a
bounded queue. A daemon thread wakes every ``interval`` seconds (or once ``batch`` calls are
waiting), builds a ``ReadableSpan`` for each one and hands it to the tracer provider's span
processors, exactly as if the SDK had ended the span, so batching, exporters and any other
processors apply unchanged. When the queue is full, new calls are dropped and counted.
"""

from __future__ import annotations

import atexit
import collections
import logging
import os
import threading
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Final, Protocol

from opentelemetry import context as otel_context
from opentelemetry.context import _SUPPRESS_INSTRUMENTATION_KEY
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import Event, ReadableSpan
from opentelemetry.sdk.util.instrumentation import InstrumentationScope
from opentelemetry.trace import SpanKind
from opentelemetry.trace.span import SpanContext, TraceFlags
from opentelemetry.trace.status import Status, StatusCode

from execscope._version import __version__
from execscope.attributes import CORRELATION_ID
from execscope.capture import SpanBudget, render
from execscope.processors._correlation import REGISTRY

if TYPE_CHECKING:
    from execscope.autotrace._runtime import Call

_logger = logging.getLogger("execscope.autotrace")
SCOPE: Final = InstrumentationScope("execscope.autotrace", __version__)
_SAMPLED: Final = TraceFlags(TraceFlags.SAMPLED)
# Status is immutable: one instance serves every span (the SDK's ReadableSpan shares its default too).
_UNSET: Final = Status(StatusCode.UNSET)
GENERATOR_YIELDS: Final = "execscope.generator.yields"
GENERATOR_CLOSED: Final = "execscope.generator.closed"


class RecorderStats:
    """Counters of what happened to recorded calls (read by tests, ``status`` and metrics)."""

    __slots__ = (
        "conversion_errors",
        "dropped_no_sink",
        "dropped_queue_full",
        "exported",
        "internal_errors",
        "submitted",
    )

    def __init__(self) -> None:
        self.submitted = 0
        #: Handed to the span pipeline: made into a span, or dropped by the pipeline's rule (and
        #: counted there) before being made.
        self.exported = 0
        self.dropped_queue_full = 0
        self.dropped_no_sink = 0
        self.conversion_errors = 0
        self.internal_errors = 0

    def as_dict(self) -> dict[str, int]:
        return {name: getattr(self, name) for name in self.__slots__}


class Recorder:
    """The queue between rewritten functions and the span processors.

    ``max_pending`` bounds memory: each waiting call holds its rendered attributes (a few
    hundred bytes). ``sink`` receives each span; with no sink, calls are counted as dropped.
    """

    def __init__(self, max_pending: int = 100_000, batch: int = 512, interval: float = 0.5) -> None:
        self.max_pending = max_pending
        self.batch = batch
        self.interval = interval
        self.stats = RecorderStats()
        #: CPU seconds the recorder's thread has spent turning calls into spans (for the governor).
        self.cpu_s = 0.0
        self._queue: collections.deque[Call] = collections.deque()
        self._wake = threading.Event()
        self._lock = threading.Lock()
        # Held while calls are handed to the sink, so that flush() returns only once a call
        # the worker already took from the queue has reached the sink too.
        self._drain_lock = threading.RLock()
        self._sink: Callable[[ReadableSpan], None] | None = None
        self._drops_unmade: DropsUnmade | None = None
        self._resource = Resource.get_empty()
        self._thread: threading.Thread | None = None
        self._stopping = False
        self._warned_full = False
        self._atexit_registered = False
        if hasattr(os, "register_at_fork"):
            os.register_at_fork(after_in_child=self._after_fork_in_child)

    # -- wiring ------------------------------------------------------------------------------

    def start(
        self,
        sink: Callable[[ReadableSpan], None],
        resource: Resource,
        drops_unmade: DropsUnmade | None = None,
    ) -> None:
        """Send spans to ``sink`` (a span processor's ``on_end``) with ``resource`` from now on.

        ``drops_unmade`` (execscope's processor's, when it is the only one) is asked first about
        each call: a call it drops by a rule (and counts) is not made into a span at all.
        """
        with self._lock:
            self._sink = sink
            self._resource = resource
            self._drops_unmade = drops_unmade
            self._stopping = False
            self._ensure_thread()
            if not self._atexit_registered:
                # Registered after the tracer provider's own exit hook, so it runs before it
                # and the provider's shutdown still exports what this flush hands over.
                atexit.register(self.shutdown)
                self._atexit_registered = True

    def _ensure_thread(self) -> None:
        if self._thread is None or not self._thread.is_alive():
            self._thread = threading.Thread(target=self._run, name="execscope-autotrace", daemon=True)
            self._thread.start()

    def _after_fork_in_child(self) -> None:
        # The parent's waiting calls are the parent's to export; the worker thread did not
        # survive the fork, so a new one is started for the child's own calls.
        self._queue.clear()
        self._wake = threading.Event()
        self._lock = threading.Lock()
        self._drain_lock = threading.RLock()
        self._thread = None
        if self._sink is not None and not self._stopping:
            self._ensure_thread()

    # -- hot path ----------------------------------------------------------------------------

    def submit(self, call: Call) -> None:
        queue = self._queue
        if len(queue) >= self.max_pending:
            self.stats.dropped_queue_full += 1
            if not self._warned_full:
                self._warned_full = True
                _logger.warning(
                    "execscope: %d recorded calls are waiting for export; further calls are dropped "
                    "(and counted) until the queue drains",
                    self.max_pending,
                )
            return
        queue.append(call)
        self.stats.submitted += 1
        if len(queue) >= self.batch:
            self._wake.set()

    def count_internal_error(self) -> None:
        self.stats.internal_errors += 1

    # -- worker ------------------------------------------------------------------------------

    def _run(self) -> None:
        # Calls made by exporters or processors running on this thread must not be recorded
        # (that would feed back into the queue): suppress instrumentation for the thread.
        otel_context.attach(otel_context.set_value(_SUPPRESS_INSTRUMENTATION_KEY, True))
        while True:
            self._wake.wait(self.interval)
            self._wake.clear()
            # CPU is added up batch by batch: under steady load the queue does not empty for
            # seconds, and the governor must see what the recorder costs while it is being paid.
            while True:
                started = time.thread_time()
                self._drain(self.batch)
                self.cpu_s += time.thread_time() - started
                if not self._queue:
                    break
            if self._stopping:
                return

    def _drain(self, limit: int | None = None) -> int:
        with self._drain_lock:
            return self._drain_locked(limit)

    def _drain_locked(self, limit: int | None = None) -> int:
        """Hand waiting calls to the sink, at most ``limit`` (all of them when None)."""
        queue = self._queue
        sink = self._sink
        resource = self._resource
        drops_unmade = self._drops_unmade
        handed = 0
        taken = 0
        while queue and (limit is None or taken < limit):
            taken += 1
            try:
                call = queue.popleft()
            except IndexError:
                break
            if sink is None:
                self.stats.dropped_no_sink += 1
                continue
            try:
                if drops_unmade is None or not drops_unmade(
                    call.trace_id,
                    local_root=is_local_root(call),
                    start=call.start,
                    end=call.end_time,
                    error=is_error(call),
                ):
                    sink(to_readable_span(call, resource))
                self.stats.exported += 1
                handed += 1
            except Exception:
                self.stats.conversion_errors += 1
                if self.stats.conversion_errors == 1:
                    _logger.warning("execscope: a recorded call could not be exported", exc_info=True)
        return handed

    def flush(self) -> int:
        """Hand every waiting call to the sink now, on this thread; returns how many."""
        # Suppressed and with no current span (not the caller's, which may be a recorded call
        # whose children are recorded regardless), so that rewritten code run by processors
        # or exporters is not recorded and fed back into the queue being drained.
        token = otel_context.attach(
            otel_context.set_value(_SUPPRESS_INSTRUMENTATION_KEY, True, otel_context.Context())
        )
        try:
            return self._drain()
        finally:
            otel_context.detach(token)

    def pending(self) -> int:
        return len(self._queue)

    def shutdown(self) -> None:
        """Stop the worker after handing over what is waiting (also run at interpreter exit)."""
        self._stopping = True
        self._wake.set()
        self.flush()


class DropsUnmade(Protocol):
    """``ExecscopeSpanProcessor.drops_unmade``."""

    def __call__(self, trace_id: int, *, local_root: bool, start: int, end: int, error: bool) -> bool: ...


def is_local_root(call: Call) -> bool:
    """Whether the call's span has no parent, or a parent in another process (as its span will)."""
    parent = call.parent_context
    if parent is None:
        return not call.parent_id
    return bool(parent.is_remote)


def is_error(call: Call) -> bool:
    """Whether the call's span will have an error status (see :func:`to_readable_span`)."""
    status = call.status
    if status is not None and status.status_code is not StatusCode.UNSET:
        return status.status_code is StatusCode.ERROR
    return call.exception is not None


def to_readable_span(call: Call, resource: Resource) -> ReadableSpan:
    """The SDK's view of a finished call."""
    site = call.site
    attributes: dict[str, Any] = dict(site.attributes)
    if call.attributes:
        attributes.update(call.attributes)
    deferred = call.deferred
    if deferred:
        # Immutable builtin values the calling thread kept unrendered (see Site._capture_arguments).
        config = site.config
        limits, redactor = config.limits, config.redactor
        budget = call.budget or SpanBudget(limits.span_budget)
        for key, value in deferred:
            attributes[key] = render(value, limits, budget, redactor)
    # Recorded calls never pass through a span processor's on_start: their correlation id
    # comes from the same per-trace table here, on the recorder's thread.
    attributes[CORRELATION_ID] = REGISTRY.resolve(call.trace_id)
    if site.flags & 16:  # SiteFlags.GENERATOR
        attributes[GENERATOR_YIELDS] = call.yields
        if call.closed:
            attributes[GENERATOR_CLOSED] = True
    events = []
    status = call.status or _UNSET
    if call.exception is not None:
        from execscope.autotrace._runtime import format_stacktrace

        type_name, message, summary = call.exception
        events.append(
            Event(
                "exception",
                {
                    "exception.type": type_name,
                    "exception.message": message,
                    "exception.stacktrace": format_stacktrace(type_name, message, summary),
                },
                call.end_time,
            )
        )
        if call.status is None or call.status.status_code is StatusCode.UNSET:
            status = Status(StatusCode.ERROR, f"{type_name}: {message}" if message else type_name)
    if call.events:
        events.extend(Event(name, attrs, ts) for name, attrs, ts in call.events)
        events.sort(key=lambda e: e.timestamp)
    parent = call.parent_context
    if parent is None and call.parent_id:
        parent = SpanContext(call.trace_id, call.parent_id, is_remote=False, trace_flags=_SAMPLED)
    return ReadableSpan(
        name=call.name,
        context=SpanContext(call.trace_id, call.span_id, is_remote=False, trace_flags=_SAMPLED),
        parent=parent,
        resource=resource,
        attributes=attributes,
        events=events,
        kind=SpanKind.INTERNAL,
        status=status,
        start_time=call.start,
        end_time=call.end_time,
        instrumentation_scope=SCOPE,
    )


#: The process-wide recorder every site submits to.
RECORDER: Final = Recorder()
