"""pykka actors under the PykkaInstrumentor: every handled message is a span in the actor's thread,
a child of the span that sent it, with the message, the reply (or a proxy call's arguments and
return value) and the actor's state diff; pykka behaves exactly as it does untraced.

Real ``ThreadingActor``s; every test waits on replies (``ask``, ``Future.get``) with timeouts, and
every actor is stopped at teardown.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from unittest.mock import ANY

import pykka
import pykka._ref
import pytest
from instrumentor_helpers import Traced, correlation_of, traced
from opentelemetry.instrumentation.threading import ThreadingInstrumentor
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.trace import SpanKind, StatusCode
from pykka._envelope import Envelope

import execscope.instrumentors.pykka
from execscope.attributes import ARGS_PREFIX, MESSAGE, REPLY, RETURN_VALUE, STATE_DIFF
from execscope.instrumentors import INSTRUMENTORS, _capture, _failsafe
from execscope.instrumentors.actors import trace_actor, untrace_actor
from execscope.instrumentors.pykka import PykkaInstrumentor

HERE = __file__
TIMEOUT = 10.0


class Counter(pykka.ThreadingActor):
    """Counts what it is told; plain messages are dicts, methods are called through a proxy."""

    def __init__(self) -> None:
        super().__init__()
        self.count = 0
        self.password = "old-secret"
        self.threads: list[str] = []
        self.failure: Exception | None = None

    def on_receive(self, message: Any) -> Any:
        self.threads.append(threading.current_thread().name)
        if message == "echo-identity":
            return message
        if isinstance(message, dict) and "echo" in message:
            return message["echo"]
        if message == "fail":
            self.failure = RuntimeError("the counter broke")
            raise self.failure
        self.count += message["add"]
        return self.count

    def add(self, amount: int, label: str = "") -> int:
        self.count += amount
        return self.count

    def change_password(self, password: str) -> None:
        self.password = password


@pytest.fixture
def t(tmp_path: Path) -> Iterator[Traced]:
    with traced(tmp_path) as recording:
        instrumentor = PykkaInstrumentor()
        instrumentor.instrument(tracer_provider=recording.provider)
        try:
            yield recording
        finally:
            pykka.ActorRegistry.stop_all(block=True, timeout=TIMEOUT)
            instrumentor.uninstrument()


def attributes(span: ReadableSpan) -> dict[str, Any]:
    return dict(span.attributes or {})


def state_diff(span: ReadableSpan) -> dict[str, Any]:
    document = json.loads(attributes(span)[STATE_DIFF])
    assert document["v"] == 1
    return dict(document)


def assert_child_of(span: ReadableSpan, parent: ReadableSpan) -> None:
    assert span.parent is not None and span.parent.span_id == parent.context.span_id
    assert span.context.trace_id == parent.context.trace_id
    assert correlation_of(span) == correlation_of(parent)


# --- plain messages: tell and ask --------------------------------------------------------------


def test_an_asked_message_is_a_child_span_with_message_reply_and_state_diff(t: Traced) -> None:
    ref = Counter.start()
    with t.provider.get_tracer("tests").start_as_current_span("sender"):
        assert ref.ask({"add": 2}, timeout=TIMEOUT) == 2

    span, sender = t.one("Counter on_receive"), t.one("sender")
    assert_child_of(span, sender)
    assert span.kind is SpanKind.CONSUMER
    assert attributes(span)[MESSAGE] == "{'add': 2}"
    assert attributes(span)[REPLY] == "2"
    # The actor's own state only: not the inbox, stop event and ref pykka keeps on it.
    assert state_diff(span) == {"v": 1, "changed": {"count": ["0", "2"], "threads": ["[]", ANY]}}
    assert attributes(span)["code.function.name"].endswith("Counter.on_receive")
    assert attributes(span)["code.file.path"] == HERE
    # It really was handled elsewhere: the actor's own thread.
    assert threading.current_thread().name not in ref.proxy().threads.get(timeout=TIMEOUT)


def test_a_told_message_is_a_child_of_the_sender_even_after_the_sender_moved_on(t: Traced) -> None:
    ref = Counter.start()
    with t.provider.get_tracer("tests").start_as_current_span("sender"):
        ref.tell({"add": 5})
    # The inbox is first in, first out: once this reply is back, the told message was handled.
    assert ref.ask({"echo": "done"}, timeout=TIMEOUT) == "done"

    told = next(s for s in t.named("Counter on_receive") if attributes(s)[MESSAGE] == "{'add': 5}")
    assert_child_of(told, t.one("sender"))
    assert state_diff(told)["changed"]["count"] == ["0", "5"]


def test_the_parent_is_the_sender_not_whoever_started_the_actor(t: Traced) -> None:
    # With contrib's threading instrumentation (loaded by `execscope run`) the actor's thread
    # runs in the context of the span that started it; a message still belongs to its sender.
    threading_instrumentor = ThreadingInstrumentor()
    threading_instrumentor.instrument()
    try:
        tracer = t.provider.get_tracer("tests")
        with tracer.start_as_current_span("starter"):
            ref = Counter.start()
        ref.ask({"add": 1}, timeout=TIMEOUT)  # sent outside any span
        with tracer.start_as_current_span("second sender"):
            ref.ask({"add": 1}, timeout=TIMEOUT)
    finally:
        threading_instrumentor.uninstrument()

    untraced, traced_ = t.named("Counter on_receive")
    assert untraced.parent is None  # a trace of its own, as untraced code would start
    assert untraced.context.trace_id != t.one("starter").context.trace_id
    assert_child_of(traced_, t.one("second sender"))


def test_the_actor_receives_the_very_message_and_the_caller_the_very_reply(t: Traced) -> None:
    ref = Counter.start()
    message = {"echo": object()}
    assert ref.ask(message, timeout=TIMEOUT) is message["echo"]
    assert ref.ask("echo-identity", timeout=TIMEOUT) == "echo-identity"
    future = ref.ask({"add": 3}, block=False)
    assert isinstance(future, pykka.Future)
    assert future.get(timeout=TIMEOUT) == 3


def test_a_failing_ask_gives_the_caller_the_same_exception_and_the_span_an_error(t: Traced) -> None:
    ref = Counter.start()
    with (
        t.provider.get_tracer("tests").start_as_current_span("sender"),
        pytest.raises(RuntimeError, match="the counter broke") as caught,
    ):
        ref.ask("fail", timeout=TIMEOUT)

    assert caught.value is ref.proxy().failure.get(timeout=TIMEOUT)
    span = t.one("Counter on_receive")
    assert_child_of(span, t.one("sender"))
    assert span.status.status_code is StatusCode.ERROR
    assert [event.name for event in span.events] == ["exception"]
    assert (span.events[0].attributes or {})["exception.type"] == "RuntimeError"
    assert ref.is_alive()  # pykka keeps an actor whose ask failed, as untraced


# --- proxy calls -------------------------------------------------------------------------------


def test_a_proxy_call_is_a_span_named_by_the_method_with_arguments_and_return(t: Traced) -> None:
    proxy = Counter.start().proxy()
    with t.provider.get_tracer("tests").start_as_current_span("sender"):
        assert proxy.add(3, label="x").get(timeout=TIMEOUT) == 3

    span = t.one("Counter.add")
    assert_child_of(span, t.one("sender"))
    assert span.kind is SpanKind.CONSUMER
    assert attributes(span)[ARGS_PREFIX + "amount"] == "3"
    assert attributes(span)[ARGS_PREFIX + "label"] == "'x'"
    assert attributes(span)[RETURN_VALUE] == "3"
    assert MESSAGE not in attributes(span)  # pykka's ProxyCall is plumbing, not the user's message
    assert state_diff(span)["changed"]["count"] == ["0", "3"]
    assert attributes(span)["code.function.name"].endswith("Counter.add")
    assert attributes(span)["code.file.path"] == HERE


def test_proxy_attribute_reads_and_writes_are_spans_too(t: Traced) -> None:
    proxy = Counter.start().proxy()
    proxy.count = 7  # blocks until set
    assert proxy.count.get(timeout=TIMEOUT) == 7

    written, read = t.one("Counter set count"), t.one("Counter get count")
    assert attributes(written)[ARGS_PREFIX + "value"] == "7"
    assert state_diff(written)["changed"]["count"] == ["0", "7"]
    assert attributes(read)[RETURN_VALUE] == "7"


def test_sensitive_arguments_and_state_are_redacted(t: Traced) -> None:
    proxy = Counter.start().proxy()
    proxy.change_password("new-secret").get(timeout=TIMEOUT)

    span = t.one("Counter.change_password")
    recorded = " ".join(str(value) for value in attributes(span).values())
    assert "old-secret" not in recorded and "new-secret" not in recorded
    assert attributes(span)[ARGS_PREFIX + "password"] == "[redacted]"


# --- what gets no span, and working with trace_actor ---------------------------------------------


def test_starting_and_stopping_an_actor_makes_no_span(t: Traced) -> None:
    ref = Counter.start()
    ref.ask({"add": 1}, timeout=TIMEOUT)
    assert ref.stop(timeout=TIMEOUT) is True
    assert [span.name for span in t.spans()] == ["Counter on_receive"]


def test_an_actor_traced_with_trace_actor_gets_one_span_still_parented_by_its_sender(t: Traced) -> None:
    class Echo(pykka.ThreadingActor):
        def on_receive(self, message: Any) -> Any:
            self.last = message
            return message

    trace_actor(Echo, tracer_provider=t.provider)
    try:
        ref = Echo.start()
        with t.provider.get_tracer("tests").start_as_current_span("sender"):
            assert ref.ask("hi", timeout=TIMEOUT) == "hi"
    finally:
        untrace_actor(Echo)

    assert sorted(span.name for span in t.spans()) == ["Echo on_receive", "sender"]
    span = t.one("Echo on_receive")
    assert span.kind is SpanKind.INTERNAL  # trace_actor's span, not a second one
    assert_child_of(span, t.one("sender"))
    assert state_diff(span) == {"v": 1, "added": {"last": "'hi'"}}  # without pykka's own fields


# --- uninstrument ------------------------------------------------------------------------------


def test_uninstrument_restores_pykka_and_stops_recording(t: Traced) -> None:
    original_handle_receive = vars(pykka.Actor)["_handle_receive"].__wrapped__
    PykkaInstrumentor().uninstrument()

    assert pykka._ref.Envelope is Envelope  # type: ignore[attr-defined]  # pykka's internal name
    assert vars(pykka.Actor)["_handle_receive"] is original_handle_receive
    ref = Counter.start()
    with t.provider.get_tracer("tests").start_as_current_span("sender"):
        assert ref.ask({"add": 2}, timeout=TIMEOUT) == 2
        assert ref.proxy().add(1).get(timeout=TIMEOUT) == 3
    assert [span.name for span in t.spans()] == ["sender"]

    PykkaInstrumentor().instrument(tracer_provider=t.provider)  # and back, for the fixture's teardown
    assert ref.ask({"add": 1}, timeout=TIMEOUT) == 4
    assert len(t.named("Counter on_receive")) == 1


# --- failing open, and how the distro finds it -------------------------------------------------


def test_a_recording_failure_never_reaches_the_actor_or_its_caller(
    t: Traced, monkeypatch: pytest.MonkeyPatch
) -> None:
    def broken(*args: object, **kwargs: object) -> dict[str, str]:
        raise RuntimeError("execscope bug")

    monkeypatch.setattr(_failsafe, "RAISE_INTERNAL_ERRORS", False)  # as in production
    monkeypatch.setattr(_capture, "arguments_attributes", broken)
    ref = Counter.start()
    assert ref.ask({"add": 2}, timeout=TIMEOUT) == 2
    assert ref.proxy().add(1).get(timeout=TIMEOUT) == 3

    span = t.one("Counter on_receive")
    assert MESSAGE not in attributes(span) and REPLY not in attributes(span)
    assert state_diff(span)["changed"]["count"] == ["0", "2"]  # what could be recorded, is


def test_the_public_surface_is_the_instrumentor_alone() -> None:
    assert execscope.instrumentors.pykka.__all__ == ["PykkaInstrumentor"]


def test_the_distro_finds_the_instrumentor_under_its_own_name() -> None:
    (entry,) = [entry for entry in INSTRUMENTORS if entry.name == "execscope-pykka"]
    instrumentor = entry.load()
    assert isinstance(instrumentor, PykkaInstrumentor)
    assert list(instrumentor.instrumentation_dependencies()) == ["pykka >= 4, < 5"]
