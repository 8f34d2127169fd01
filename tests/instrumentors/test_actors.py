"""User actor classes under ``trace_actor``: a span per message, with the message, the reply and the
actor's state diff, and the class behaving exactly as it did untraced.

Each test defines its own classes, so tracing one never leaks into another test.
"""

from __future__ import annotations

import asyncio
import inspect
import json
import traceback
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from instrumentor_helpers import Traced, correlation_of, traced
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.trace import SpanKind, StatusCode

import execscope.instrumentors.actors
from execscope.attributes import ARGS_PREFIX, MESSAGE, REPLY, STATE_DIFF
from execscope.instrumentors import _capture, _failsafe
from execscope.instrumentors.actors import trace_actor, untrace_actor
from execscope.processors import SHEDDING, Level

HERE = __file__


@pytest.fixture
def t(tmp_path: Path) -> Iterator[Traced]:
    with traced(tmp_path) as recording:
        yield recording


def attributes(span: ReadableSpan) -> dict[str, Any]:
    return dict(span.attributes or {})


def state_diff(span: ReadableSpan) -> dict[str, Any]:
    document = json.loads(attributes(span)[STATE_DIFF])
    assert document["v"] == 1
    return dict(document)


def make_counter() -> type[Any]:
    class Counter:
        """Adds each message to its count."""

        def __init__(self) -> None:
            self.count = 0

        def receive(self, amount: int) -> int:
            """Adds ``amount``; replies with the new count."""
            self.count += amount
            return self.count

    return Counter


# --- what a span carries -----------------------------------------------------------------------


def test_each_message_is_a_span_with_the_message_the_reply_and_the_state_diff(t: Traced) -> None:
    counter_class = trace_actor(make_counter(), tracer_provider=t.provider)
    counter = counter_class()
    with t.provider.get_tracer("tests").start_as_current_span("caller"):
        assert counter.receive(2) == 2

    span, caller = t.one("Counter receive"), t.one("caller")
    assert span.kind is SpanKind.INTERNAL
    assert span.parent is not None and span.parent.span_id == caller.context.span_id
    assert correlation_of(span) == correlation_of(caller)
    assert attributes(span)[MESSAGE] == "2"
    assert attributes(span)[REPLY] == "2"
    assert state_diff(span) == {"v": 1, "changed": {"count": ["0", "2"]}}
    assert attributes(span)["code.function.name"].endswith("Counter.receive")
    assert attributes(span)["code.file.path"] == HERE


def test_arguments_after_the_message_are_recorded_by_name(t: Traced) -> None:
    @trace_actor(tracer_provider=t.provider)
    class Inbox:
        def __init__(self) -> None:
            self.last_sender: str | None = None

        def handle(self, message: str, sender: str) -> None:
            self.last_sender = sender

    Inbox().handle("hello", sender="alice")

    span = t.one("Inbox handle")
    assert attributes(span)[MESSAGE] == "'hello'"
    assert attributes(span)[ARGS_PREFIX + "sender"] == "'alice'"
    assert attributes(span)[REPLY] == "None"
    assert state_diff(span)["changed"] == {"last_sender": ["None", "'alice'"]}


def test_an_exception_is_recorded_and_re_raised_unchanged(t: Traced) -> None:
    class Refuser:
        def __init__(self) -> None:
            self.attempts = 0
            self.raised: ValueError | None = None

        def receive(self, message: str) -> None:
            self.attempts += 1
            self.raised = ValueError(f"cannot handle {message}")
            raise self.raised

    trace_actor(Refuser, tracer_provider=t.provider)
    refuser = Refuser()
    with pytest.raises(ValueError, match="cannot handle x") as caught:
        refuser.receive("x")

    assert caught.value is refuser.raised
    innermost = traceback.extract_tb(caught.value.__traceback__)[-1]
    assert (innermost.filename, innermost.name, innermost.line) == (HERE, "receive", "raise self.raised")
    span = t.one("Refuser receive")
    assert span.status.status_code is StatusCode.ERROR
    assert [event.name for event in span.events] == ["exception"]
    assert (span.events[0].attributes or {})["exception.type"] == "ValueError"
    # What the handler changed before it failed is part of the story.
    assert state_diff(span)["changed"]["attempts"] == ["0", "1"]
    assert REPLY not in attributes(span)


