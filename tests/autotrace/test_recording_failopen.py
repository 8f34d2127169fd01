"""Recording never changes what the program does: failing span processors, hostile, huge or
self-referencing arguments, sensitive values, a full queue, internal errors, deep recursion
and many threads at once."""

from __future__ import annotations

import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from types import ModuleType

import pytest
from autotrace_helpers import Recording, import_source, recording
from opentelemetry import trace
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import ReadableSpan, SpanProcessor
from recording_helpers import attr, attributes, source

from execscope import autotrace
from execscope.autotrace import _runtime
from execscope.autotrace._recorder import Recorder
from execscope.capture import CaptureLimits, Redactor


@pytest.fixture
def rec() -> Iterator[Recording]:
    with recording() as active:
        yield active


APP = source(
    """
    def handle(order):
        validate(order)
        return store(order)


    def validate(order):
        return True


    def store(order):
        return order


    def take(value):
        return "taken"


    def take_many(*values, **named):
        return len(values) + len(named)


    def login(user, password, token=None, api_key=None, **extra):
        return {"user": user, "session_id": "s-1", "password": password}


    def note(text):
        return text


    def down(n):
        return 0 if n == 0 else down(n - 1) + 1


    def forever(n):
        return forever(n + 1)
    """
)


@pytest.fixture
def app(rec: Recording, tmp_path: Path) -> ModuleType:
    return import_source(tmp_path, APP)


def argument(span: ReadableSpan, name: str) -> str:
    value = attr(span, f"execscope.args.{name}")
    assert isinstance(value, str)
    return value


# --------------------------------------------------------------------------- failing exporters


class FailingProcessor(SpanProcessor):
    def on_end(self, span: ReadableSpan) -> None:
        raise RuntimeError("exporter is down")


def test_processor_that_raises_does_not_affect_the_program(rec: Recording, app: ModuleType) -> None:
    rec.clear()
    rec.provider.add_span_processor(FailingProcessor())
    errors = autotrace.stats().conversion_errors

    assert [app.handle(i) for i in range(5)] == [0, 1, 2, 3, 4]

    # The processors before the failing one still got every span.
    assert len(rec.spans()) == 15
    assert autotrace.stats().conversion_errors == errors + 15


def test_flush_inside_a_traced_call_does_not_record_traced_processors(rec: Recording, tmp_path: Path) -> None:
    """A span processor defined in the application is rewritten like any other class; when a
    traced function flushes, the processor's own calls are not recorded (which would feed
    the queue being drained, forever)."""
    module = import_source(
        tmp_path,
        source(
            """
            from opentelemetry.sdk.trace import SpanProcessor

            from execscope import autotrace


            class FeedbackLoop(BaseException):
                pass


            class Audit(SpanProcessor):
                def __init__(self):
                    self.seen = 0

                def on_end(self, span):
                    self.seen += 1
                    if self.seen > 100:
                        raise FeedbackLoop()


            def work():
                return 1


            def main():
                work()
                return autotrace.flush()
            """
        ),
    )
    audit = module.Audit()
    rec.clear()
    rec.provider.add_span_processor(audit)

    assert module.main() == 1  # the call to work()
    assert audit.seen == 1
    assert sorted(s.name for s in rec.spans()) == ["main", "work"]


# --------------------------------------------------------------------------- unsafe arguments


