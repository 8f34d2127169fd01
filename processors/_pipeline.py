"""The one span processor execscope installs, and the thread that watches it.

``on_start`` stamps the correlation id. ``on_end`` turns the span into its compact form (plain
tuples the garbage collector does not track: see ``_compact``) and hands it to the tail sampler,
and what that releases to every sink's queue. Both run on the application's thread, so both do only
in-memory work bounded by a short lock: they never wait for I/O. ``force_flush`` and
``shutdown`` spend ONE deadline across all sinks (not one per sink), and at shutdown what could
not be delivered in time is spooled for the next start.

At the governor's ``emergency`` level ("errors only") both hooks do as little as they can:
``on_start`` does nothing, and ``on_end`` drops a span that has no error status at once (counted
as ``governor``), before making its compact form, unless the tail sampler holds spans of its
trace (which it then concludes as usual). A span with an error is kept, stamped with its
correlation id at its end, and goes straight to the sinks: the decision is made. So under
overload a span costs the hooks little more than the calls into them, and what is kept is the
error spans themselves rather than whole traces (their parents may be missing).

A producer that knows a span's facts before making it (the auto-instrumentor's recorder) asks
``drops_unmade`` first: a span the rules above would drop whatever it holds is counted and never
made.
"""

from __future__ import annotations

import json
import logging
import os
import random
import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, Final

from opentelemetry import context as otel_context
from opentelemetry.context import Context
from opentelemetry.sdk.trace import ReadableSpan, Span, SpanProcessor
from opentelemetry.trace import StatusCode

from execscope.attributes import CORRELATION_ID
from execscope.processors._compact import ATTRIBUTES, TRACE_ID, CompactSpan, compact_span, with_attributes
from execscope.processors._correlation import REGISTRY, CorrelationRegistry
from execscope.processors._delivery import OtlpSink, Sink
from execscope.processors._governor import SHEDDING, Governor, Level, Reading, resident_memory_bytes
from execscope.processors._stats import DropReason, PipelineStats
from execscope.processors._tail import TailSampler

_logger = logging.getLogger(__name__)

#: The governor's estimate of the CPU the application's thread spends per span in execscope's
#: own ``on_start`` and ``on_end``, until those calls have been measured (``HotPathClock``).
HOT_PATH_CPU_PER_SPAN_S = 4e-6
#: On average one call in this many of ``on_start`` and of ``on_end`` is timed.
_TIMED_EVERY: Final = 64


class HotPathClock:
    """The CPU ``on_start`` and ``on_end`` cost the application's threads, measured on a sample.

    Why sampled: reading a thread's CPU clock is a system call, a good part of what the hooks
    themselves cost; about one call in ``_TIMED_EVERY`` gives the governor a measured figure
    (which includes what contention with the export worker adds) for a negligible share of the
    work. The gaps between timed calls are random: a fixed period would keep timing the same
    phase of a periodic cost (the worker's wake-up every batch, the collector's young
    collections every so many allocations) and measure it always or never.
    """

    __slots__ = (
        "_end_count",
        "_end_s",
        "_random",
        "_start_count",
        "_start_s",
        "next_timed_end",
        "next_timed_start",
        "per_span_s",
    )

    def __init__(self) -> None:
        self._start_s = self._end_s = 0.0
        self._start_count = self._end_count = 0
        #: The latest estimate of both hooks' CPU per span.
        self.per_span_s = HOT_PATH_CPU_PER_SPAN_S
        self._random = random.Random(0x5EED)  # private: the program's random state is not ours
        #: The counts of started and ended spans at which the next call of each hook is timed.
        self.next_timed_start = self.next_timed_end = _TIMED_EVERY

    def gap(self) -> int:
        return self._random.randrange(1, 2 * _TIMED_EVERY)

    def started(self, cpu_s: float) -> None:
        self._start_s += cpu_s
        self._start_count += 1

    def ended(self, cpu_s: float) -> None:
        self._end_s += cpu_s
        self._end_count += 1

    def take(self) -> float:
        """The estimate from the calls timed since the last take (the previous one without any)."""
        if self._start_count and self._end_count:
            self.per_span_s = self._start_s / self._start_count + self._end_s / self._end_count
        self._start_s = self._end_s = 0.0
        self._start_count = self._end_count = 0
        return self.per_span_s


