"""A tracer provider with execscope's real pipeline in front of test exporters."""

from __future__ import annotations

import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SpanExporter, SpanExportResult
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from execscope.processors._build import build_pipeline
from execscope.processors._pipeline import ExecscopeSpanProcessor, Monitor
from execscope.settings import load_settings
from execscope.tracing import ExecscopeTracerProvider


class HeldExporter(InMemorySpanExporter):
    """Keeps each ``export()`` call open until the test sets ``release``; ``exporting`` is set
    when a call has begun."""

    def __init__(self) -> None:
        super().__init__()
        self.exporting = threading.Event()
        self.release = threading.Event()

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        self.exporting.set()
        self.release.wait(10)
        return super().export(spans)


class Pipeline:
    def __init__(self, provider: TracerProvider, processor: ExecscopeSpanProcessor, monitor: Monitor) -> None:
        self.provider = provider
        self.processor = processor
        self.monitor = monitor
        self.tracer = provider.get_tracer("tests")
        self.stats = processor.stats

    def flush(self) -> None:
        assert self.processor.force_flush(10_000)


@contextmanager
def pipeline(tmp_path: Path, exporters: Sequence[SpanExporter], **settings: Any) -> Iterator[Pipeline]:
    loaded = load_settings({"store": tmp_path / "store", **settings})
    processor, monitor = build_pipeline(loaded.settings, exporters, service="tests")
    monitor.status_dir = tmp_path / "status"
    provider = ExecscopeTracerProvider()  # the provider the distro installs
    provider.add_span_processor(processor)
    try:
        yield Pipeline(provider, processor, monitor)
    finally:
        provider.shutdown()


@contextmanager
def in_memory(tmp_path: Path, **settings: Any) -> Iterator[tuple[Pipeline, InMemorySpanExporter]]:
    exporter = InMemorySpanExporter()
    with pipeline(tmp_path, [exporter], **settings) as active:
        yield active, exporter


def by_name(spans: Sequence[ReadableSpan]) -> dict[str, ReadableSpan]:
    return {span.name: span for span in spans}
