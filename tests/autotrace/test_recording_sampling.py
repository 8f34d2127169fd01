"""Which calls are recorded: head sampling at the local root, following a sampled parent,
per-target ``sample_rate`` and ``min_duration_ms``, suppression, and recursion."""

from __future__ import annotations

import asyncio
import itertools
import threading
from collections.abc import Iterator
from contextvars import Token
from pathlib import Path
from types import ModuleType

import pytest
from autotrace_helpers import Recording, import_source, recording, unique_module_name
from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.context import _SUPPRESS_INSTRUMENTATION_KEY, Context
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.sampling import ALWAYS_OFF, ALWAYS_ON, ParentBased, TraceIdRatioBased
from opentelemetry.trace import NonRecordingSpan, SpanContext, StatusCode, TraceFlags
from recording_helpers import assert_child, attr, event, source, span_id, trace_id

from execscope.autotrace import sites_of
from execscope.plan import Plan, Target


@pytest.fixture
def rec() -> Iterator[Recording]:
    with recording() as active:
        yield active


APP = source(
    """
    import asyncio
    import time

    from opentelemetry import trace
    from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator


    def handle(tracer):
        validate()
        with tracer.start_as_current_span("db.query"):
            store()
        carrier = {}
        TraceContextTextMapPropagator().inject(carrier)
        return carrier


    def validate():
        return True


    def store():
        return nested()


    def nested():
        return 1


    def tick(i):
        return i


    def middle():
        return nested()


    def top():
        return middle()


    def pause(seconds):
        time.sleep(seconds)
        return seconds


    def slow_parent():
        nested()
        time.sleep(0.005)


    def slow_failure():
        time.sleep(0.003)
        raise ValueError("slow and broken")


    def slow_generator():
        yield 1
        time.sleep(0.003)
        yield 2
        return "done"


    def down(n):
        if n == 0:
            return 0
        return down(n - 1) + 1


    def slow_finally(seconds):
        try:
            return seconds
        finally:
            time.sleep(seconds)


    class Slow:
        def __init__(self, seconds):
            self.seconds = seconds

        def __enter__(self):
            return self

        def __exit__(self, *exc_info):
            time.sleep(self.seconds)


    def slow_exit(seconds):
        with Slow(seconds):
            return seconds


    async def wait(seconds):
        await asyncio.sleep(seconds)
        return seconds
    """
)


def remote_parent(sampled: bool) -> Token[Context]:
    """Attach a remote parent span context, as a propagator would after extracting headers."""
    flags = TraceFlags(TraceFlags.SAMPLED if sampled else TraceFlags.DEFAULT)
    parent = SpanContext(0x1234, 0x5678, is_remote=True, trace_flags=flags)
    return otel_context.attach(trace.set_span_in_context(NonRecordingSpan(parent)))


# --------------------------------------------------------------------------- head sampling


@pytest.mark.parametrize("sampler", [ALWAYS_OFF, TraceIdRatioBased(0), ParentBased(ALWAYS_OFF)])
def test_root_not_sampled_records_nothing_for_the_whole_tree(sampler: object, tmp_path: Path) -> None:
    with recording(sampler=sampler) as rec:  # type: ignore[arg-type]
        app = import_source(tmp_path, APP)
        outside = trace.get_current_span()

        carrier = app.handle(rec.tracer)

        assert rec.spans() == []
        assert trace.get_current_span() is outside
        # Downstream services are told the trace is not sampled.
        assert carrier["traceparent"].endswith("-00")


def test_unsampled_tree_propagates_one_consistent_trace_id(tmp_path: Path) -> None:
    with recording(sampler=ParentBased(ALWAYS_OFF)) as rec:
        app = import_source(
            tmp_path,
            source(
                """
                from opentelemetry import trace

                def outer():
                    return trace.get_current_span(), inner()

                def inner():
                    return trace.get_current_span()
                """
            ),
        )
        outer, inner = app.outer()

        assert not outer.is_recording()
        context = outer.get_span_context()
        assert context.is_valid
        assert not context.trace_flags.sampled
        assert inner.get_span_context() == context
        assert rec.spans() == []


