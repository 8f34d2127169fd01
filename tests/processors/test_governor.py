"""The governor sheds work in a fixed order as load rises, and gives it back slowly as load falls."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from opentelemetry import baggage, trace
from opentelemetry import context as otel_context
from opentelemetry.context import Context
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from pipeline_helpers import HeldExporter, in_memory, pipeline

from execscope.attributes import CORRELATION_ID
from execscope.processors._correlation import BAGGAGE_KEY, CorrelationRegistry
from execscope.processors._governor import (
    CRITICAL_KEEP_RATE,
    DEGRADED_KEEP_RATE,
    SHEDDING,
    Budgets,
    Governor,
    Level,
    Reading,
    Shedding,
)

BUDGETS = Budgets(cpu_share=0.1, memory_bytes=1_000, spans_per_s=1_000, queue_fill=0.5)


@pytest.fixture
def clock() -> Iterator[list[float]]:
    yield [0.0]


def governor(clock: list[float], rise_after: int = 1) -> Governor:
    return Governor(BUDGETS, calm_s=10, rise_after=rise_after, shedding=Shedding(), clock=lambda: clock[0])


@pytest.mark.parametrize(
    ("reading", "level"),
    [
        (Reading(), Level.NORMAL),
        (Reading(queue_fill=0.49), Level.NORMAL),
        (Reading(queue_fill=0.5), Level.DEGRADED),
        (Reading(cpu_share=0.16), Level.CRITICAL),
        (Reading(memory_bytes=2_500), Level.EMERGENCY),
        (Reading(spans_per_s=1_600), Level.CRITICAL),
        (Reading(spool_fill=1.0), Level.EMERGENCY),
        (Reading(export_failing=True), Level.DEGRADED),
    ],
)
def test_the_highest_pressure_of_any_budget_picks_the_level(
    clock: list[float], reading: Reading, level: Level
) -> None:
    assert governor(clock).observe(reading) is level


def test_each_level_sheds_more_in_the_documented_order() -> None:
    shedding = Shedding()
    expected = {
        Level.NORMAL: (1.0, True, True),
        Level.DEGRADED: (DEGRADED_KEEP_RATE, False, True),
        Level.CRITICAL: (CRITICAL_KEEP_RATE, False, False),
        Level.EMERGENCY: (0.0, False, False),
    }
    for level, (rate, state, args) in expected.items():
        shedding.apply(level)
        assert (shedding.keep_rate_cap, shedding.capture_state, shedding.capture_args) == (rate, state, args)


def test_a_one_reading_burst_sheds_nothing_but_sustained_pressure_does(clock: list[float]) -> None:
    gov = governor(clock, rise_after=2)
    assert gov.observe(Reading(cpu_share=0.25)) is Level.NORMAL  # a start-up burst
    assert gov.observe(Reading()) is Level.NORMAL
    assert gov.observe(Reading(cpu_share=0.25)) is Level.NORMAL
    assert gov.observe(Reading(cpu_share=0.16)) is Level.CRITICAL  # the lower of the two readings


def test_levels_rise_with_pressure_and_fall_one_step_after_a_calm_period(clock: list[float]) -> None:
    gov = governor(clock)
    assert gov.observe(Reading(cpu_share=0.25)) is Level.EMERGENCY
    clock[0] = 5
    assert gov.observe(Reading()) is Level.EMERGENCY  # calm for 0 s
    clock[0] = 14
    assert gov.observe(Reading()) is Level.EMERGENCY  # calm for 9 s
    clock[0] = 15.5
    assert gov.observe(Reading()) is Level.CRITICAL
    clock[0] = 26
    assert gov.observe(Reading()) is Level.DEGRADED
    assert gov.changes == {"normal": 0, "degraded": 1, "critical": 1, "emergency": 1}


def test_a_load_hovering_at_a_threshold_does_not_flap(clock: list[float]) -> None:
    gov = governor(clock)
    levels = []
    for second in range(60):
        clock[0] = second
        levels.append(gov.observe(Reading(queue_fill=0.45 if second % 2 else 0.52)))
    assert set(levels) == {Level.DEGRADED}
    assert gov.changes["degraded"] == 1


def test_a_level_whose_shedding_is_not_enough_gives_way_to_the_next_one_up(clock: list[float]) -> None:
    gov = governor(clock)
    levels = []
    for second in range(10):
        clock[0] = second
        # Still 30% over the CPU budget whatever is shed: what each level measured.
        levels.append(gov.observe(Reading(cpu_share=0.13)))
    assert levels == [Level.DEGRADED] * 3 + [Level.CRITICAL] * 3 + [Level.EMERGENCY] * 4
    assert gov.changes == {"normal": 0, "degraded": 1, "critical": 1, "emergency": 1}


def test_a_level_whose_shedding_brings_the_load_under_budget_holds(clock: list[float]) -> None:
    gov = governor(clock)
    readings = [0.16, 0.12, 0.09, 0.11, 0.09, 0.12, 0.12, 0.09, 0.05, 0.05]  # cpu share, budget 0.1
    levels = []
    for second, cpu in enumerate(readings):
        clock[0] = second
        levels.append(gov.observe(Reading(cpu_share=cpu)))
    assert set(levels) == {Level.CRITICAL}


def test_every_level_change_is_logged_once(clock: list[float], caplog: pytest.LogCaptureFixture) -> None:
    gov = governor(clock)
    with caplog.at_level(logging.WARNING, logger="execscope.processors._governor"):
        for fill in (0.8, 0.45, 0.45, 0.45, 0.45):  # then under budget: the level holds
            gov.observe(Reading(queue_fill=fill))
    assert [r.getMessage() for r in caplog.records] == [
        "execscope: load level normal -> critical (pressure 1.60 of budget)"
    ]


def test_the_cpu_reading_counts_what_the_span_hooks_were_measured_to_cost(tmp_path: Path) -> None:
    """The hooks' CPU is measured on a sample of calls, not assumed: a costly hook shows up."""

    class SlowRegistry(CorrelationRegistry):
        def resolve(self, trace_id: int, context: Context | None = None) -> str:
            began = time.thread_time()
            while time.thread_time() - began < 0.002:  # 2 ms of CPU per span start
                pass
            return super().resolve(trace_id, context)

    with pipeline(tmp_path, [InMemorySpanExporter()], governor_cpu_budget=0) as pipe:
        pipe.processor._registry = SlowRegistry()
        pipe.monitor.tick()  # the interval starts now
        began = time.monotonic()
        for _ in range(256):
            with pipe.tracer.start_as_current_span("costly start"):
                pass
        elapsed = time.monotonic() - began
        reading = pipe.monitor.tick()
    assert pipe.processor.clock.per_span_s == pytest.approx(0.002, rel=0.5)
    # About 256 x 2 ms of hook CPU over the interval, whatever else the reading adds.
    assert reading.cpu_share >= 0.5 * 256 * 0.002 / (elapsed + 0.5)


