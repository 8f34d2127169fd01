"""Under load the governor's level tells rewritten functions what not to capture."""

from __future__ import annotations

import contextlib
import textwrap
import time
import types
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
from autotrace_helpers import import_source, recording, unique_module_name
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import StatusCode
from pipeline_helpers import Pipeline, pipeline

from execscope._setup import _monitor_autotrace
from execscope.autotrace import _recorder, _runtime
from execscope.autotrace._install import _drops_unmade, root_sampler
from execscope.autotrace._recorder import RECORDER
from execscope.plan import Plan, Target
from execscope.processors import SHEDDING, Level


def test_the_auto_instrumentor_stops_capturing_what_the_level_sheds(tmp_path: Path) -> None:
    source = textwrap.dedent(
        """
        class Counter:
            def __init__(self):
                self.n = 0

            def add(self, k):
                self.n += k
                return self.n
        """
    )
    try:
        with recording() as rec:
            module = import_source(tmp_path, source)
            counter = module.Counter()
            for level in (Level.NORMAL, Level.DEGRADED, Level.CRITICAL):
                SHEDDING.apply(level)
                with rec.tracer.start_as_current_span(level.name):
                    counter.add(1)
            spans = [s for s in rec.spans() if s.name == "Counter.add"]
    finally:
        SHEDDING.apply(Level.NORMAL)
    captured = [
        sorted(k for k in (s.attributes or {}) if k.startswith("execscope.") and "correlation" not in k)
        for s in spans
    ]
    assert captured == [
        ["execscope.args.k", "execscope.return", "execscope.state.diff"],
        ["execscope.args.k", "execscope.return"],
        [],
    ]


ERRORS_SOURCE = textwrap.dedent(
    """
    def parse(text):
        return int(text)

    def count(n):
        for i in range(n):
            yield i
        if n < 0:
            raise ValueError(n)

    class Account:
        def __init__(self):
            self.balance = 0

        def withdraw(self, amount):
            if amount > self.balance:
                raise RuntimeError("insufficient funds")
            self.balance -= amount
            return self.balance
    """
)


def exception_types(span: ReadableSpan) -> list[str]:
    return [str((event.attributes or {}).get("exception.type")) for event in span.events]


def test_at_the_emergency_level_only_calls_an_exception_escapes_are_recorded(tmp_path: Path) -> None:
    try:
        with recording() as rec:
            module = import_source(tmp_path, ERRORS_SOURCE)
            account = module.Account()
            assert module.parse("4") == 4  # built and recorded before the level rises
            SHEDDING.apply(Level.EMERGENCY)
            assert module.parse("5") == 5
            with pytest.raises(ValueError):
                module.parse("five")
            assert account.withdraw(0) == 0
            with pytest.raises(RuntimeError, match="insufficient"):
                account.withdraw(10)
            assert list(module.count(2)) == [0, 1]
            with pytest.raises(ValueError):
                list(module.count(-1))
            SHEDDING.apply(Level.NORMAL)
            assert module.parse("6") == 6
            spans = rec.spans()
    finally:
        SHEDDING.apply(Level.NORMAL)
    recorded = [(span.name, exception_types(span)) for span in spans if span.name != "Account.__init__"]
    assert recorded == [
        ("parse", []),
        ("parse", ["ValueError"]),
        ("Account.withdraw", ["RuntimeError"]),
        ("count", ["ValueError"]),
        ("parse", []),
    ]
    failed = [span for span in spans if exception_types(span)]
    assert all(span.status.status_code == StatusCode.ERROR for span in failed)