def test_an_async_message_method_gets_a_span_that_covers_the_await(t: Traced) -> None:
    tracer = t.provider.get_tracer("tests")

    @trace_actor(tracer_provider=t.provider)
    class Accumulator:
        def __init__(self) -> None:
            self.total = 0

        async def receive(self, amount: int) -> int:
            await asyncio.sleep(0)  # gives the loop a turn: the span must stay open across it
            with tracer.start_as_current_span("inside"):
                self.total += amount
            return self.total

    accumulator = Accumulator()
    assert inspect.iscoroutinefunction(Accumulator.receive)
    assert asyncio.run(accumulator.receive(3)) == 3

    span, inside = t.one("Accumulator receive"), t.one("inside")
    assert inside.parent is not None and inside.parent.span_id == span.context.span_id
    assert span.start_time is not None and inside.start_time is not None
    assert span.end_time is not None and inside.end_time is not None
    assert span.start_time <= inside.start_time and inside.end_time <= span.end_time
    assert attributes(span)[REPLY] == "3"
    assert state_diff(span)["changed"] == {"total": ["0", "3"]}


def test_an_async_call_that_does_not_fit_the_signature_fails_at_the_call_as_untraced(t: Traced) -> None:
    @trace_actor(tracer_provider=t.provider)
    class Waiter:
        async def receive(self, message: str) -> str:
            return message

    with pytest.raises(TypeError):
        Waiter().receive()  # type: ignore[call-arg, unused-coroutine]  # raises before a coroutine exists
    assert t.named("Waiter receive") == []


def test_sensitive_state_and_message_fields_are_redacted(t: Traced) -> None:
    @trace_actor(tracer_provider=t.provider)
    class Account:
        def __init__(self) -> None:
            self.password = "old-secret"
            self.logins = 0

        def receive(self, message: dict[str, str]) -> bool:
            self.password = message["password"]
            self.logins += 1
            return True

    Account().receive({"user": "ann", "password": "new-secret"})

    span = t.one("Account receive")
    recorded = " ".join(str(value) for value in attributes(span).values())
    assert "old-secret" not in recorded and "new-secret" not in recorded
    assert "'user': 'ann'" in attributes(span)[MESSAGE]
    # A redacted field renders the same before and after, so its change is not even visible.
    assert state_diff(span)["changed"] == {"logins": ["0", "1"]}


def test_the_load_governor_sheds_values_then_state_diffs(t: Traced) -> None:
    counter = trace_actor(make_counter(), tracer_provider=t.provider)()
    # One trace, ended back at NORMAL: the tail sampler, which also sheds whole traces under
    # load, then keeps it, and this test sees what the message spans themselves left out.
    with t.provider.get_tracer("tests").start_as_current_span("under load"):
        try:
            for level in (Level.NORMAL, Level.DEGRADED, Level.CRITICAL):
                SHEDDING.apply(level)
                counter.receive(1)
        finally:
            SHEDDING.apply(Level.NORMAL)

    recorded = [
        sorted(key for key in attributes(span) if key in (MESSAGE, REPLY, STATE_DIFF))
        for span in t.named("Counter receive")
    ]
    assert recorded == [[MESSAGE, REPLY, STATE_DIFF], [MESSAGE, REPLY], []]


def test_a_recording_failure_never_reaches_the_program(t: Traced, monkeypatch: pytest.MonkeyPatch) -> None:
    def broken(*args: object, **kwargs: object) -> dict[str, str]:
        raise RuntimeError("execscope bug")

    monkeypatch.setattr(_failsafe, "RAISE_INTERNAL_ERRORS", False)  # as in production
    monkeypatch.setattr(_capture, "arguments_attributes", broken)
    counter = trace_actor(make_counter(), tracer_provider=t.provider)()
    assert counter.receive(2) == 2

    span = t.one("Counter receive")
    assert MESSAGE not in attributes(span) and REPLY not in attributes(span)
    assert state_diff(span)["changed"] == {"count": ["0", "2"]}  # what could be recorded, is


