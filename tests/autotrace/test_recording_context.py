"""Where a recorded call sits in its trace: nesting of rewritten calls, interplay with spans
made through the OpenTelemetry API, and context across ``await``, tasks and threads."""

from __future__ import annotations

import asyncio
import contextvars
import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from types import ModuleType

import pytest
from autotrace_helpers import Recording, import_source, recording
from opentelemetry import trace
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.trace import StatusCode
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator
from recording_helpers import assert_child, assert_root, attr, attributes, source, span_id


@pytest.fixture
def rec() -> Iterator[Recording]:
    with recording() as active:
        yield active


TREE = source(
    """
    from opentelemetry import trace
    from opentelemetry.trace import StatusCode
    from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator


    def handle(order):
        validate(order)
        return store(order)


    def validate(order):
        return True


    def store(order):
        return 1


    def fail():
        raise LookupError("no such order")


    def annotate():
        span = trace.get_current_span()
        span.set_attribute("app.customer", "ann")
        span.set_attributes({"app.items": 3, "app.express": True})
        span.add_event("checked", {"app.rule": "stock"})
        span.update_name("annotated")
        return span


    def reject():
        trace.get_current_span().set_status(StatusCode.ERROR, "rejected by rule")


    def manual(tracer):
        with tracer.start_as_current_span("db.query") as span:
            span.set_attribute("db.statement", "select 1")
            store(None)
        return 2


    def current():
        return trace.get_current_span()


    def headers():
        carrier = {}
        TraceContextTextMapPropagator().inject(carrier)
        return carrier
    """
)


@pytest.fixture
def tree(rec: Recording, tmp_path: Path) -> ModuleType:
    return import_source(tmp_path, TREE)


# --------------------------------------------------------------------------- nesting


def test_nested_calls_are_children_in_one_trace(rec: Recording, tree: ModuleType) -> None:
    tree.handle("o-1")

    handle, validate, store = rec.span("handle"), rec.span("validate"), rec.span("store")
    assert_root(handle)
    assert_child(validate, handle)
    assert_child(store, handle)
    assert validate.context is not None and store.context is not None
    assert validate.context.span_id != store.context.span_id


def test_separate_top_level_calls_are_separate_traces(rec: Recording, tree: ModuleType) -> None:
    tree.handle("o-1")
    tree.handle("o-2")

    roots = [s for s in rec.spans() if s.name == "handle"]
    assert len(roots) == 2
    assert all(s.parent is None for s in roots)
    assert roots[0].context is not None and roots[1].context is not None
    assert roots[0].context.trace_id != roots[1].context.trace_id


def test_the_current_span_is_restored_after_a_call(rec: Recording, tree: ModuleType) -> None:
    before = trace.get_current_span()
    tree.handle("o-1")
    assert trace.get_current_span() is before

    with rec.tracer.start_as_current_span("request") as request:
        tree.handle("o-2")
        assert trace.get_current_span() is request
        with pytest.raises(LookupError):
            tree.fail()  # a call that fails restores it too
        assert trace.get_current_span() is request


# --------------------------------------------------------------------------- the OpenTelemetry API


def test_span_started_inside_is_a_child_of_the_call(rec: Recording, tree: ModuleType) -> None:
    assert tree.manual(rec.tracer) == 2

    manual, query, store = rec.span("manual"), rec.span("db.query"), rec.span("store")
    assert_child(query, manual)
    assert_child(store, query)
    assert attr(query, "db.statement") == "select 1"


def test_call_inside_a_hand_made_span_is_its_child(rec: Recording, tree: ModuleType) -> None:
    with rec.tracer.start_as_current_span("request"):
        tree.handle("o-1")

    request, handle = rec.span("request"), rec.span("handle")
    assert_root(request)
    assert_child(handle, request)
    assert_child(rec.span("store"), handle)


def test_current_span_inside_is_the_calls_span(rec: Recording, tree: ModuleType) -> None:
    span = tree.current()

    recorded = rec.span("current")
    context = span.get_span_context()
    assert recorded.context is not None
    assert context.trace_id == recorded.context.trace_id
    assert context.span_id == recorded.context.span_id
    assert context.is_valid
    assert context.trace_flags.sampled


def test_attributes_events_name_set_through_the_api_land_on_the_calls_span(
    rec: Recording, tree: ModuleType
) -> None:
    span = tree.annotate()

    recorded = rec.span("annotated")
    assert attr(recorded, "code.function.name").endswith(".annotate")
    assert attr(recorded, "app.customer") == "ann"
    assert attr(recorded, "app.items") == 3
    assert attr(recorded, "app.express") is True
    assert [(e.name, dict(e.attributes or {})) for e in recorded.events] == [
        ("checked", {"app.rule": "stock"})
    ]
    # Once the call is over its span no longer records.
    assert not span.is_recording()
    span.set_attribute("app.late", 1)
    assert "app.late" not in attributes(rec.span("annotated"))


