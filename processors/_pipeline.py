"""The one span processor execscope installs, and the thread that watches it.

``on_start`` stamps the correlation id. ``on_end`` turns the span into its compact form (plain
tuples the garbage collector does not track: see ``_compact``) and hands it to the tail sampler,
and what that releases to every sink's queue. Both run on the application's thread, so both do only
in-memory work bounded by a short lock: they never wait for I/O. ``force_flush`` and
``shutdown`` spend ONE deadline across all sinks (not one per sink), and at shutdown what could
not be delivered in time is spooled for the next start.
"""

from __future__ import annotations

import json
import logging
import os
import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from opentelemetry import context as otel_context
from opentelemetry.context import Context
from opentelemetry.sdk.trace import ReadableSpan, Span, SpanProcessor

from execscope.attributes import CORRELATION_ID
from execscope.processors._compact import CompactSpan, compact_span
from execscope.processors._correlation import REGISTRY, CorrelationRegistry
from execscope.processors._delivery import OtlpSink, Sink
from execscope.processors._governor import Governor, Reading, resident_memory_bytes
from execscope.processors._stats import PipelineStats
from execscope.processors._tail import TailSampler

_logger = logging.getLogger(__name__)

#: CPU the application's thread spends per span in execscope's own code (on_start/on_end and,
#: for recorded calls, capture), measured with ``python -m bench pipeline``; the governor adds it
#: to the worker threads' measured CPU to estimate what execscope costs the process.
HOT_PATH_CPU_PER_SPAN_S = 4e-6


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

    def on_start(self, span: Span, parent_context: Context | None = None) -> None:
        self.stats.started += 1
        try:
            context = parent_context if parent_context is not None else otel_context.get_current()
            span.set_attribute(CORRELATION_ID, self._registry.resolve(span.context.trace_id, context))
        except Exception:  # fail open
            self.stats.internal_errors += 1

    def on_end(self, span: ReadableSpan) -> None:
        self.stats.ended += 1
        try:
            self._to_sinks(self.tail.offer(compact_span(span)))
        except Exception:  # fail open
            self.stats.internal_errors += 1
            _logger.debug("execscope: pipeline error at span end", exc_info=True)

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

    def _totals(self) -> tuple[float, int]:
        cpu = sum(sink.worker_cpu_s for sink in self.processor.sinks) + self.extra_cpu_s()
        return cpu, self.processor.stats.ended

    def tick(self, *, observe: bool = True) -> Reading:
        now = time.monotonic()
        elapsed = max(now - self._last_time, 1e-6)
        cpu, ended = self._totals()
        previous_cpu, previous_ended = self._last
        self._last, self._last_time = (cpu, ended), now
        spans = max(0, ended - previous_ended)
        sinks = self.processor.sinks
        spool_fill = 0.0
        for sink in sinks:
            if isinstance(sink, OtlpSink) and sink.spool is not None and sink.spool.max_bytes:
                spool_fill = max(spool_fill, sink.spool.size_bytes / sink.spool.max_bytes)
        reading = self.last_reading = Reading(
            queue_fill=max((sink.queue_depth / sink.max_queue for sink in sinks), default=0.0),
            spool_fill=spool_fill,
            export_failing=any(isinstance(sink, OtlpSink) and sink.breaker.open for sink in sinks),
            spans_per_s=spans / elapsed,
            cpu_share=((cpu - previous_cpu) + spans * HOT_PATH_CPU_PER_SPAN_S) / elapsed,
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