def test_sampled_remote_parent_is_followed(tmp_path: Path) -> None:
    """The local root's sampler is not asked when a parent exists: a sampled parent is
    followed even though this process samples its own roots out."""
    with recording(sampler=ParentBased(ALWAYS_OFF)) as rec:
        app = import_source(tmp_path, APP)
        token = remote_parent(sampled=True)
        try:
            carrier = app.handle(rec.tracer)
        finally:
            otel_context.detach(token)

        spans = {s.name: s for s in rec.spans()}
        assert set(spans) == {"handle", "validate", "db.query", "store", "nested"}
        handle = spans["handle"]
        assert handle.context is not None and handle.parent is not None
        assert handle.context.trace_id == 0x1234
        assert handle.parent.span_id == 0x5678
        assert_child(spans["db.query"], handle)
        assert_child(spans["store"], spans["db.query"])
        assert carrier["traceparent"].endswith("-01")


def test_unsampled_remote_parent_is_followed(tmp_path: Path) -> None:
    with recording(sampler=ParentBased(ALWAYS_ON)) as rec:
        app = import_source(tmp_path, APP)
        token = remote_parent(sampled=False)
        try:
            app.handle(rec.tracer)
        finally:
            otel_context.detach(token)

        assert rec.spans() == []


def test_suppressed_instrumentation_records_nothing(rec: Recording, tmp_path: Path) -> None:
    app = import_source(tmp_path, APP)
    token = otel_context.attach(otel_context.set_value(_SUPPRESS_INSTRUMENTATION_KEY, True))
    try:
        app.top()
    finally:
        otel_context.detach(token)

    assert rec.spans() == []


# --------------------------------------------------------------------------- per-target sample_rate


def sampled_app(tmp_path: Path, **rates: float) -> ModuleType:
    name = unique_module_name("sampled")
    targets = [Target(name, level="args")]
    targets += [
        Target(f"{name}:{function}", level="args", sample_rate=rate) for function, rate in rates.items()
    ]
    return import_source(tmp_path, APP, name=name, plan=Plan(targets=tuple(targets)))


@pytest.mark.parametrize(("rate", "expected"), [(0.0, 0), (1.0, 300)])
def test_sample_rate_zero_and_one_are_exact(
    rec: Recording, tmp_path: Path, rate: float, expected: int
) -> None:
    app = sampled_app(tmp_path, tick=rate)

    for i in range(300):
        assert app.tick(i) == i

    assert len(rec.spans()) == expected


def test_sample_rate_records_about_that_fraction(rec: Recording, tmp_path: Path) -> None:
    app = sampled_app(tmp_path, tick=0.5)

    for i in range(2000):
        app.tick(i)

    # 2,000 calls at 0.5: mean 1,000, standard deviation 22; the bounds are 9 deviations away.
    assert 800 <= len(rec.spans()) <= 1200


def test_sample_rate_applies_below_a_recorded_parent(rec: Recording, tmp_path: Path) -> None:
    app = sampled_app(tmp_path, tick=0.5)

    with rec.tracer.start_as_current_span("batch"):
        for i in range(2000):
            app.tick(i)

    ticks = [s for s in rec.spans() if s.name == "tick"]
    assert 800 <= len(ticks) <= 1200
    for span in ticks:
        assert_child(span, rec.span("batch"))


def test_call_sampled_out_leaves_its_callees_under_the_nearest_recorded_caller(
    rec: Recording, tmp_path: Path
) -> None:
    app = sampled_app(tmp_path, middle=0.0)

    app.top()

    assert sorted(s.name for s in rec.spans()) == ["nested", "top"]
    assert_child(rec.span("nested"), rec.span("top"))


