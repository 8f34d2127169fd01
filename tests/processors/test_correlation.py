"""Every span of one unit of work carries one correlation id, taken from the caller or made here."""

from __future__ import annotations

import asyncio
import contextvars
import os
import threading
from pathlib import Path

from opentelemetry import baggage, context, propagate
from opentelemetry.propagators.composite import CompositePropagator
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator
from pipeline_helpers import by_name, in_memory

from execscope.attributes import CORRELATION_ID
from execscope.processors import CorrelationPropagator, current_correlation_id, install_correlation_propagator
from execscope.processors._correlation import BAGGAGE_KEY, HEADER, CorrelationRegistry

PROPAGATOR = CompositePropagator([TraceContextTextMapPropagator(), CorrelationPropagator()])


def cid(span: object) -> str:
    return span.attributes[CORRELATION_ID]  # type: ignore[attr-defined,no-any-return]


def test_a_local_root_gets_a_new_id_that_all_its_descendants_share(tmp_path: Path) -> None:
    with in_memory(tmp_path) as (pipe, exporter):
        with (
            pipe.tracer.start_as_current_span("request"),
            pipe.tracer.start_as_current_span("handler"),
            pipe.tracer.start_as_current_span("query"),
        ):
            pass
        with pipe.tracer.start_as_current_span("another request"):
            pass
        pipe.flush()
        spans = by_name(exporter.get_finished_spans())
    assert len(cid(spans["request"])) == 32
    assert cid(spans["request"]) == cid(spans["handler"]) == cid(spans["query"])
    assert cid(spans["another request"]) != cid(spans["request"])


def test_the_id_survives_threads_and_asyncio_tasks(tmp_path: Path) -> None:
    with in_memory(tmp_path) as (pipe, exporter):

        def in_thread() -> None:
            with pipe.tracer.start_as_current_span("in thread"):
                pass

        async def in_task() -> None:
            with pipe.tracer.start_as_current_span("in task"):
                await asyncio.sleep(0)

        async def gather() -> None:
            await asyncio.gather(asyncio.create_task(in_task()))

        with pipe.tracer.start_as_current_span("request"):
            worker = threading.Thread(target=contextvars.copy_context().run, args=(in_thread,))
            worker.start()
            worker.join()
            asyncio.run(gather())
        pipe.flush()
        spans = by_name(exporter.get_finished_spans())
    assert cid(spans["in thread"]) == cid(spans["in task"]) == cid(spans["request"])


def test_an_incoming_x_correlation_id_header_is_used(tmp_path: Path) -> None:
    incoming = PROPAGATOR.extract({HEADER: "order-7f3a", "traceparent": f"00-{'ab' * 16}-{'cd' * 8}-01"})
    with in_memory(tmp_path) as (pipe, exporter):
        token = context.attach(incoming)
        try:
            with pipe.tracer.start_as_current_span("server"), pipe.tracer.start_as_current_span("inner"):
                pass
        finally:
            context.detach(token)
        pipe.flush()
        spans = by_name(exporter.get_finished_spans())
    assert cid(spans["server"]) == cid(spans["inner"]) == "order-7f3a"


def test_an_incoming_baggage_entry_is_used_and_a_malformed_header_is_ignored(tmp_path: Path) -> None:
    from_baggage = PROPAGATOR.extract({"baggage": f"{BAGGAGE_KEY}=from-upstream,other=1"})
    malformed = PROPAGATOR.extract({HEADER: "no spaces; or=separators"})
    with in_memory(tmp_path) as (pipe, exporter):
        for name, incoming in (("baggage", from_baggage), ("malformed", malformed)):
            token = context.attach(incoming)
            try:
                with pipe.tracer.start_as_current_span(name):
                    pass
            finally:
                context.detach(token)
        pipe.flush()
        spans = by_name(exporter.get_finished_spans())
    assert cid(spans["baggage"]) == "from-upstream"
    assert len(cid(spans["malformed"])) == 32


def test_outgoing_calls_carry_the_id_as_a_header_and_in_baggage_next_to_other_entries(tmp_path: Path) -> None:
    with in_memory(tmp_path) as (pipe, exporter):
        token = context.attach(baggage.set_baggage("tenant", "acme"))
        try:
            with pipe.tracer.start_as_current_span("client call"):
                carrier: dict[str, str] = {}
                PROPAGATOR.inject(carrier)
        finally:
            context.detach(token)
        pipe.flush()
        (span,) = exporter.get_finished_spans()
    assert carrier[HEADER] == cid(span)
    assert f"{BAGGAGE_KEY}={cid(span)}" in carrier["baggage"]
    assert "tenant=acme" in carrier["baggage"]
    downstream = PROPAGATOR.extract(carrier)
    assert current_correlation_id(downstream) == cid(span)


def test_nothing_is_injected_outside_any_unit_of_work() -> None:
    carrier: dict[str, str] = {}
    CorrelationPropagator().inject(carrier, context.Context())
    assert carrier == {}


def test_ids_made_by_different_processes_differ(tmp_path: Path) -> None:
    registry = CorrelationRegistry()
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child makes an id for the same trace id
        os.write(write, registry.resolve(1).encode())
        os._exit(0)
    os.waitpid(pid, 0)
    child_id = os.read(read, 64).decode()
    assert child_id and child_id != registry.resolve(1)


def test_the_registry_forgets_the_least_recently_used_trace_beyond_its_capacity() -> None:
    registry = CorrelationRegistry(capacity=2)
    first = registry.resolve(1)
    registry.resolve(2)
    assert registry.resolve(1) == first  # used again: now the most recent
    registry.resolve(3)
    assert registry.known(2) is None
    assert registry.known(1) == first


def test_the_default_propagators_carry_trace_context_and_the_correlation_id() -> None:
    previous = propagate.get_global_textmap()
    try:
        install_correlation_propagator({})
        assert {"traceparent", HEADER, "baggage"} <= propagate.get_global_textmap().fields
        propagate.set_global_textmap(previous)
        install_correlation_propagator({"OTEL_PROPAGATORS": "b3"})  # the user's choice stands
        assert propagate.get_global_textmap() is previous
    finally:
        propagate.set_global_textmap(previous)
