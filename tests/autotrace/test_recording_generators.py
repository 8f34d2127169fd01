"""Generators and async generators: the span covers the generator's life from its first
resume to exhaustion or close, counts its yields and keeps its return value; its context is
current only while its own body runs, so it never leaks into the consumer."""

from __future__ import annotations

import asyncio
import gc
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType

import pytest
from autotrace_helpers import Recording, import_source, recording
from opentelemetry import trace
from opentelemetry.trace import StatusCode
from recording_helpers import assert_child, attr, attributes, event, source

YIELDS = "execscope.generator.yields"
CLOSED = "execscope.generator.closed"


@pytest.fixture
def rec() -> Iterator[Recording]:
    with recording() as active:
        yield active


GENERATORS = source(
    """
    from opentelemetry import trace


    def count(n):
        for i in range(n):
            yield i
        return "counted"


    def step(i):
        return i


    def with_work(n, tracer):
        for i in range(n):
            step(i)
            with tracer.start_as_current_span("inside"):
                pass
            yield i


    def echo():
        received = []
        while True:
            value = yield len(received)
            if value is None:
                return received
            received.append(value)


    def failing():
        yield 1
        raise ValueError("broken stream")


    def current_inside():
        yield trace.get_current_span()
        yield trace.get_current_span()


    def inner():
        yield "a"
        yield "b"
        return "inner done"


    def outer():
        result = yield from inner()
        yield result


    def forgiving():
        while True:
            try:
                yield
            except KeyError:
                step(-1)


    def never_started():
        yield 1


    def cleaning():
        try:
            yield 1
        finally:
            step(0)


    def collect(n):
        def numbers():
            for i in range(n):
                yield i
        return list(numbers())
    """
)


@pytest.fixture
def gens(rec: Recording, tmp_path: Path) -> ModuleType:
    return import_source(tmp_path, GENERATORS)


def test_exhausted_generator_records_its_yields_and_return_value(rec: Recording, gens: ModuleType) -> None:
    assert list(gens.count(3)) == [0, 1, 2]

    span = rec.span("count")
    assert attr(span, YIELDS) == 3
    assert attr(span, "execscope.return") == "'counted'"
    assert attr(span, "execscope.args.n") == "3"
    assert CLOSED not in attributes(span)
    assert span.status.status_code is StatusCode.UNSET


def test_a_function_that_defines_a_generator_is_recorded_as_a_plain_call(
    rec: Recording, gens: ModuleType
) -> None:
    assert gens.collect(3) == [0, 1, 2]

    call, numbers = rec.span("collect"), rec.span("collect.<locals>.numbers")
    assert YIELDS not in attributes(call)
    assert attr(call, "execscope.return") == "[0, 1, 2]"
    assert attr(numbers, YIELDS) == 3
    assert_child(numbers, call)


def test_return_value_reaches_the_consumer(rec: Recording, gens: ModuleType) -> None:
    generator = gens.echo()
    next(generator)
    generator.send("x")
    generator.send("y")
    with pytest.raises(StopIteration) as stop:
        generator.send(None)

    assert stop.value.value == ["x", "y"]
    span = rec.span("echo")
    assert attr(span, YIELDS) == 3
    assert attr(span, "execscope.return") == "['x', 'y']"


def test_span_covers_the_generators_life(rec: Recording, gens: ModuleType) -> None:
    generator = gens.count(2)
    next(generator)
    with rec.tracer.start_as_current_span("between"):
        pass
    list(generator)

    span, between = rec.span("count"), rec.span("between")
    assert span.start_time is not None and span.end_time is not None
    assert between.start_time is not None and between.end_time is not None
    assert span.start_time <= between.start_time <= between.end_time <= span.end_time


def test_generator_is_not_recorded_until_first_resumed(rec: Recording, gens: ModuleType) -> None:
    generator = gens.never_started()
    generator.close()
    del generator
    gc.collect()

    assert rec.spans() == []


def test_escaping_exception_is_recorded(rec: Recording, gens: ModuleType) -> None:
    with pytest.raises(ValueError, match="broken stream"):
        list(gens.failing())

    span = rec.span("failing")
    assert span.status.status_code is StatusCode.ERROR
    assert attr(span, YIELDS) == 1
    assert event(span)["exception.message"] == "broken stream"