def test_a_site_keeps_its_own_min_duration_after_the_emergency_level(tmp_path: Path) -> None:
    name = unique_module_name()
    plan = Plan(targets=(Target(f"{name}:nap", level="args", min_duration_ms=50),))
    source = "import time\n\ndef nap(s):\n    time.sleep(s)\n    return s\n"
    try:
        with recording() as rec:
            module = import_source(tmp_path, source, name=name, plan=plan)
            SHEDDING.apply(Level.EMERGENCY)
            module.nap(0.06)  # slow, but it returned: errors only
            SHEDDING.apply(Level.NORMAL)
            module.nap(0)  # below min_duration again
            module.nap(0.06)
            spans = rec.spans()
    finally:
        SHEDDING.apply(Level.NORMAL)
    assert [(span.name, dict(span.attributes or {}).get("execscope.args.s")) for span in spans] == [
        ("nap", "0.06")
    ]


def test_the_governor_sees_what_recording_rewritten_functions_costs_the_calling_thread(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Measured on a sample of calls, not assumed: a costly capture shows up in the CPU reading."""

    def costly_capture(self: Any, call: Any, frame: Any) -> None:
        began = time.thread_time()
        while time.thread_time() - began < 0.0001:  # 0.1 ms of CPU per recorded call
            pass

    monitor = types.SimpleNamespace()
    _monitor_autotrace(monitor)  # type: ignore[arg-type]
    with recording():
        module = import_source(tmp_path, "def step(n):\n    return n + 1\n")
        monkeypatch.setattr(_runtime.Site, "_capture_arguments", costly_capture)
        before = monitor.extra_cpu_s()
        began = time.thread_time()
        for n in range(8000):
            module.step(n)
        spent = time.thread_time() - began
        counted = monitor.extra_cpu_s() - before
    # A random sample of about one slow-path call in 256 is timed: within a factor of 2.
    assert 0.5 * 8000 * 0.0001 <= counted <= 2 * spent


def test_calls_the_errors_only_level_leaves_out_are_counted_as_such(tmp_path: Path) -> None:
    from execscope.autotrace import sites_of

    name = unique_module_name()
    source = "def parse(text):\n    return int(text)\n"
    try:
        with recording() as rec:
            plan = Plan(targets=(Target(name, level="args"),))
            module = import_source(tmp_path, source, name=name, plan=plan)
            SHEDDING.apply(Level.EMERGENCY)
            for text in ("1", "2", "3"):
                module.parse(text)
            with pytest.raises(ValueError):
                module.parse("x")
            SHEDDING.apply(Level.NORMAL)
            module.parse("4")
            spans = rec.spans()
    finally:
        SHEDDING.apply(Level.NORMAL)
    assert len(spans) == 2  # the call that raised, and the one after the level fell
    [site] = sites_of(name) or []
    assert (site.calls_shed, site.calls_short, site.calls_not_sampled) == (3, 0, 0)


def test_the_status_and_metrics_report_the_calls_left_without_a_span(tmp_path: Path) -> None:
    from opentelemetry.sdk.metrics import MeterProvider
    from opentelemetry.sdk.metrics.export import InMemoryMetricReader

    from execscope.cli._status import _line
    from execscope.processors._self_metrics import register_self_metrics
    from execscope.processors._stats import PipelineStats

    monitor = types.SimpleNamespace()
    _monitor_autotrace(monitor)  # type: ignore[arg-type]
    before = monitor.extra_stats()["calls_not_recorded"]
    name = unique_module_name()
    plan = Plan(targets=(Target(name, level="args", min_duration_ms=1000),))
    with recording():
        module = import_source(tmp_path, "def step(n):\n    return n + 1\n", name=name, plan=plan)
        for n in range(7):
            module.step(n)
    after = monitor.extra_stats()["calls_not_recorded"]
    assert after["below_min_duration"] - before["below_min_duration"] == 7

    status = {"running": True, "pid": 1, "service": "demo", "calls_not_recorded": after}
    assert f"{after['below_min_duration']} below min duration" in _line(status)
    assert "not recorded" not in _line({"running": True, "pid": 2, "service": "no rewritten code"})

    reader = InMemoryMetricReader()
    monitor.processor = types.SimpleNamespace(stats=PipelineStats(), sinks=())
    monitor.governor = types.SimpleNamespace(level=Level.NORMAL)
    monitor.last_reading = types.SimpleNamespace(cpu_share=0.0)
    register_self_metrics(monitor, MeterProvider(metric_readers=[reader]))  # type: ignore[arg-type]
    points = {
        (metric.name, tuple(point.attributes.items())): point.value
        for resource in reader.get_metrics_data().resource_metrics
        for scope in resource.scope_metrics
        for metric in scope.metrics
        if metric.name == "execscope.calls.not_recorded"
        for point in metric.data.data_points
    }
    key = ("execscope.calls.not_recorded", (("execscope.not_recorded.reason", "below_min_duration"),))
    assert points[key] >= after["below_min_duration"]


@contextmanager
def recording_through(pipe: Pipeline) -> Iterator[None]:
    """Modules imported inside the block record into execscope's pipeline, wired as the distro does."""
    active = pipe.provider._active_span_processor
    previous = _runtime.current_config()
    _runtime.configure(
        _runtime.RuntimeConfig(
            recorder=RECORDER, active=True, root_sampled=root_sampler(pipe.provider.sampler)
        )
    )
    RECORDER.start(active.on_end, pipe.provider.resource, _drops_unmade(active))
    try:
        yield
    finally:
        RECORDER.flush()
        _runtime.configure(previous)


STEP_SOURCE = "def step(n):\n    if n == 3:\n        raise ValueError(n)\n    return n\n"


def call_steps(module: Any, count: int) -> None:
    for n in range(count):
        with contextlib.suppress(ValueError):
            module.step(n)


def counting_made_spans(monkeypatch: pytest.MonkeyPatch) -> list[object]:
    """The calls the recorder makes into spans, from now on."""
    made: list[object] = []
    make = _recorder.to_readable_span

    def counted(call: Any, resource: Any) -> ReadableSpan:
        made.append(call)
        return make(call, resource)

    monkeypatch.setattr(_recorder, "to_readable_span", counted)
    return made


def test_calls_the_tail_decision_drops_are_never_made_into_spans(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    made = counting_made_spans(monkeypatch)
    exporter = InMemorySpanExporter()
    with pipeline(tmp_path, [exporter], tail_keep_rate=0.0, tail_latency_threshold=60.0) as pipe:
        with recording_through(pipe):
            call_steps(import_source(tmp_path, STEP_SOURCE), 10)
        pipe.flush()
        stats = pipe.stats.snapshot()
    assert [span.name for span in exporter.get_finished_spans()] == ["step"]  # the error, kept
    assert len(made) == 1  # the nine others were decided, and counted, before being made
    assert stats["dropped"]["sampling"] == 9  # type: ignore[index]


def test_at_the_emergency_level_calls_recorded_before_it_are_dropped_unmade_unless_they_failed(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    made = counting_made_spans(monkeypatch)
    exporter = InMemorySpanExporter()
    with pipeline(tmp_path, [exporter]) as pipe:
        try:
            with recording_through(pipe):
                module = import_source(tmp_path, STEP_SOURCE)
                with RECORDER._drain_lock:  # the calls wait in the recorder's queue...
                    call_steps(module, 10)
                    SHEDDING.apply(Level.EMERGENCY)  # ...until the level has risen
        finally:
            SHEDDING.apply(Level.NORMAL)
        pipe.flush()
        stats = pipe.stats.snapshot()
    assert [span.name for span in exporter.get_finished_spans()] == ["step"]
    assert len(made) == 1
    assert stats["dropped"]["governor"] == 9  # type: ignore[index]


def test_every_recorded_call_is_made_into_a_span_when_another_processor_must_see_it(
    tmp_path: Path,
) -> None:
    with pipeline(tmp_path, [InMemorySpanExporter()], tail_keep_rate=0.0) as pipe:
        assert _drops_unmade(pipe.provider._active_span_processor) is not None
        pipe.provider.add_span_processor(SimpleSpanProcessor(InMemorySpanExporter()))
        assert _drops_unmade(pipe.provider._active_span_processor) is None