def test_root_sampled_out_by_its_rate_drops_its_whole_tree(rec: Recording, tmp_path: Path) -> None:
    app = sampled_app(tmp_path, top=0.0)

    app.top()
    app.middle()  # a root of its own: recorded

    assert sorted(s.name for s in rec.spans()) == ["middle", "nested"]


# --------------------------------------------------------------------------- min_duration_ms


def timed_app(tmp_path: Path, level: str = "args", **minimums: float) -> ModuleType:
    name = unique_module_name("timed")
    targets = [Target(name, level=level)]  # type: ignore[arg-type]
    targets += [
        Target(f"{name}:{function}", level=level, min_duration_ms=ms)  # type: ignore[arg-type]
        for function, ms in minimums.items()
    ]
    return import_source(tmp_path, APP, name=name, plan=Plan(targets=tuple(targets)))


def test_min_duration_records_slow_calls_only(rec: Recording, tmp_path: Path) -> None:
    # A threshold well above what a thread switch can add to a fast call.
    app = timed_app(tmp_path, pause=20.0)
    rec.clear()  # nothing left for the recorder's thread to convert meanwhile

    assert app.pause(0) == 0
    assert app.pause(0.025) == 0.025

    [span] = rec.spans()
    assert span.name == "pause"
    assert attr(span, "execscope.args.seconds") == "0.025"
    assert span.start_time is not None and span.end_time is not None
    assert span.end_time - span.start_time >= 20_000_000


def test_slow_call_records_its_return_value(rec: Recording, tmp_path: Path) -> None:
    app = timed_app(tmp_path, pause=1.0)

    app.pause(0.002)
    assert attr(rec.span("pause"), "execscope.return") == "0.002"


@pytest.mark.parametrize("function", ["slow_finally", "slow_exit"])
def test_a_call_made_slow_after_its_return_value_still_records_the_value(
    function: str, rec: Recording, tmp_path: Path
) -> None:
    """The value is computed before a ``finally`` or a ``with``'s exit runs: the call is not
    over at its ``return``, and proves slow only afterwards."""
    app = timed_app(tmp_path, **{function: 20.0})
    rec.clear()

    assert getattr(app, function)(0) == 0
    assert getattr(app, function)(0.025) == 0.025

    [span] = [span for span in rec.spans() if span.name == function]
    assert attr(span, "execscope.return") == "0.025"


def test_fast_calls_below_min_duration_leave_no_state_and_no_span(rec: Recording, tmp_path: Path) -> None:
    app = timed_app(tmp_path, pause=1000.0, slow_failure=1000.0)
    rec.clear()

    for _ in range(20):
        assert app.pause(0) == 0
        with pytest.raises(ValueError):
            app.slow_failure()

    assert rec.spans() == []
    assert_no_call_in_flight(app)


def assert_no_call_in_flight(app: ModuleType) -> None:
    for site in sites_of(app.__name__) or []:
        assert site.frames == {}
        assert getattr(site, "timed_calls", 0) == 0  # the C core keeps timed calls itself


def test_interleaved_timed_coroutines_are_each_decided_by_their_own_duration(
    rec: Recording, tmp_path: Path
) -> None:
    """Coroutines of one function end in another order than they started (the one started
    first ends third here): each is still timed from its own start."""
    app = timed_app(tmp_path, wait=20.0)
    rec.clear()

    async def main() -> list[float]:
        return list(await asyncio.gather(app.wait(0.03), app.wait(0), app.wait(0.05), app.wait(0.001)))

    assert asyncio.run(main()) == [0.03, 0, 0.05, 0.001]

    recorded = sorted(attr(span, "execscope.return") for span in rec.spans() if span.name == "wait")
    assert recorded == ["0.03", "0.05"]
    assert_no_call_in_flight(app)


