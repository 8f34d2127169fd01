"""The tail sampler keeps whole traces: every error, every slow trace, and a rate of the rest."""

from __future__ import annotations

import random
from pathlib import Path

import pytest
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.sampling import Decision, TraceIdRatioBased
from opentelemetry.trace import SpanContext, Status, StatusCode
from pipeline_helpers import in_memory

from execscope.processors import TailPolicy, rate_keeps
from execscope.processors._compact import SPAN_ID, CompactSpan, compact_span
from execscope.processors._stats import PipelineStats
from execscope.processors._tail import TailSampler

MS = 1_000_000


def span(
    trace_id: int,
    span_id: int,
    parent: int | None = None,
    *,
    error: bool = False,
    start: int = 0,
    end: int = MS,
    remote_parent: bool = False,
) -> CompactSpan:
    parent_context = None
    if parent is not None or remote_parent:
        parent_context = SpanContext(trace_id, parent or 99, is_remote=remote_parent)
    return compact_span(
        ReadableSpan(
            name=f"span {span_id}",
            context=SpanContext(trace_id, span_id, is_remote=False),
            parent=parent_context,
            status=Status(StatusCode.ERROR if error else StatusCode.UNSET),
            start_time=start,
            end_time=end,
        )
    )


def sampler(
    keep_rate: float, *, latency_ms: int = 0, max_bytes: int = 10**9, **kwargs: object
) -> TailSampler:
    policy = TailPolicy(keep_rate=keep_rate, latency_threshold_ns=latency_ms * MS)
    return TailSampler(policy, PipelineStats(), max_bytes=max_bytes, max_hold_s=60, **kwargs)  # type: ignore[arg-type]


def ids(spans: list[CompactSpan]) -> list[int]:
    return [s[SPAN_ID] for s in spans]


def test_with_a_keep_rate_of_one_nothing_is_held() -> None:
    tail = sampler(1.0)
    assert ids(tail.offer(span(1, 2, parent=1))) == [2]
    assert tail.held_traces == 0


def test_a_trace_is_held_until_its_local_root_ends_then_released_whole() -> None:
    tail = sampler(0.0)
    assert tail.offer(span(1, 2, parent=1, error=True)) == []
    assert tail.offer(span(1, 3, parent=1)) == []
    assert tail.held_traces == 1
    assert ids(tail.offer(span(1, 1))) == [2, 3, 1]
    assert tail.held_traces == 0 and tail.held_bytes == 0


def test_a_span_with_a_remote_parent_is_a_local_root() -> None:
    tail = sampler(0.0)
    assert ids(tail.offer(span(1, 5, remote_parent=True, error=True))) == [5]


def test_traces_without_errors_below_the_rate_and_latency_are_dropped_and_counted() -> None:
    tail = sampler(0.0, latency_ms=100)
    tail.offer(span(1, 2, parent=1))
    assert tail.offer(span(1, 1, end=50 * MS)) == []
    assert tail._stats.dropped["sampling"] == 2


def test_slow_traces_are_kept() -> None:
    tail = sampler(0.0, latency_ms=100)
    tail.offer(span(1, 2, parent=1, start=0, end=10 * MS))
    assert ids(tail.offer(span(1, 1, start=0, end=150 * MS))) == [2, 1]


def test_spans_ending_after_the_decision_follow_it() -> None:
    tail = sampler(0.0)
    tail.offer(span(1, 1, error=True))  # kept
    tail.offer(span(2, 1))  # dropped
    assert ids(tail.offer(span(1, 7, parent=1))) == [7]
    assert tail.offer(span(2, 7, parent=1)) == []


def test_a_full_buffer_decides_the_oldest_traces_early_keeping_those_with_errors() -> None:
    tail = sampler(0.0, max_bytes=700)  # room for one held span
    assert tail.offer(span(1, 2, parent=1, error=True)) == []
    assert ids(tail.offer(span(2, 2, parent=1))) == [2]  # trace 1 decided early: it has an error
    assert tail.offer(span(3, 2, parent=1)) == []  # trace 2 decided early: dropped
    assert tail.held_traces == 1 and tail.held_bytes <= 1_000
    assert tail._stats.dropped["budget"] == 1


def test_a_root_that_never_ends_does_not_pin_its_children_past_the_hold_limit() -> None:
    now = [0.0]
    policy = TailPolicy(keep_rate=0.0)
    tail = TailSampler(policy, PipelineStats(), max_bytes=10**9, max_hold_s=30, clock=lambda: now[0])
    tail.offer(span(1, 2, parent=1, error=True))
    now[0] = 31.0
    released: list[ReadableSpan] = []
    for index in range(300):  # the age is checked every few hundred spans
        released += tail.offer(span(1000 + index, 2, parent=1))
    assert ids(released) == [2]  # the old trace, decided early on its error
    assert tail.held_traces == 300  # the young ones are still held


def test_flush_decides_every_held_trace() -> None:
    tail = sampler(0.0)
    tail.offer(span(1, 2, parent=1, error=True))
    tail.offer(span(2, 2, parent=1))
    assert ids(tail.flush()) == [2]
    assert tail.held_traces == 0