class Hostile:
    """Every hook the interpreter could call on it says so, and fails (or blocks)."""

    touched: list[str] = []

    def __init__(self) -> None:
        object.__setattr__(self, "name", "h")

    def __getattribute__(self, name: str) -> object:
        Hostile.touched.append(f"getattribute {name}")
        raise RuntimeError(name)

    def __getattr__(self, name: str) -> object:
        Hostile.touched.append(f"getattr {name}")
        raise RuntimeError(name)

    def __repr__(self) -> str:
        Hostile.touched.append("repr")
        threading.Event().wait(2)  # blocks
        raise RuntimeError("repr")

    def __str__(self) -> str:
        Hostile.touched.append("str")
        raise RuntimeError("str")

    def __len__(self) -> int:
        Hostile.touched.append("len")
        raise RuntimeError("len")

    def __iter__(self) -> Iterator[object]:
        Hostile.touched.append("iter")
        raise RuntimeError("iter")

    def __eq__(self, other: object) -> bool:
        Hostile.touched.append("eq")
        raise RuntimeError("eq")

    def __hash__(self) -> int:
        Hostile.touched.append("hash")
        raise RuntimeError("hash")

    def __bool__(self) -> bool:
        Hostile.touched.append("bool")
        raise RuntimeError("bool")


def test_hostile_argument_is_recorded_without_running_its_code(rec: Recording, app: ModuleType) -> None:
    Hostile.touched.clear()
    hostile = Hostile()

    started = time.monotonic()
    assert app.take(hostile) == "taken"
    assert app.take_many(hostile, [hostile], key=hostile) == 3
    assert app.store(hostile) is hostile
    elapsed = time.monotonic() - started

    assert Hostile.touched == []
    assert elapsed < 1.0  # __repr__ would block for 2 s
    assert argument(rec.span("take"), "value") == "Hostile(name='h')"
    assert argument(rec.span("take_many"), "values") == "(Hostile(name='h'), [Hostile(name='h')])"
    assert attr(rec.span("store"), "execscope.return") == "Hostile(name='h')"


def test_huge_arguments_are_recorded_within_bounds(rec: Recording, app: ModuleType) -> None:
    limits = CaptureLimits()
    nested: list[object] = []
    for _ in range(10_000):
        nested = [nested]

    app.take(list(range(1_000_000)))
    app.take({i: str(i) for i in range(100_000)})
    app.take("x" * 10_000_000)
    app.take(b"\x00" * 10_000_000)
    app.take(nested)
    app.take(2**100_000)

    takes = [argument(s, "value") for s in rec.spans()]
    assert len(takes) == 6
    for text in takes:
        assert len(text) <= limits.budget
    assert takes[0].startswith("[0, 1, 2, 3, 4, 5, 6, 7, 8, 9, ")
    assert takes[0].endswith("more]")
    assert takes[2].startswith("'xxxx")
    assert takes[4].startswith("[[[")


def test_self_referencing_arguments_are_recorded(rec: Recording, app: ModuleType) -> None:
    loop: list[object] = [1]
    loop.append(loop)
    table: dict[str, object] = {"a": 1}
    table["self"] = table

    class Node:
        def __init__(self) -> None:
            self.next = self

    app.take(loop)
    app.take(table)
    app.take(Node())

    texts = [argument(s, "value") for s in rec.spans()]
    assert texts[0] == "[1, <recursion>]"
    assert texts[1] == "{'a': 1, 'self': <recursion>}"
    assert "<recursion>" in texts[2]


def test_iterator_arguments_are_not_consumed(rec: Recording, app: ModuleType) -> None:
    generator = (i for i in range(3))
    iterator = iter([4, 5])
    mapped = map(str, [6, 7])

    app.take_many(generator, iterator, mapped)

    assert list(generator) == [0, 1, 2]
    assert list(iterator) == [4, 5]
    assert list(mapped) == ["6", "7"]
    assert argument(rec.span("take_many"), "values").startswith("(<generator ")


# --------------------------------------------------------------------------- sensitive values


def test_sensitive_arguments_are_redacted(rec: Recording, app: ModuleType) -> None:
    result = app.login("ann", "hunter2", token="t0k3n", api_key="k3y", client_secret="s3cr3t", mode="web")

    assert result["password"] == "hunter2"
    span = rec.span("login")
    assert argument(span, "user") == "'ann'"
    assert argument(span, "password") == "[redacted]"
    assert argument(span, "token") == "[redacted]"
    assert argument(span, "api_key") == "[redacted]"
    assert argument(span, "extra") == "{'client_secret': [redacted], 'mode': 'web'}"
    assert attr(span, "execscope.return") == (
        "{'user': 'ann', 'session_id': [redacted], 'password': [redacted]}"
    )
    for secret in ("hunter2", "t0k3n", "k3y", "s3cr3t"):
        assert secret not in str(attributes(span))