def test_timed_calls_in_concurrent_threads_are_each_decided_by_their_own_duration(
    rec: Recording, tmp_path: Path
) -> None:
    app = timed_app(tmp_path, pause=20.0)
    rec.clear()
    started = threading.Event()

    def fast_calls() -> None:
        started.wait(5)
        for _ in range(2_000):
            assert app.pause(0) == 0

    threads = [threading.Thread(target=fast_calls) for _ in range(3)]
    for thread in threads:
        thread.start()
    started.set()
    assert app.pause(0.03) == 0.03
    for thread in threads:
        thread.join()

    [span] = [span for span in rec.spans() if span.name == "pause"]
    assert attr(span, "execscope.return") == "0.03"
    assert_no_call_in_flight(app)


def test_slow_call_that_fails_records_its_exception(rec: Recording, tmp_path: Path) -> None:
    app = timed_app(tmp_path, slow_failure=1.0)

    with pytest.raises(ValueError, match="slow and broken"):
        app.slow_failure()

    span = rec.span("slow_failure")
    assert span.status.status_code is StatusCode.ERROR
    assert event(span)["exception.message"] == "slow and broken"


def test_slow_call_is_a_child_of_the_span_current_when_it_started(rec: Recording, tmp_path: Path) -> None:
    app = timed_app(tmp_path, pause=1.0)

    with rec.tracer.start_as_current_span("request"):
        app.pause(0.002)

    assert_child(rec.span("pause"), rec.span("request"))


def test_slow_generator_records_its_yields_and_return_value(rec: Recording, tmp_path: Path) -> None:
    app = timed_app(tmp_path, slow_generator=1.0)

    assert list(app.slow_generator()) == [1, 2]

    span = rec.span("slow_generator")
    assert attr(span, "execscope.generator.yields") == 2
    assert attr(span, "execscope.return") == "'done'"


def test_slow_call_under_an_unsampled_root_is_not_recorded(tmp_path: Path) -> None:
    with recording(sampler=ParentBased(ALWAYS_OFF)) as rec:
        app = timed_app(tmp_path, pause=1.0)
        app.top()  # an unsampled root, so that the next root is not the first call
        app.pause(0.002)

        assert rec.spans() == []


@pytest.mark.xfail(
    strict=True,
    reason=(
        "a call with min_duration_ms is only timed while it runs (it is recorded after the "
        "fact, once it proved slow), so calls made inside it attach to its caller instead"
    ),
)
def test_calls_inside_a_slow_call_are_its_children(rec: Recording, tmp_path: Path) -> None:
    app = timed_app(tmp_path, slow_parent=1.0)

    app.slow_parent()

    assert_child(rec.span("nested"), rec.span("slow_parent"))


# --------------------------------------------------------------------------- recursion


def test_each_level_of_a_recursion_is_a_child_of_the_one_above(rec: Recording, tmp_path: Path) -> None:
    app = import_source(tmp_path, APP)

    assert app.down(20) == 20

    spans = {attr(s, "execscope.args.n"): s for s in rec.spans()}
    assert len(spans) == 21
    assert spans["20"].parent is None
    for n in range(20):
        assert_child(spans[str(n)], spans[str(n + 1)])
        assert attr(spans[str(n)], "execscope.return") == str(n)


def test_sampled_recursion_keeps_parentage_consistent(rec: Recording, tmp_path: Path) -> None:
    """Each recorded level is a child of the nearest recorded level above it (or of the
    request), and lies within it in time: no level ever closes another level's call."""
    app = sampled_app(tmp_path, down=0.5)

    for _ in range(100):
        with rec.tracer.start_as_current_span("request"):
            assert app.down(12) == 12

    spans = rec.spans()
    requests = {span_id(s): s for s in spans if s.name == "request"}
    levels = [s for s in spans if s.name == "down"]
    assert 400 <= len(levels) <= 900  # 1,300 calls at 0.5
    by_trace: dict[int, list[ReadableSpan]] = {}
    for span in levels:
        by_trace.setdefault(trace_id(span), []).append(span)
    assert len(by_trace) <= 100
    for recorded in by_trace.values():
        recorded.sort(key=lambda s: -int(attr(s, "execscope.args.n")))
        assert len({attr(s, "execscope.args.n") for s in recorded}) == len(recorded)
        top = recorded[0]
        assert top.parent is not None
        assert_child(top, requests[top.parent.span_id])
        for above, below in itertools.pairwise(recorded):
            assert_child(below, above)
            assert above.start_time is not None and above.end_time is not None
            assert below.start_time is not None and below.end_time is not None
            assert above.start_time <= below.start_time <= below.end_time <= above.end_time
            depth = int(attr(below, "execscope.args.n"))
            assert attr(below, "execscope.return") == str(depth)