class ExecscopeSpanProcessor(SpanProcessor):
    def __init__(
        self,
        sinks: Sequence[Sink],
        tail: TailSampler,
        stats: PipelineStats,
        *,
        flush_deadline_s: float,
        registry: CorrelationRegistry = REGISTRY,
        on_shutdown: Callable[[], None] | None = None,
    ) -> None:
        self.sinks = tuple(sinks)
        self.tail = tail
        self.stats = stats
        self.flush_deadline_s = flush_deadline_s
        self._registry = registry
        self._on_shutdown = on_shutdown
        self._shut_down = False
        self.clock = HotPathClock()
        #: Set once a span started at the emergency level: from then on, a span that ends
        #: without a correlation id is given one at its end.
        self._unstamped = False

    def on_start(self, span: Span, parent_context: Context | None = None) -> None:
        stats = self.stats
        stats.started += 1
        clock = self.clock
        if stats.started < clock.next_timed_start:
            self._start(span, parent_context)
            return
        clock.next_timed_start = stats.started + clock.gap()
        began = time.thread_time()
        self._start(span, parent_context)
        clock.started(time.thread_time() - began)

    def _start(self, span: Span, parent_context: Context | None) -> None:
        if SHEDDING.level >= Level.EMERGENCY:
            self._unstamped = True  # stamped at its end, if it is kept
            return
        try:
            context = parent_context if parent_context is not None else otel_context.get_current()
            span.set_attribute(CORRELATION_ID, self._registry.resolve(span.context.trace_id, context))
        except Exception:  # fail open
            self.stats.internal_errors += 1

    def on_end(self, span: ReadableSpan) -> None:
        stats = self.stats
        stats.ended += 1
        clock = self.clock
        if stats.ended < clock.next_timed_end:
            self._end(span)
            return
        clock.next_timed_end = stats.ended + clock.gap()
        began = time.thread_time()
        self._end(span)
        clock.ended(time.thread_time() - began)

    def _end(self, span: ReadableSpan) -> None:
        if SHEDDING.level >= Level.EMERGENCY:
            self._end_in_emergency(span)
            return
        self._end_normally(span)

    def _end_normally(self, span: ReadableSpan) -> None:
        try:
            compact = compact_span(span)
            if self._unstamped:
                compact = self._stamped(compact)
            self._to_sinks(self.tail.offer(compact))
        except Exception:  # fail open
            self.stats.internal_errors += 1
            _logger.debug("execscope: pipeline error at span end", exc_info=True)

    def _end_in_emergency(self, span: ReadableSpan) -> None:
        """``on_end`` at the emergency level: errors only (see the module docstring)."""
        try:
            context = span.context
            if context is not None and self.tail.holds(context.trace_id):
                self._end_normally(span)
                return
            status = span.status
            if status is None or status.status_code is not StatusCode.ERROR:
                self.stats.drop(DropReason.GOVERNOR)
                return
            self._to_sinks([self._stamped(compact_span(span))])
        except Exception:  # fail open
            self.stats.internal_errors += 1
            _logger.debug("execscope: pipeline error at span end", exc_info=True)

    def drops_unmade(self, trace_id: int, *, local_root: bool, start: int, end: int, error: bool) -> bool:
        """For a producer that knows a span's facts before it makes the span (the auto-instrumentor's
        recorder): True when ``on_end`` would drop it by a rule whatever else it holds (errors
        only, at the emergency level; a trace already decided against, or a one-span trace the
        tail decision drops). The span is then counted as ended and dropped, and the producer
        need not make it: under load the sampling the governor asks for saves making the spans
        it drops, not only exporting them."""
        try:
            if SHEDDING.level >= Level.EMERGENCY and not self.tail.holds(trace_id):
                if error:
                    return False
                self.stats.drop(DropReason.GOVERNOR)
            elif not self.tail.drops_unmade(
                trace_id, local_root=local_root, start=start, end=end, error=error
            ):
                return False
            self.stats.ended += 1
            return True
        except Exception:  # fail open: the span is made and offered as usual
            self.stats.internal_errors += 1
            return False

    def _stamped(self, span: CompactSpan) -> CompactSpan:
        """``span`` with its correlation id, when ``on_start`` did not stamp it (it started at
        the emergency level): the id of its trace, or the caller's, from the context current
        at its end (its parent's, where the span was entered with ``start_as_current_span``)."""
        attributes = span[ATTRIBUTES]
        if any(key == CORRELATION_ID for key, _ in attributes):
            return span
        correlation_id = self._registry.resolve(span[TRACE_ID], otel_context.get_current())
        return with_attributes(span, (*attributes, (CORRELATION_ID, correlation_id)))

    def _to_sinks(self, released: list[CompactSpan]) -> None:
        for span in released:
            for sink in self.sinks:
                sink.offer(span)

    def force_flush(self, timeout_millis: int = 30_000) -> bool:
        deadline = time.monotonic() + timeout_millis / 1000
        self._to_sinks(self.tail.flush())
        return all([sink.flush(deadline) for sink in self.sinks])

    def shutdown(self) -> None:
        if self._shut_down:
            return
        self._shut_down = True
        deadline = time.monotonic() + self.flush_deadline_s
        try:
            self._to_sinks(self.tail.flush())
        except Exception:  # fail open
            self.stats.internal_errors += 1
        for sink in self.sinks:
            try:
                sink.shutdown(deadline)
            except Exception:  # fail open: the other sinks still get their turn
                self.stats.internal_errors += 1
                _logger.debug("execscope: shutting down %s failed", sink.name, exc_info=True)
        if self._on_shutdown is not None:
            self._on_shutdown()