def test_credentials_inside_values_are_masked(rec: Recording, app: ModuleType) -> None:
    app.note("sent with Bearer abcdefghijklmnop")
    app.note({"Authorization": "Basic dXNlcjpwYXNz", "accept": "json"})

    notes = [argument(s, "text") for s in rec.spans()]
    assert notes[0] == "'sent with Bearer [redacted]'"
    assert notes[1] == "{'Authorization': [redacted], 'accept': 'json'}"


def test_configured_names_are_redacted_too(tmp_path: Path) -> None:
    with recording(redactor=Redactor(extra_name_patterns=["ssn"])) as rec:
        app = import_source(tmp_path, APP)
        app.take_many(ssn="123-45-6789", password="pw")

        assert argument(rec.span("take_many"), "named") == "{'ssn': [redacted], 'password': [redacted]}"


# --------------------------------------------------------------------------- internal failures


class ExplodingRedactor(Redactor):
    def is_sensitive_name(self, name: str) -> bool:
        raise RuntimeError("redactor bug")


def test_internal_error_leaves_the_call_running_normally(tmp_path: Path) -> None:
    with recording(redactor=ExplodingRedactor()) as rec:
        app = import_source(tmp_path, APP)
        errors = autotrace.stats().internal_errors
        outside = trace.get_current_span()

        assert app.store("o-1") == "o-1"
        with rec.tracer.start_as_current_span("request") as request:
            assert app.handle("o-2") == "o-2"
            assert trace.get_current_span() is request

        assert trace.get_current_span() is outside
        assert autotrace.stats().internal_errors == errors + 4
        assert [s.name for s in rec.spans()] == ["request"]


def test_recursion_reaches_the_same_depth_as_without_execscope(app: ModuleType, tmp_path: Path) -> None:
    """No wrapper frame is added per call: a recursion that fits the limit without execscope
    still fits (with a wrapper it would need twice the frames)."""
    plain = import_source(tmp_path, APP, rewritten=False)
    frames = 0
    frame = sys._getframe()
    while frame is not None:
        frames += 1
        frame = frame.f_back  # type: ignore[assignment]
    depth = sys.getrecursionlimit() - frames - 30

    assert plain.down(depth) == depth
    assert app.down(depth) == depth


def test_runaway_recursion_fails_as_without_execscope(rec: Recording, app: ModuleType) -> None:
    outside = trace.get_current_span()

    with pytest.raises(RecursionError):
        app.forever(0)

    assert trace.get_current_span() is outside
    rec.clear()
    assert app.handle("after") == "after"
    assert sorted(s.name for s in rec.spans()) == ["handle", "store", "validate"]


# --------------------------------------------------------------------------- the recorder's queue


@contextmanager
def recording_into(recorder: Recorder) -> Iterator[None]:
    """Modules imported inside the block submit their calls to ``recorder``."""
    previous = _runtime.current_config()
    _runtime.configure(_runtime.RuntimeConfig(recorder=recorder, active=True))
    try:
        yield
    finally:
        _runtime.configure(previous)


def test_full_queue_drops_and_counts_new_calls(tmp_path: Path) -> None:
    recorder = Recorder(max_pending=3, batch=1000, interval=60)
    with recording_into(recorder):
        app = import_source(tmp_path, APP)
    received: list[ReadableSpan] = []
    try:
        assert [app.store(i) for i in range(10)] == list(range(10))

        assert recorder.pending() == 3
        assert recorder.stats.submitted == 3
        assert recorder.stats.dropped_queue_full == 7

        recorder.start(received.append, Resource.get_empty())
        assert recorder.flush() == 3
        assert [attr(s, "execscope.args.order") for s in received] == ["0", "1", "2"]

        app.store(10)  # room again once the queue drained
        recorder.flush()
        assert len(received) == 4
        assert recorder.stats.dropped_queue_full == 7
    finally:
        recorder.shutdown()