# ------------------------------------------------------------------- calls left without a span, counted


def unrecorded(app: ModuleType) -> dict[str, int]:
    """The calls of ``app``'s functions that left no span, by reason."""
    sites = sites_of(app.__name__) or []
    return {
        "not_sampled": sum(site.calls_not_sampled for site in sites),
        "below_min_duration": sum(site.calls_short for site in sites),
        "errors_only": sum(site.calls_shed for site in sites),
        "suppressed": sum(site.calls_suppressed for site in sites),
    }


NOTHING_UNRECORDED = {"not_sampled": 0, "below_min_duration": 0, "errors_only": 0, "suppressed": 0}


def test_calls_below_min_duration_are_counted_whether_they_return_or_raise(
    rec: Recording, tmp_path: Path
) -> None:
    app = timed_app(tmp_path, pause=1000.0, slow_failure=1000.0, slow_generator=1000.0)

    for _ in range(20):
        app.pause(0)
        with pytest.raises(ValueError):
            app.slow_failure()
    assert list(app.slow_generator()) == [1, 2]
    app.pause(0.002)  # not its min_duration, but below it: counted too

    assert rec.spans() == []
    assert unrecorded(app) == {**NOTHING_UNRECORDED, "below_min_duration": 42}


def test_a_slow_call_is_recorded_not_counted(rec: Recording, tmp_path: Path) -> None:
    app = timed_app(tmp_path, pause=1.0)

    app.pause(0.002)

    assert [span.name for span in rec.spans()] == ["pause"]
    assert unrecorded(app) == NOTHING_UNRECORDED


def test_every_call_of_a_tree_that_is_not_sampled_is_counted(tmp_path: Path) -> None:
    with recording(sampler=ALWAYS_OFF) as rec:
        app = import_source(tmp_path, APP)

        app.handle(rec.tracer)  # handle, validate, store and nested
        app.top()  # top, middle and nested

        assert rec.spans() == []
        assert unrecorded(app) == {**NOTHING_UNRECORDED, "not_sampled": 7}


def test_calls_a_sample_rate_leaves_out_are_counted(rec: Recording, tmp_path: Path) -> None:
    app = sampled_app(tmp_path, tick=0.5)

    for i in range(2000):
        app.tick(i)

    assert unrecorded(app)["not_sampled"] == 2000 - len(rec.spans())


def test_calls_where_instrumentation_is_suppressed_are_counted(rec: Recording, tmp_path: Path) -> None:
    app = import_source(tmp_path, APP)
    token = otel_context.attach(otel_context.set_value(_SUPPRESS_INSTRUMENTATION_KEY, True))
    try:
        app.top()  # top, middle and nested
    finally:
        otel_context.detach(token)

    assert unrecorded(app) == {**NOTHING_UNRECORDED, "suppressed": 3}


def test_the_runtime_sums_what_every_site_counted(rec: Recording, tmp_path: Path) -> None:
    from execscope.autotrace._runtime import not_recorded

    app = timed_app(tmp_path, pause=1000.0)
    before = not_recorded()

    for _ in range(5):
        app.pause(0)

    after = not_recorded()
    assert after["below_min_duration"] - before["below_min_duration"] == 5
    assert set(after) == set(NOTHING_UNRECORDED)
