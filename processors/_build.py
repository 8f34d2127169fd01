"""Assembles the pipeline from the settings and the exporters the distro chose."""

from __future__ import annotations

import hashlib
import logging
import os
import tempfile
from collections.abc import Sequence
from pathlib import Path

from opentelemetry.sdk.trace.export import SpanExporter

from execscope.capture import NoopRedactor, Redactor
from execscope.processors._compiled import ACCELERATED
from execscope.processors._decision import TailPolicy
from execscope.processors._delivery import ExporterSink, OtlpSink, Sink
from execscope.processors._governor import Budgets, Governor
from execscope.processors._pipeline import ExecscopeSpanProcessor, Monitor
from execscope.processors._redaction import SpanMasking
from execscope.processors._spool import Spool
from execscope.processors._stats import PipelineStats
from execscope.processors._tail import TailSampler
from execscope.processors._transport import transport_for
from execscope.settings import Settings

_logger = logging.getLogger(__name__)

#: Spans per export request, and how long a partial batch waits (the SDK's variable names).
_BATCH_SIZE_ENV = "OTEL_BSP_MAX_EXPORT_BATCH_SIZE"
_SCHEDULE_DELAY_ENV = "OTEL_BSP_SCHEDULE_DELAY"
_TIMEOUT_ENV = "OTEL_EXPORTER_OTLP_TIMEOUT"


def _positive_number(name: str, default: float) -> float:
    raw = os.environ.get(name)
    if raw is None or not raw.strip():
        return default
    try:
        value = float(raw)
        if value > 0:
            return value
    except ValueError:
        pass
    _logger.warning("execscope: %s=%r is not a positive number; using %g", name, raw, default)
    return default


def make_redactor(settings: Settings) -> Redactor:
    if not settings.redact:
        return NoopRedactor()
    return Redactor(extra_name_patterns=settings.redact_names)


def make_masking(settings: Settings) -> SpanMasking:
    """What the sinks mask before export: sensitive values (``redact``) and SQL literals
    (``db_sanitize``), each on or off independently."""
    return SpanMasking(make_redactor(settings), sanitize_sql=settings.db_sanitize)


def spool_folder(settings: Settings, destination: str) -> Path:
    """One spool folder per destination, so batches are only ever replayed to where they were bound."""
    root = settings.spool_dir if settings.spool_dir is not None else settings.store / "spool"
    return root / hashlib.sha256(destination.encode()).hexdigest()[:16]


def status_folder() -> Path:
    """Where running processes publish their status for ``execscope status``: per user, per host."""
    return Path(tempfile.gettempdir()) / f"execscope-{os.getuid()}" / "status"


def build_pipeline(
    settings: Settings, exporters: Sequence[SpanExporter], *, service: str
) -> tuple[ExecscopeSpanProcessor, Monitor]:
    stats = PipelineStats()
    if not ACCELERATED:
        _logger.info("execscope: the span pipeline's C fast path is not compiled here; using Python")
    masking = make_masking(settings)
    governor = Governor(
        Budgets(
            cpu_share=settings.governor_cpu_budget,
            memory_bytes=settings.governor_memory_mb * 1024 * 1024,
            spans_per_s=settings.governor_max_spans_per_s,
            export_latency_s=settings.governor_export_latency,
        )
    )
    queue = {
        "max_queue": settings.export_queue_size,
        "batch_size": int(_positive_number(_BATCH_SIZE_ENV, 512)),
        "schedule_delay_s": _positive_number(_SCHEDULE_DELAY_ENV, 1000) / 1000,
    }
    sinks: list[Sink] = []
    for exporter in exporters:
        transport = transport_for(exporter)
        if transport is None:
            sinks.append(ExporterSink(exporter, stats, masking, **queue))
            continue
        spool = None
        if settings.spool:
            spool = Spool(spool_folder(settings, transport.name), settings.spool_max_mb * 1024 * 1024)
        # The exporter's own timeout, as it resolved it (argument or OTEL_EXPORTER_OTLP_* setting).
        timeout_s = transport.timeout_s or _positive_number(_TIMEOUT_ENV, 10.0)
        sinks.append(OtlpSink(transport, spool, stats, masking, timeout_s=timeout_s, **queue))
    tail = TailSampler(
        TailPolicy(
            keep_rate=settings.tail_keep_rate,
            latency_threshold_ns=int(settings.tail_latency_threshold * 1e9),
        ),
        stats,
        max_bytes=settings.tail_buffer_mb * 1024 * 1024,
        max_hold_s=settings.tail_max_hold,
        keep_rate=lambda: governor.shedding.keep_rate_cap,
    )
    monitor_box: list[Monitor] = []
    processor = ExecscopeSpanProcessor(
        sinks,
        tail,
        stats,
        flush_deadline_s=settings.export_flush_deadline,
        on_shutdown=lambda: monitor_box[0].stop() if monitor_box else None,
    )
    monitor = Monitor(processor, governor, status_dir=status_folder(), service=service)
    monitor_box.append(monitor)
    return processor, monitor