def test_the_governors_lower_rate_caps_the_configured_one() -> None:
    cap = [1.0]
    tail = TailSampler(
        TailPolicy(keep_rate=1.0), PipelineStats(), max_bytes=10**9, max_hold_s=60, keep_rate=lambda: cap[0]
    )
    assert tail.offer(span(1, 1)) != []
    cap[0] = 0.0
    assert tail.offer(span(2, 2, parent=1)) == []
    assert tail.offer(span(2, 1)) == []


def test_the_rate_rule_agrees_with_the_sdks_trace_id_ratio_sampler() -> None:
    generator = random.Random(7)
    for rate in (0.0, 0.01, 0.3, 0.5, 0.99, 1.0):
        head = TraceIdRatioBased(rate)
        for _ in range(2_000):
            trace_id = generator.getrandbits(128)
            sdk = head.should_sample(None, trace_id, "x").decision is Decision.RECORD_AND_SAMPLE
            assert rate_keeps(trace_id, rate) == sdk


def test_the_keep_rate_keeps_about_that_fraction() -> None:
    generator = random.Random(3)
    kept = sum(rate_keeps(generator.getrandbits(128), 0.25) for _ in range(20_000))
    assert 0.23 < kept / 20_000 < 0.27


@pytest.mark.parametrize("bad", [-0.1, 1.5])
def test_a_keep_rate_outside_zero_to_one_is_refused(bad: float) -> None:
    with pytest.raises(ValueError, match="keep_rate"):
        TailPolicy(keep_rate=bad)


def test_in_the_pipeline_an_error_anywhere_keeps_the_whole_trace(tmp_path: Path) -> None:
    with in_memory(tmp_path, tail_keep_rate=0.0) as (pipe, exporter):
        with pipe.tracer.start_as_current_span("ok request"), pipe.tracer.start_as_current_span("ok query"):
            pass
        with (
            pipe.tracer.start_as_current_span("failing request"),
            pipe.tracer.start_as_current_span("failing query") as inner,
        ):
            inner.set_status(Status(StatusCode.ERROR, "boom"))
        pipe.flush()
        names = sorted(s.name for s in exporter.get_finished_spans())
        assert names == ["failing query", "failing request"]
        assert pipe.stats.snapshot()["dropped"]["sampling"] == 2  # type: ignore[index]


# -- deciding before the span is made -------------------------------------------------------------


def test_a_one_span_trace_the_decision_drops_need_not_be_made() -> None:
    tail = sampler(0.0, latency_ms=50)
    assert tail.drops_unmade(1, local_root=True, start=0, end=MS, error=False)
    assert tail._stats.snapshot()["dropped"]["sampling"] == 1  # type: ignore[index]
    # Errors and slow traces are kept, and so must be made.
    assert not tail.drops_unmade(2, local_root=True, start=0, end=MS, error=True)
    assert not tail.drops_unmade(3, local_root=True, start=0, end=60 * MS, error=False)
    assert tail._stats.snapshot()["dropped"]["sampling"] == 1  # type: ignore[index]


def test_what_cannot_be_decided_without_the_span_is_left_to_offer() -> None:
    tail = sampler(0.0)
    assert tail.offer(span(1, 2, parent=1)) == []  # held, waiting for its root
    assert not tail.drops_unmade(1, local_root=True, start=0, end=MS, error=False)  # its trace is held
    assert not tail.drops_unmade(5, local_root=False, start=0, end=MS, error=False)  # not a root
    assert not sampler(1.0).drops_unmade(6, local_root=True, start=0, end=MS, error=False)  # nothing held
    assert tail._stats.snapshot()["dropped"]["sampling"] == 0  # type: ignore[index]


def test_a_decision_made_before_the_span_is_followed_by_the_trace_and_the_other_way_round() -> None:
    tail = sampler(0.0)
    assert not tail.drops_unmade(1, local_root=True, start=0, end=MS, error=True)  # kept
    assert ids(tail.offer(span(1, 2, error=True))) == [2]  # the span made after all: exported
    assert ids(tail.offer(span(1, 3, parent=2))) == [3]  # and a late span of the trace follows
    assert tail.offer(span(7, 8)) == []  # decided against at its root...
    assert tail.drops_unmade(7, local_root=False, start=0, end=MS, error=False)  # ...a late one too
    assert tail._stats.snapshot()["dropped"]["sampling"] == 2  # type: ignore[index]


@pytest.mark.parametrize("keep_rate", [0.0, 0.3, 1.0])
def test_deciding_before_the_span_is_made_agrees_with_offering_it(keep_rate: float) -> None:
    rng = random.Random(7)
    before, after = sampler(keep_rate, latency_ms=5), sampler(keep_rate, latency_ms=5)
    for _ in range(500):
        trace_id, error, end = rng.getrandbits(128), rng.random() < 0.1, rng.choice([MS, 10 * MS])
        dropped = before.drops_unmade(trace_id, local_root=True, start=0, end=end, error=error)
        assert dropped == (after.offer(span(trace_id, 1, error=error, end=end)) == [])
    assert before._stats.snapshot()["dropped"] == after._stats.snapshot()["dropped"]