def test_export_latency_over_its_budget_raises_the_level_in_proportion(clock: list[float]) -> None:
    budgets = Budgets(cpu_share=0, queue_fill=0.5, export_latency_s=2.0)
    readings = {1.9: Level.NORMAL, 2.0: Level.DEGRADED, 3.0: Level.CRITICAL, 4.5: Level.EMERGENCY}
    for latency, level in readings.items():
        watcher = Governor(budgets, rise_after=1, shedding=Shedding(), clock=lambda: clock[0])
        assert watcher.observe(Reading(export_latency_s=latency)) is level
    assert Reading(export_latency_s=100.0).pressure(Budgets(cpu_share=0, export_latency_s=0)) == 0.0


def test_the_monitor_reads_the_slowest_export_call_including_one_still_under_way(tmp_path: Path) -> None:
    exporter = HeldExporter()
    with pipeline(tmp_path, [exporter], governor_cpu_budget=0, governor_export_latency=0.05) as pipe:
        pipe.monitor.tick()
        with pipe.tracer.start_as_current_span("exported slowly"):
            pass
        flushing = threading.Thread(target=pipe.provider.force_flush, args=(10_000,))
        flushing.start()
        assert exporter.exporting.wait(10)
        time.sleep(0.2)  # the export call is held open this long, by the test
        during = pipe.monitor.tick()
        exporter.release.set()
        flushing.join(10)
        finished = pipe.monitor.tick()
        quiet = pipe.monitor.tick()
        status = pipe.monitor.status()
    assert during.export_latency_s >= 0.2  # still under way, counted as far as it has run
    assert during.pressure(pipe.monitor.governor.budgets) >= 4  # 0.2 s against 0.05 s
    assert finished.export_latency_s >= during.export_latency_s  # its whole duration, once over
    assert quiet.export_latency_s == 0.0  # nothing exported since
    assert status["export_latency_s"] == 0.0