def test_status_set_through_the_api_is_kept(rec: Recording, tree: ModuleType) -> None:
    tree.reject()

    status = rec.span("reject").status
    assert status.status_code is StatusCode.ERROR
    assert status.description == "rejected by rule"


def test_propagated_headers_name_the_calls_span(rec: Recording, tree: ModuleType) -> None:
    carrier = tree.headers()

    recorded = rec.span("headers")
    assert recorded.context is not None
    version, trace_id, span_id, flags = carrier["traceparent"].split("-")
    assert (version, flags) == ("00", "01")
    assert int(trace_id, 16) == recorded.context.trace_id
    assert int(span_id, 16) == recorded.context.span_id


def test_call_under_a_remote_parent_continues_its_trace(rec: Recording, tree: ModuleType) -> None:
    trace_id, span_id = 0x0AF7651916CD43DD8448EB211C80319C, 0xB7AD6B7169203331
    incoming = {"traceparent": f"00-{trace_id:032x}-{span_id:016x}-01"}
    context = TraceContextTextMapPropagator().extract(incoming)

    from opentelemetry import context as otel_context

    token = otel_context.attach(context)
    try:
        tree.handle("o-1")
    finally:
        otel_context.detach(token)

    handle = rec.span("handle")
    assert handle.context is not None and handle.parent is not None
    assert handle.context.trace_id == trace_id
    assert handle.parent.span_id == span_id
    assert handle.parent.is_remote


# --------------------------------------------------------------------------- asyncio

ASYNC = source(
    """
    import asyncio


    async def fetch(n):
        await asyncio.sleep(0)
        return n * 10


    async def sequential():
        a = await fetch(1)
        b = await fetch(2)
        return a + b


    async def spawn():
        task = asyncio.create_task(fetch(3))
        await asyncio.sleep(0)
        return await task


    async def group():
        async with asyncio.TaskGroup() as tasks:
            first = tasks.create_task(fetch(4))
            second = tasks.create_task(fetch(5))
        return first.result() + second.result()


    async def gathered():
        return sum(await asyncio.gather(fetch(6), fetch(7), fetch(8)))


    async def worker(name, rounds):
        for i in range(rounds):
            await fetch(i)
            await asyncio.sleep(0)
        return name


    def blocking(n):
        return n + 1


    async def offload(n):
        return await asyncio.to_thread(blocking, n)


    async def executor(n):
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(None, blocking, n)
    """
)


@pytest.fixture
def aio(rec: Recording, tmp_path: Path) -> ModuleType:
    return import_source(tmp_path, ASYNC)


def fetches(rec: Recording) -> list[ReadableSpan]:
    return [s for s in rec.spans() if s.name == "fetch"]


def test_awaited_coroutines_are_children(rec: Recording, aio: ModuleType) -> None:
    assert asyncio.run(aio.sequential()) == 30

    parent = rec.span("sequential")
    children = fetches(rec)
    assert sorted(attr(s, "execscope.args.n") for s in children) == ["1", "2"]
    for child in children:
        assert_child(child, parent)
    assert attr(parent, "execscope.return") == "30"


def test_task_created_inside_is_a_child(rec: Recording, aio: ModuleType) -> None:
    assert asyncio.run(aio.spawn()) == 30

    [child] = fetches(rec)
    assert_child(child, rec.span("spawn"))


def test_task_group_tasks_are_children(rec: Recording, aio: ModuleType) -> None:
    assert asyncio.run(aio.group()) == 90

    children = fetches(rec)
    assert len(children) == 2
    for child in children:
        assert_child(child, rec.span("group"))


def test_gathered_coroutines_are_children(rec: Recording, aio: ModuleType) -> None:
    assert asyncio.run(aio.gathered()) == 210

    children = fetches(rec)
    assert len(children) == 3
    for child in children:
        assert_child(child, rec.span("gathered"))


def test_interleaved_tasks_keep_their_own_trace(rec: Recording, aio: ModuleType) -> None:
    async def main() -> list[str]:
        outside = trace.get_current_span()
        names = await asyncio.gather(*(aio.worker(f"w{i}", 5) for i in range(4)))
        assert trace.get_current_span() is outside
        return list(names)

    assert asyncio.run(main()) == ["w0", "w1", "w2", "w3"]

    spans = rec.spans()
    workers = {s.context.span_id: s for s in spans if s.name == "worker"}
    assert len(workers) == 4
    assert len({s.context.trace_id for s in workers.values()}) == 4
    children = fetches(rec)
    assert len(children) == 20
    per_worker: dict[int, list[str]] = {}
    for child in children:
        assert child.parent is not None
        parent = workers[child.parent.span_id]
        assert_child(child, parent)
        per_worker.setdefault(child.parent.span_id, []).append(attr(child, "execscope.args.n"))
    assert all(sorted(ns) == ["0", "1", "2", "3", "4"] for ns in per_worker.values())