def test_consumer_context_is_unchanged_between_resumes(rec: Recording, gens: ModuleType) -> None:
    outside = trace.get_current_span()
    generator = gens.count(3)
    assert next(generator) == 0
    assert trace.get_current_span() is outside

    with rec.tracer.start_as_current_span("consumer") as consumer:
        assert next(generator) == 1
        assert trace.get_current_span() is consumer
    assert trace.get_current_span() is outside


def test_generator_body_runs_in_its_own_span(rec: Recording, gens: ModuleType) -> None:
    first, second = gens.current_inside()
    generator_span = rec.span("current_inside")

    assert generator_span.context is not None
    for seen in (first, second):
        assert seen.get_span_context().span_id == generator_span.context.span_id


def test_calls_and_spans_inside_the_body_are_children(rec: Recording, gens: ModuleType) -> None:
    with rec.tracer.start_as_current_span("consumer"):
        for _ in gens.with_work(2, rec.tracer):
            with rec.tracer.start_as_current_span("consumer.step"):
                pass

    generator, consumer = rec.span("with_work"), rec.span("consumer")
    assert_child(generator, consumer)
    spans = rec.spans()
    for name in ("step", "inside"):
        found = [s for s in spans if s.name == name]
        assert len(found) == 2
        for span in found:
            assert_child(span, generator)
    # What the consumer does between resumes belongs to the consumer.
    steps = [s for s in spans if s.name == "consumer.step"]
    assert len(steps) == 2
    for span in steps:
        assert_child(span, consumer)


def test_abandoned_generator_closed_explicitly(rec: Recording, gens: ModuleType) -> None:
    outside = trace.get_current_span()
    generator = gens.count(10)
    next(generator)
    next(generator)
    generator.close()

    assert trace.get_current_span() is outside
    span = rec.span("count")
    assert attr(span, CLOSED) is True
    assert attr(span, YIELDS) == 2
    assert "execscope.return" not in attributes(span)
    assert span.status.status_code is StatusCode.UNSET
    assert span.events == ()


def test_abandoned_generator_collected_as_garbage(rec: Recording, gens: ModuleType) -> None:
    with rec.tracer.start_as_current_span("consumer") as consumer:
        generator = gens.count(10)
        next(generator)
        assert trace.get_current_span() is consumer
        del generator
        gc.collect()
        assert trace.get_current_span() is consumer

    span = rec.span("count")
    assert attr(span, CLOSED) is True
    assert_child(span, rec.span("consumer"))


def test_generator_resumed_in_another_context_keeps_its_parent(rec: Recording, gens: ModuleType) -> None:
    with rec.tracer.start_as_current_span("first"):
        generator = gens.with_work(3, rec.tracer)
        next(generator)
    with rec.tracer.start_as_current_span("second") as second:
        next(generator)
        assert trace.get_current_span() is second
    list(generator)

    span = rec.span("with_work")
    assert_child(span, rec.span("first"))
    for step in (s for s in rec.spans() if s.name == "step"):
        assert_child(step, span)


def test_exception_thrown_in_and_not_caught_is_recorded(rec: Recording, gens: ModuleType) -> None:
    generator = gens.count(3)
    next(generator)
    with pytest.raises(KeyError):
        generator.throw(KeyError("stop"))

    span = rec.span("count")
    assert span.status.status_code is StatusCode.ERROR
    assert event(span)["exception.type"] == "KeyError"


def test_code_handling_a_thrown_exception_runs_in_the_generators_span(
    rec: Recording, gens: ModuleType
) -> None:
    generator = gens.forgiving()
    next(generator)
    with rec.tracer.start_as_current_span("consumer") as consumer:
        generator.throw(KeyError("retry"))
        # Back at its yield, the generator gave the consumer its context back.
        assert trace.get_current_span() is consumer
    generator.close()

    assert_child(rec.span("step"), rec.span("forgiving"))


def test_cleanup_of_a_closed_generator_runs_in_its_span(rec: Recording, gens: ModuleType) -> None:
    generator = gens.cleaning()
    next(generator)
    with rec.tracer.start_as_current_span("consumer") as consumer:
        generator.close()
        assert trace.get_current_span() is consumer

    assert_child(rec.span("step"), rec.span("cleaning"))
    assert attr(rec.span("cleaning"), CLOSED) is True