# --- which method, and when it is refused ------------------------------------------------------


def test_the_message_method_is_the_first_of_receive_on_receive_and_handle(t: Traced) -> None:
    class Both:
        def handle(self, message: object) -> str:
            return "handle"

        def on_receive(self, message: object) -> str:
            return "on_receive"

    class Base:
        def receive(self, message: object) -> str:
            return "inherited"

    class Derived(Base):
        pass

    for cls in (Both, Derived):
        trace_actor(cls, tracer_provider=t.provider)
    assert Both().on_receive(1) == "on_receive"
    assert Derived().receive(1) == "inherited"
    assert Base().receive(1) == "inherited"  # the base class itself was not traced

    assert sorted(span.name for span in t.spans()) == ["Both on_receive", "Derived receive"]


def test_a_method_can_be_named_explicitly(t: Traced) -> None:
    @trace_actor(method="process", tracer_provider=t.provider)
    class Worker:
        def receive(self, message: object) -> None:
            raise AssertionError("not the message method")

        def process(self, job: str) -> str:
            return job.upper()

    assert Worker().process("job") == "JOB"
    assert attributes(t.one("Worker process"))[MESSAGE] == "'job'"


def test_a_class_without_a_message_method_is_refused_when_it_is_decorated() -> None:
    class Silent:
        receive = "not a method"

    with pytest.raises(ValueError, match=r"Silent has no message method.*receive, on_receive, handle"):
        trace_actor(Silent)
    with pytest.raises(ValueError, match=r"Silent has no method 'process'"):
        trace_actor(Silent, method="process")
    with pytest.raises(TypeError, match="expected a class"):
        trace_actor(Silent())  # type: ignore[call-overload]


def test_the_public_surface_is_trace_actor_and_untrace_actor() -> None:
    assert sorted(execscope.instrumentors.actors.__all__) == ["trace_actor", "untrace_actor"]


# --- the class is unchanged --------------------------------------------------------------------


def test_the_traced_method_keeps_its_signature_name_and_doc(t: Traced) -> None:
    counter_class = make_counter()
    original = counter_class.receive
    trace_actor(counter_class, tracer_provider=t.provider)

    assert counter_class.receive is not original  # it is wrapped...
    for attribute in ("__name__", "__qualname__", "__doc__", "__module__"):
        assert getattr(counter_class.receive, attribute) == getattr(original, attribute)
    assert inspect.signature(counter_class.receive) == inspect.signature(original)
    assert inspect.signature(counter_class().receive) == inspect.signature(original.__get__(object()))
    assert [counter_class().receive(n) for n in (1, 5)] == [1, 5]  # ...and answers the same


def test_tracing_twice_or_tracing_a_traced_subclass_changes_nothing(t: Traced) -> None:
    counter_class = make_counter()
    assert trace_actor(counter_class, tracer_provider=t.provider) is counter_class
    wrapped = counter_class.__dict__["receive"]
    trace_actor(counter_class, tracer_provider=t.provider)
    sub_class = type("SubCounter", (counter_class,), {})
    trace_actor(sub_class, tracer_provider=t.provider)

    assert counter_class.__dict__["receive"] is wrapped
    assert "receive" not in sub_class.__dict__
    counter_class().receive(1)
    sub_class().receive(1)
    assert [span.name for span in t.spans()] == ["Counter receive", "Counter receive"]


def test_untrace_restores_the_original_method(t: Traced) -> None:
    counter_class = make_counter()
    original = counter_class.__dict__["receive"]

    class Derived(counter_class):  # type: ignore[misc, valid-type]
        pass

    for cls in (counter_class, Derived):
        trace_actor(cls, tracer_provider=t.provider)
    for cls in (counter_class, Derived):
        untrace_actor(cls)
    untrace_actor(counter_class)  # again: nothing left to undo

    assert counter_class.__dict__["receive"] is original
    assert "receive" not in Derived.__dict__  # no shadowing copy of the inherited method is left
    assert Derived().receive(4) == 4
    assert t.spans() == []