class Monitor:
    """Once a second: measure the load, let the governor pick a level, publish the status."""

    def __init__(
        self,
        processor: ExecscopeSpanProcessor,
        governor: Governor,
        *,
        status_dir: Path | None,
        service: str,
        extra_cpu_s: Callable[[], float] = lambda: 0.0,
        extra_stats: Callable[[], dict[str, Any]] = dict,
        interval_s: float = 1.0,
    ) -> None:
        self.processor = processor
        self.governor = governor
        self.status_dir = status_dir
        self.service = service
        self.extra_cpu_s = extra_cpu_s
        self.extra_stats = extra_stats
        self._interval_s = interval_s
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._started_at = time.time()
        self._last = self._totals()
        self._last_time = time.monotonic()
        self.last_reading = Reading()
        os.register_at_fork(after_in_child=self._after_fork_in_child)

    def start(self) -> None:
        self.publish()
        self._thread = threading.Thread(target=self._run, name="execscope-governor", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        try:
            self.tick(observe=False)  # the final figures, without a level change at exit
        except Exception:  # fail open: the last status is still written
            self.processor.stats.internal_errors += 1
        self.publish(exited=True)

    def _after_fork_in_child(self) -> None:
        self.processor.stats.reset()
        self.processor.clock = HotPathClock()  # its thresholds count the parent's spans
        self._stop = threading.Event()
        self._started_at = time.time()
        self._last = self._totals()
        self._last_time = time.monotonic()
        self.start()

    def _run(self) -> None:
        ticks = 0
        while not self._stop.wait(self._interval_s):
            try:
                self.tick()
                ticks += 1
                if ticks % 2 == 0:
                    self.publish()
            except Exception:  # fail open
                self.processor.stats.internal_errors += 1
                _logger.debug("execscope: governor error", exc_info=True)

    def _totals(self) -> tuple[float, int, int]:
        cpu = sum(sink.export_cpu_s for sink in self.processor.sinks) + self.extra_cpu_s()
        stats = self.processor.stats
        return cpu, stats.ended, stats.started

    def tick(self, *, observe: bool = True) -> Reading:
        now = time.monotonic()
        elapsed = max(now - self._last_time, 1e-6)
        cpu, ended, started = self._totals()
        previous_cpu, previous_ended, previous_started = self._last
        self._last, self._last_time = (cpu, ended, started), now
        spans = max(0, ended - previous_ended)
        # Spans that went through on_start were made on the application's threads, which paid for
        # both hooks; the recorder's spans only pass on_end, on its own thread (in extra_cpu_s).
        hot_path_s = max(0, started - previous_started) * self.processor.clock.take()
        sinks = self.processor.sinks
        spool_fill = 0.0
        for sink in sinks:
            if isinstance(sink, OtlpSink) and sink.spool is not None and sink.spool.max_bytes:
                spool_fill = max(spool_fill, sink.spool.size_bytes / sink.spool.max_bytes)
        reading = self.last_reading = Reading(
            queue_fill=max((sink.queue_depth / sink.max_queue for sink in sinks), default=0.0),
            spool_fill=spool_fill,
            export_failing=any(isinstance(sink, OtlpSink) and sink.breaker.open for sink in sinks),
            export_latency_s=max((sink.take_slowest_export_s() for sink in sinks), default=0.0),
            spans_per_s=spans / elapsed,
            cpu_share=((cpu - previous_cpu) + hot_path_s) / elapsed,
            memory_bytes=resident_memory_bytes(),
        )
        if observe:
            self.governor.observe(reading)
        return reading

    def status(self, *, exited: bool = False) -> dict[str, Any]:
        processor = self.processor
        reading = self.last_reading
        sinks = []
        for sink in processor.sinks:
            entry: dict[str, Any] = {
                "name": sink.name,
                "queue_depth": sink.queue_depth,
                "queue_size": sink.max_queue,
            }
            if isinstance(sink, OtlpSink):
                entry["exporter_failing"] = sink.breaker.open
                entry["exporter_failures"] = sink.breaker.trips
                if sink.spool is not None:
                    entry["spool_spans"] = sink.spool.pending_spans
                    entry["spool_bytes"] = sink.spool.size_bytes
            sinks.append(entry)
        return {
            "pid": os.getpid(),
            "service": self.service,
            "started_at": self._started_at,
            "updated_at": time.time(),
            "exited": exited,
            "level": self.governor.level.name.lower(),
            "pressure": round(self.governor.last_pressure, 3),
            "level_changes": dict(self.governor.changes),
            "spans_per_s": round(reading.spans_per_s, 1),
            "export_latency_s": round(reading.export_latency_s, 3),
            "cpu_share": round(reading.cpu_share, 4),
            "memory_bytes": reading.memory_bytes,
            "spans": processor.stats.snapshot(),
            "tail": {"held_traces": processor.tail.held_traces, "held_bytes": processor.tail.held_bytes},
            "sinks": sinks,
            **self.extra_stats(),
        }

    def publish(self, *, exited: bool = False) -> None:
        """Write this process's status file (atomically) for ``execscope status``."""
        if self.status_dir is None:
            return
        try:
            self.status_dir.mkdir(parents=True, exist_ok=True)
            target = self.status_dir / f"{os.getpid()}.json"
            temporary = target.with_suffix(".tmp")
            temporary.write_text(json.dumps(self.status(exited=exited)), encoding="utf-8")
            temporary.replace(target)
        except OSError as error:
            _logger.debug("execscope: status file not written: %s", error)
