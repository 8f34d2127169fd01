"""execscope's own OpenTelemetry metrics: what its pipeline did, exported like any other metric.

The instruments are observable: they read the counters the pipeline keeps anyway when the
metrics SDK collects, so they cost nothing on the span path. They go wherever the process's
metrics go (``OTEL_METRICS_EXPORTER``), through the global meter provider.
"""

from __future__ import annotations

from collections.abc import Iterable

from opentelemetry import metrics
from opentelemetry.metrics import CallbackOptions, Observation

from execscope._version import __version__
from execscope.processors._pipeline import Monitor
from execscope.processors._stats import DropReason


def register_self_metrics(monitor: Monitor, meter_provider: metrics.MeterProvider | None = None) -> None:
    meter = (meter_provider or metrics.get_meter_provider()).get_meter("execscope.pipeline", __version__)
    stats = monitor.processor.stats

    def spans(_: CallbackOptions) -> Iterable[Observation]:
        snapshot = stats.snapshot()
        yield Observation(int(snapshot["started"]), {"execscope.outcome": "started"})  # type: ignore[call-overload]
        yield Observation(int(snapshot["ended"]), {"execscope.outcome": "recorded"})  # type: ignore[call-overload]
        yield Observation(int(snapshot["exported"]), {"execscope.outcome": "exported"})  # type: ignore[call-overload]

    def dropped(_: CallbackOptions) -> Iterable[Observation]:
        counts = stats.snapshot()["dropped"]
        for reason in DropReason:
            yield Observation(counts[reason.value], {"execscope.drop.reason": reason.value})  # type: ignore[index]

    def not_recorded(_: CallbackOptions) -> Iterable[Observation]:
        counts = monitor.extra_stats().get("calls_not_recorded", {})
        for reason, count in counts.items():
            yield Observation(int(count), {"execscope.not_recorded.reason": reason})

    def queue_depth(_: CallbackOptions) -> Iterable[Observation]:
        for sink in monitor.processor.sinks:
            yield Observation(sink.queue_depth, {"execscope.exporter": sink.name})

    def level(_: CallbackOptions) -> Iterable[Observation]:
        yield Observation(int(monitor.governor.level))

    def cpu(_: CallbackOptions) -> Iterable[Observation]:
        yield Observation(monitor.last_reading.cpu_share)

    meter.create_observable_counter(
        "execscope.spans", [spans], unit="{span}", description="Spans started, recorded and exported"
    )
    meter.create_observable_counter(
        "execscope.spans.dropped",
        [dropped],
        unit="{span}",
        description="Spans dropped, by the rule that dropped them",
    )
    meter.create_observable_counter(
        "execscope.calls.not_recorded",
        [not_recorded],
        unit="{call}",
        description="Calls of traced functions that left no span, by the rule that decided it",
    )
    meter.create_observable_gauge(
        "execscope.export.queue.depth", [queue_depth], unit="{span}", description="Spans waiting for export"
    )
    meter.create_observable_gauge(
        "execscope.governor.level", [level], description="0 normal, 1 degraded, 2 critical, 3 emergency"
    )
    meter.create_observable_gauge(
        "execscope.cpu.share", [cpu], unit="1", description="CPU execscope adds, as a fraction of one core"
    )