# ------------------------------------------------------------------------------- errors only


@contextmanager
def at_emergency() -> Iterator[None]:
    """The emergency level for the block (set after the pipeline is built: a new governor
    starts at normal)."""
    SHEDDING.apply(Level.EMERGENCY)
    try:
        yield
    finally:
        SHEDDING.apply(Level.NORMAL)


def test_at_the_emergency_level_only_spans_with_an_error_are_exported(tmp_path: Path) -> None:
    with in_memory(tmp_path) as (pipe, exporter):
        with at_emergency(), pipe.tracer.start_as_current_span("request"):
            with pipe.tracer.start_as_current_span("fine"):
                pass
            with pytest.raises(ValueError), pipe.tracer.start_as_current_span("broken"):
                raise ValueError("no")
        pipe.flush()
        stats = pipe.stats.snapshot()
        held = pipe.processor.tail.held_traces
    [broken] = exporter.get_finished_spans()
    assert broken.name == "broken"
    assert len(str((broken.attributes or {})[CORRELATION_ID])) == 32  # stamped at its end
    assert stats["dropped"]["governor"] == 2  # type: ignore[index]
    assert held == 0  # nothing was held for the trace to end


def test_an_error_span_at_the_emergency_level_carries_its_callers_correlation_id(tmp_path: Path) -> None:
    incoming = "0123456789abcdef0123456789abcdef"
    token = otel_context.attach(baggage.set_baggage(BAGGAGE_KEY, incoming))
    try:
        with in_memory(tmp_path) as (pipe, exporter):
            with at_emergency(), pytest.raises(KeyError), pipe.tracer.start_as_current_span("lookup"):
                raise KeyError("missing")
            pipe.flush()
    finally:
        otel_context.detach(token)
    [span] = exporter.get_finished_spans()
    assert (span.attributes or {})[CORRELATION_ID] == incoming


def test_a_span_started_at_the_emergency_level_and_ended_after_it_gets_its_correlation_id(
    tmp_path: Path,
) -> None:
    with in_memory(tmp_path) as (pipe, exporter):
        with at_emergency():
            span = pipe.tracer.start_span("long")
        span.end()
        pipe.flush()
    [exported] = exporter.get_finished_spans()
    assert len(str((exported.attributes or {})[CORRELATION_ID])) == 32


def test_a_trace_held_when_the_level_rises_to_emergency_is_still_decided_at_its_root(
    tmp_path: Path,
) -> None:
    with in_memory(tmp_path, tail_keep_rate=0.0, tail_latency_threshold="off") as (pipe, exporter):
        root = pipe.tracer.start_span("root")
        with trace.use_span(root), pytest.raises(ValueError), pipe.tracer.start_as_current_span("broken"):
            raise ValueError("no")
        assert pipe.processor.tail.held_traces == 1
        with at_emergency():
            root.end()  # no error of its own, at the emergency level
        pipe.flush()
    # The held trace had an error: the tail sampler keeps all of it, its root included.
    assert sorted(span.name for span in exporter.get_finished_spans()) == ["broken", "root"]
