"""What creating and ending a span costs the application's thread, with and without an SDK behind it,
and with execscope's tracer provider in the SDK's place.

Every variant makes the same spans: a root span with five attributes and one event, made current
while it is open. The SDK variants use their own ``TracerProvider`` (never the global one). The
batch variants export on the processor's worker thread, so their figure includes the worker
competing with the application for the GIL; each round ends with ``force_flush()`` outside the
timed region, so no round leaves export work for the next variant's round.
"""

from __future__ import annotations

import shutil
import tempfile
import time
from abc import abstractmethod
from collections.abc import Sequence
from pathlib import Path

from opentelemetry import trace
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import ReadableSpan, SpanProcessor, TracerProvider
from opentelemetry.sdk.trace.export import (
    BatchSpanProcessor,
    SimpleSpanProcessor,
    SpanExporter,
    SpanExportResult,
)
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from bench._harness import Benchmark, Variant
from execscope.store import StoreSpanExporter
from execscope.tracing import ExecscopeTracerProvider

SPANS_PER_ROUND = 2_000
SCOPE = "execscope.bench.span_export"
RESOURCE = Resource.create({"service.name": "execscope-bench"})
#: Four fixed attributes; each span adds a fifth, its index.
ATTRIBUTES: dict[str, str | bool | float | int] = {
    "code.function.name": "handle_request",
    "bench.route": "/orders/{id}",
    "bench.retry": False,
    "bench.ratio": 0.25,
}


def make_spans(tracer: trace.Tracer, count: int) -> int:
    for index in range(count):
        with tracer.start_as_current_span("bench.operation", attributes=ATTRIBUTES) as span:
            span.set_attribute("bench.index", index)
            span.add_event("bench.checkpoint", {"bench.index": index})
    return count


class NoSdk(Variant):
    """The OpenTelemetry API with no SDK: every span is a ``NonRecordingSpan``."""

    def setup(self) -> None:
        self._tracer = trace.NoOpTracerProvider().get_tracer(SCOPE)

    def run_once(self) -> int:
        return make_spans(self._tracer, SPANS_PER_ROUND)


class SdkVariant(Variant):
    """An SDK ``TracerProvider`` (or execscope's, which is one) with the one span processor a
    subclass makes."""

    provider_class: type[TracerProvider] = TracerProvider

    @abstractmethod
    def processor(self) -> SpanProcessor: ...

    def setup(self) -> None:
        self.spans_created = 0
        self._provider = self.provider_class(resource=RESOURCE)
        self._provider.add_span_processor(self.processor())
        self._tracer = self._provider.get_tracer(SCOPE)

    def run_once(self) -> int:
        count = make_spans(self._tracer, SPANS_PER_ROUND)
        self.spans_created += count
        return count

    def end_round(self) -> None:
        self._provider.force_flush()

    def teardown(self) -> None:
        self._provider.shutdown()


class SdkMemory(SdkVariant):
    def processor(self) -> SpanProcessor:
        self._exporter = InMemorySpanExporter()
        return SimpleSpanProcessor(self._exporter)

    def end_round(self) -> None:
        super().end_round()
        self._exporter.clear()


class DiscardExporter(SpanExporter):
    def __init__(self) -> None:
        self.spans_exported = 0

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        self.spans_exported += len(spans)
        return SpanExportResult.SUCCESS


class SdkBatchNoop(SdkVariant):
    def processor(self) -> SpanProcessor:
        self._exporter = DiscardExporter()
        return BatchSpanProcessor(self._exporter)

    def metrics(self) -> dict[str, float]:
        # Counted over all rounds, warm-up included; lost spans mean the batch queue overflowed.
        exported = self._exporter.spans_exported
        return {"spans_exported": exported, "spans_lost": self.spans_created - exported}


class ExecscopeTracerMemory(SdkMemory):
    """``sdk_memory`` with execscope's tracer provider."""

    provider_class = ExecscopeTracerProvider


class ExecscopeTracerBatchNoop(SdkBatchNoop):
    """``sdk_batch_noop`` with execscope's tracer provider."""

    provider_class = ExecscopeTracerProvider


class TimedStoreExporter(StoreSpanExporter):
    """The store exporter, timing its own ``export()`` calls (wall clock and the calling thread's CPU)."""

    def __init__(self, path: Path, *, max_size_mb: int, max_age_s: float) -> None:
        super().__init__(path, max_size_mb=max_size_mb, max_age_s=max_age_s)
        self.reset_timing()

    def reset_timing(self) -> None:
        self.export_ns = 0
        self.export_cpu_ns = 0
        self.batches = 0
        self.spans_exported = 0

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        wall, cpu = time.perf_counter_ns(), time.thread_time_ns()
        result = super().export(spans)
        self.export_cpu_ns += time.thread_time_ns() - cpu
        self.export_ns += time.perf_counter_ns() - wall
        self.batches += 1
        if result is SpanExportResult.SUCCESS:
            self.spans_exported += len(spans)
        return result


class ExecscopeStore(SdkVariant):
    def processor(self) -> SpanProcessor:
        self._directory = Path(tempfile.mkdtemp(prefix="execscope-bench-"))
        self._exporter = TimedStoreExporter(self._directory, max_size_mb=4096, max_age_s=86_400.0)
        # Create the database and run the first retention check now, not inside a measured export.
        self._exporter.export(())
        self._exporter.reset_timing()
        return BatchSpanProcessor(self._exporter)

    def metrics(self) -> dict[str, float]:
        # Exporter side, all rounds incl. warm-up: spans written per second spent inside export().
        exporter = self._exporter
        seconds, cpu_seconds = exporter.export_ns / 1e9, exporter.export_cpu_ns / 1e9
        spans = exporter.spans_exported
        return {
            "store_spans_per_s": spans / seconds if seconds else 0.0,
            "store_spans_per_cpu_s": spans / cpu_seconds if cpu_seconds else 0.0,
            "export_us_per_span": exporter.export_ns / 1000 / spans if spans else 0.0,
            "batches": exporter.batches,
            "spans_written": spans,
            "spans_lost": self.spans_created - spans,
        }

    def teardown(self) -> None:
        try:
            super().teardown()
        finally:
            shutil.rmtree(self._directory, ignore_errors=True)


BENCHMARK = Benchmark(
    name="span_export",
    description="application-thread cost of creating and ending one span (5 attributes, 1 event)",
    variants={
        "no_sdk": NoSdk,
        "sdk_memory": SdkMemory,
        "sdk_batch_noop": SdkBatchNoop,
        "execscope_tracer_memory": ExecscopeTracerMemory,
        "execscope_tracer_batch_noop": ExecscopeTracerBatchNoop,
        "execscope_store": ExecscopeStore,
    },
    baseline="no_sdk",
    operation="span",
)