def test_yield_from_delegation_counts_and_never_leaks(rec: Recording, gens: ModuleType) -> None:
    outside = trace.get_current_span()
    generator = gens.outer()
    assert next(generator) == "a"
    assert trace.get_current_span() is outside
    assert list(generator) == ["b", "inner done"]
    assert trace.get_current_span() is outside

    outer, inner = rec.span("outer"), rec.span("inner")
    assert attr(inner, YIELDS) == 2
    assert attr(inner, "execscope.return") == "'inner done'"
    # Values passed through ``yield from`` are not the delegating generator's own yields.
    assert attr(outer, YIELDS) == 1


def test_sub_generator_run_by_yield_from_is_a_child(rec: Recording, gens: ModuleType) -> None:
    with rec.tracer.start_as_current_span("consumer") as consumer:
        generator = gens.outer()
        assert next(generator) == "a"
        # Between the sub-generator's yields the consumer's context is current, not a
        # generator's.
        assert trace.get_current_span() is consumer
        assert list(generator) == ["b", "inner done"]

    assert_child(rec.span("inner"), rec.span("outer"))
    assert_child(rec.span("outer"), rec.span("consumer"))


def test_a_generator_started_after_a_yield_from_is_not_its_child(rec: Recording, gens: ModuleType) -> None:
    with rec.tracer.start_as_current_span("consumer"):
        list(gens.outer())
        list(gens.count(1))  # started by the consumer, after outer's delegation ended

    assert_child(rec.span("count"), rec.span("consumer"))


# --------------------------------------------------------------------------- async generators

ASYNC_GENERATORS = source(
    """
    import asyncio

    from opentelemetry import trace


    async def ticks(n):
        for i in range(n):
            await asyncio.sleep(0)
            yield i


    async def step(i):
        return i


    async def with_work(n):
        for i in range(n):
            await step(i)
            yield trace.get_current_span()
    """
)


@pytest.fixture
def agens(rec: Recording, tmp_path: Path) -> ModuleType:
    return import_source(tmp_path, ASYNC_GENERATORS)


def test_async_generator_counts_its_yields(rec: Recording, agens: ModuleType) -> None:
    async def main() -> list[int]:
        return [i async for i in agens.ticks(4)]

    assert asyncio.run(main()) == [0, 1, 2, 3]

    span = rec.span("ticks")
    assert attr(span, YIELDS) == 4
    assert attr(span, "execscope.args.n") == "4"
    assert CLOSED not in attributes(span)


def test_async_generator_never_leaks_into_the_consumer(rec: Recording, agens: ModuleType) -> None:
    async def main() -> None:
        with rec.tracer.start_as_current_span("consumer") as consumer:
            seen = []
            async for current in agens.with_work(3):
                assert trace.get_current_span() is consumer
                with rec.tracer.start_as_current_span("consumer.step"):
                    pass
                seen.append(current)
            assert trace.get_current_span() is consumer
        generator = rec.span("with_work")
        assert generator.context is not None
        assert all(s.get_span_context().span_id == generator.context.span_id for s in seen)

    asyncio.run(main())

    generator, consumer = rec.span("with_work"), rec.span("consumer")
    assert_child(generator, consumer)
    spans = rec.spans()
    for span in (s for s in spans if s.name == "step"):
        assert_child(span, generator)
    steps = [s for s in spans if s.name == "consumer.step"]
    assert len(steps) == 3
    for span in steps:
        assert_child(span, consumer)


def test_async_generator_closed_early(rec: Recording, agens: ModuleType) -> None:
    async def main() -> None:
        outside = trace.get_current_span()
        generator = agens.ticks(10)
        async for i in generator:
            if i == 1:
                break
        assert trace.get_current_span() is outside
        await generator.aclose()
        assert trace.get_current_span() is outside

    asyncio.run(main())

    span = rec.span("ticks")
    assert attr(span, CLOSED) is True
    assert attr(span, YIELDS) == 2
    assert span.status.status_code is StatusCode.UNSET


def test_async_generator_collected_as_garbage(rec: Recording, agens: ModuleType) -> None:
    async def main() -> None:
        generator = agens.ticks(10)
        await generator.__anext__()
        del generator
        gc.collect()
        # The event loop closes a collected async generator in a task of its own.
        for _ in range(3):
            await asyncio.sleep(0)

    asyncio.run(main())

    span = rec.span("ticks")
    assert attr(span, CLOSED) is True
    assert attr(span, YIELDS) == 1