def test_calls_without_a_sink_are_counted_as_dropped(tmp_path: Path) -> None:
    recorder = Recorder(batch=1000, interval=60)
    with recording_into(recorder):
        app = import_source(tmp_path, APP)

    app.handle("o-1")

    assert recorder.flush() == 0
    assert recorder.stats.submitted == 3
    assert recorder.stats.dropped_no_sink == 3


def test_flush_waits_for_calls_the_worker_is_handing_over(tmp_path: Path) -> None:
    """``flush()`` is a barrier: when it returns, every call recorded before it reached the
    sink, including one the background worker had already taken from the queue."""
    recorder = Recorder(batch=1, interval=60)  # the worker wakes at the first call
    received: list[ReadableSpan] = []
    worker_busy = threading.Event()
    caller = threading.current_thread()

    def slow_sink(span: ReadableSpan) -> None:
        if threading.current_thread() is not caller:
            worker_busy.set()
            time.sleep(0.05)
        received.append(span)

    with recording_into(recorder):
        app = import_source(tmp_path, APP)
    recorder.start(slow_sink, Resource.get_empty())
    try:
        app.store(1)
        assert worker_busy.wait(5)
        recorder.flush()
        assert len(received) == 1
    finally:
        recorder.shutdown()


# --------------------------------------------------------------------------- threads


def test_calls_from_many_threads_are_all_recorded_in_consistent_traces(
    rec: Recording, app: ModuleType
) -> None:
    threads, rounds = 8, 100
    start = threading.Barrier(threads)
    failures: list[BaseException] = []

    def run(worker: int) -> None:
        try:
            start.wait()
            for i in range(rounds):
                assert app.handle((worker, i)) == (worker, i)
        except BaseException as error:
            failures.append(error)

    pool = [threading.Thread(target=run, args=(n,)) for n in range(threads)]
    for thread in pool:
        thread.start()
    for thread in pool:
        thread.join()

    assert failures == []
    spans = rec.spans()
    assert len(spans) == threads * rounds * 3
    traces: dict[int, list[ReadableSpan]] = {}
    for span in spans:
        assert span.context is not None
        traces.setdefault(span.context.trace_id, []).append(span)
    assert len(traces) == threads * rounds
    for members in traces.values():
        by_name = {s.name: s for s in members}
        assert sorted(by_name) == ["handle", "store", "validate"]
        handle = by_name["handle"]
        assert handle.parent is None
        order = argument(handle, "order")
        for child in (by_name["validate"], by_name["store"]):
            assert child.parent is not None and handle.context is not None
            assert child.parent.span_id == handle.context.span_id
            assert argument(child, "order") == order


def test_the_recorders_cpu_is_counted_while_it_works_through_a_backlog(tmp_path: Path) -> None:
    """The governor reads ``cpu_s`` once a second: under steady load the recorder's queue does not
    empty for seconds, and its cost must show while it is being paid, not once it is done."""
    recorder = Recorder(batch=50, interval=60)

    def costly_sink(span: ReadableSpan) -> None:
        began = time.thread_time()
        while time.thread_time() - began < 0.0005:  # 0.5 ms of CPU per span: 1 s for the backlog
            pass

    with recording_into(recorder):
        app = import_source(tmp_path, APP)
    try:
        for order in range(2_000):
            app.store(order)
        recorder.start(costly_sink, Resource.get_empty())
        deadline = time.monotonic() + 30
        while recorder.cpu_s < 0.05 and time.monotonic() < deadline:
            time.sleep(0.002)
        assert recorder.cpu_s >= 0.05
        assert recorder.pending() > 0  # counted before the backlog was worked through
    finally:
        recorder.shutdown()