def test_hand_made_span_across_awaits_parents_the_calls_inside(rec: Recording, aio: ModuleType) -> None:
    async def main() -> None:
        with rec.tracer.start_as_current_span("job"):
            await aio.sequential()
            await asyncio.gather(aio.fetch(9), aio.fetch(10))

    asyncio.run(main())

    job = rec.span("job")
    assert_child(rec.span("sequential"), job)
    direct = [s for s in fetches(rec) if attr(s, "execscope.args.n") in ("9", "10")]
    assert len(direct) == 2
    for span in direct:
        assert_child(span, job)


def test_to_thread_call_is_a_child(rec: Recording, aio: ModuleType) -> None:
    """``asyncio.to_thread`` copies the context into the worker thread."""
    assert asyncio.run(aio.offload(1)) == 2

    assert_child(rec.span("blocking"), rec.span("offload"))


# --------------------------------------------------------------------------- threads

THREADS = source(
    """
    import threading
    from concurrent.futures import ThreadPoolExecutor


    def work(n):
        return n * 2


    def start_thread():
        thread = threading.Thread(target=work, args=(1,))
        thread.start()
        thread.join()


    def pool():
        with ThreadPoolExecutor(max_workers=2) as executor:
            return list(executor.map(work, [1, 2, 3]))


    def submit():
        with ThreadPoolExecutor(max_workers=1) as executor:
            return executor.submit(work, 5).result()
    """
)


@pytest.fixture
def threads(rec: Recording, tmp_path: Path) -> ModuleType:
    return import_source(tmp_path, THREADS)


def test_context_copied_into_a_thread_makes_its_calls_children(rec: Recording, threads: ModuleType) -> None:
    """The standard library does not carry the context into threads; code that copies it
    (``contextvars.copy_context().run``) gets its calls parented correctly."""
    results: list[int] = []

    def run_in_thread() -> None:
        context = contextvars.copy_context()
        thread = threading.Thread(target=lambda: results.append(context.run(threads.work, 2)))
        thread.start()
        thread.join()
        with ThreadPoolExecutor(max_workers=1) as executor:
            results.append(executor.submit(contextvars.copy_context().run, threads.work, 3).result())

    with rec.tracer.start_as_current_span("request"):
        run_in_thread()

    assert results == [4, 6]
    request = rec.span("request")
    works = [s for s in rec.spans() if s.name == "work"]
    assert len(works) == 2
    for span in works:
        assert_child(span, request)


def test_thread_without_context_starts_its_own_trace(rec: Recording, threads: ModuleType) -> None:
    """Without context propagation a thread's calls are recorded as roots of their own traces,
    never attached to a span of another thread."""
    with rec.tracer.start_as_current_span("request"):
        thread = threading.Thread(target=threads.work, args=(1,))
        thread.start()
        thread.join()

    work, request = rec.span("work"), rec.span("request")
    assert_root(work)
    assert work.context is not None and request.context is not None
    assert work.context.trace_id != request.context.trace_id


@pytest.fixture
def threading_instrumented(rec: Recording) -> Iterator[None]:
    module = pytest.importorskip(
        "opentelemetry.instrumentation.threading",
        reason=(
            "opentelemetry-instrumentation-threading is not installed: execscope depends on it to "
            "carry the context into threads and thread pools"
        ),
    )
    instrumentor = module.ThreadingInstrumentor()
    instrumentor.instrument()
    try:
        yield
    finally:
        instrumentor.uninstrument()


@pytest.mark.usefixtures("threading_instrumented")
def test_thread_started_inside_a_call_is_its_child(rec: Recording, threads: ModuleType) -> None:
    threads.start_thread()

    assert_child(rec.span("work"), rec.span("start_thread"))


@pytest.mark.usefixtures("threading_instrumented")
def test_thread_pool_calls_are_children(rec: Recording, threads: ModuleType) -> None:
    assert threads.pool() == [2, 4, 6]
    assert threads.submit() == 10

    pool, submit = rec.span("pool"), rec.span("submit")
    works = [s for s in rec.spans() if s.name == "work"]
    assert len(works) == 4
    under_pool = [s for s in works if s.parent is not None and s.parent.span_id == span_id(pool)]
    under_submit = [s for s in works if s.parent is not None and s.parent.span_id == span_id(submit)]
    assert len(under_pool) == 3
    assert len(under_submit) == 1
    for span in under_pool:
        assert_child(span, pool)
    assert_child(under_submit[0], submit)


@pytest.mark.usefixtures("threading_instrumented")
def test_run_in_executor_call_is_a_child(rec: Recording, aio: ModuleType) -> None:
    assert asyncio.run(aio.executor(1)) == 2

    assert_child(rec.span("blocking"), rec.span("executor"))
