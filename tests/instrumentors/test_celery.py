"""The Celery instrumentor: what contrib's publish and run spans carry with it, and that a task's
spans in a real worker continue the publisher's trace and correlation id.

One Celery worker (prefork, one child) under ``execscope run`` serves the whole module from a
queue of its own and exports over OTLP to a test receiver. Each test publishes from a fresh
in-process pipeline under a span of its own, and finds its worker spans by that span's trace id.
The last tests run tasks eagerly (``apply()``), in process, and need no broker.
"""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import uuid
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import celery_app_for_tests as app
import pytest
from celery import signals
from celery.exceptions import TimeoutError as ResultTimeout
from celery.result import AsyncResult
from instrumentor_helpers import Traced, child_environment, correlation_of, traced
from opentelemetry import propagate
from opentelemetry.instrumentation.celery import CeleryInstrumentor as ContribCeleryInstrumentor
from opentelemetry.propagators.composite import CompositePropagator
from opentelemetry.proto.trace.v1.trace_pb2 import Span, Status
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator
from otlp_receiver import Receiver, attributes_of

from conftest import BIN, require_service
from execscope.attributes import ARGS_PREFIX, CORRELATION_ID, RETURN_VALUE
from execscope.instrumentors import _failsafe
from execscope.instrumentors.celery import CeleryInstrumentor, _receivers
from execscope.processors import CorrelationPropagator
from execscope.processors._governor import SHEDDING

HERE = Path(__file__).resolve().parent
RESULT_TIMEOUT = 30.0
SPANS_TIMEOUT = 20.0
RETRIES = "celery.retries"
MESSAGE_ID = "messaging.message.id"


def publish_name(task: Any) -> str:
    return f"apply_async/{task.name}"


def run_name(task: Any) -> str:
    return f"run/{task.name}"


# --------------------------------------------------------------------------- the worker


@dataclass
class Worker:
    queue: str
    process: subprocess.Popen[bytes]
    log: Path

    def result(self, sent: AsyncResult, timeout: float = RESULT_TIMEOUT) -> Any:
        """The task's return value, or the exception it raised; fails the test with the worker's log."""
        try:
            return sent.get(timeout=timeout, propagate=False)
        except ResultTimeout:
            state = "running" if self.process.poll() is None else f"exited with {self.process.returncode}"
            log = self.log.read_text(errors="replace")[-3000:]
            raise AssertionError(
                f"no result within {timeout}s; the worker is {state}; its log:\n{log}"
            ) from None


@pytest.fixture(scope="module")
def receiver() -> Iterator[Receiver]:
    receiver = Receiver().start()
    yield receiver
    receiver.stop()


@pytest.fixture(scope="module")
def worker(receiver: Receiver, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Worker]:
    require_service("RabbitMQ", 5672)
    require_service("Redis", 6379)
    tmp_path = tmp_path_factory.mktemp("celery-worker")
    # A queue of this run only: parallel runs on one broker never take each other's tasks.
    queue = f"execscope-tests-{uuid.uuid4().hex}"
    log = tmp_path / "worker.log"
    command = [
        str(BIN / "execscope"),
        "run",
        "--",
        str(BIN / "celery"),
        "-A",
        app.__name__,
        "worker",
        "--pool=prefork",
        "--concurrency=1",
        "-Q",
        queue,
        "--without-gossip",
        "--without-mingle",
        "--without-heartbeat",
        "-l",
        "warning",
    ]
    with log.open("wb") as output:
        process = subprocess.Popen(
            command,
            cwd=HERE,  # `execscope run` makes its working directory importable: the app module
            env=child_environment(receiver.endpoint, tmp_path),
            stdout=output,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # its pool children can be ended with it, by group
        )
    try:
        yield Worker(queue, process, log)
    finally:
        _stop(process)
        with app.app.connection_for_write() as connection:
            channel = connection.default_channel
            channel.queue_delete(queue)
            channel.exchange_delete(queue)
        app.app.close()
    # The worker's internal errors are logged, not raised (it runs without the tests' flag).
    assert "execscope: internal error" not in log.read_text(errors="replace")


def _stop(process: subprocess.Popen[bytes]) -> None:
    process.terminate()  # the worker's warm shutdown: its pool children exit with it
    try:
        process.wait(timeout=20)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait(timeout=10)


# --------------------------------------------------------------------------- the publisher


@pytest.fixture
def propagation() -> Iterator[None]:
    """The propagators execscope installs: W3C trace context plus the correlation propagator."""
    previous = propagate.get_global_textmap()
    propagate.set_global_textmap(
        CompositePropagator([TraceContextTextMapPropagator(), CorrelationPropagator()])
    )
    yield
    propagate.set_global_textmap(previous)


@pytest.fixture
def publisher(tmp_path: Path, propagation: None) -> Iterator[Traced]:
    """This process instrumented like a program under ``execscope run``: contrib first, then ours."""
    with traced(tmp_path) as tracing:
        contrib = ContribCeleryInstrumentor()
        contrib.instrument(tracer_provider=tracing.provider)
        ours = CeleryInstrumentor()
        ours.instrument(tracer_provider=tracing.provider)
        try:
            yield tracing
        finally:
            for instrumentor in (ours, contrib):
                if instrumentor.is_instrumented_by_opentelemetry:
                    instrumentor.uninstrument()


@pytest.fixture(autouse=True)
def no_receiver_errors(caplog: pytest.LogCaptureFixture) -> Iterator[None]:
    """Celery logs a receiver's exception instead of raising it: such a log fails the test."""
    yield
    records = [*caplog.get_records("setup"), *caplog.get_records("call")]
    raised = [r.getMessage() for r in records if r.name == "celery.utils.dispatch.signal"]
    assert not raised, raised


def our_receivers() -> list[str]:
    """The dispatch ids of execscope's receivers connected to Celery's signals."""
    found: list[str] = []
    for name in ("before_task_publish", "task_prerun", "task_success", "task_failure", "task_retry"):
        keys = [key for (key, _sender), _receiver in getattr(signals, name).receivers]
        found.extend(key for key in keys if isinstance(key, str) and key.startswith("execscope."))
    return found


def args_of(attributes: dict[str, Any]) -> dict[str, Any]:
    return {key: value for key, value in attributes.items() if key.startswith(ARGS_PREFIX)}


def worker_spans(receiver: Receiver, trace_id: int, done: Callable[[list[Span]], bool]) -> list[Span]:
    """The worker's spans of the trace ``trace_id``, once ``done`` says the expected ones arrived."""

    def of_trace(spans: Sequence[Span]) -> list[Span]:
        return [span for span in spans if int.from_bytes(span.trace_id, "big") == trace_id]

    return of_trace(receiver.wait_until(lambda spans: done(of_trace(spans)), SPANS_TIMEOUT))


def runs_of(spans: Sequence[Span], task: Any, task_id: str) -> list[Span]:
    """The run spans of one task (its attempts), oldest first."""
    runs = [
        span
        for span in spans
        if span.name == run_name(task) and attributes_of(span).get(MESSAGE_ID) == task_id
    ]
    return sorted(runs, key=lambda span: span.start_time_unix_nano)


def ancestors(span: Span, spans: Sequence[Span]) -> list[Span]:
    by_id = {bytes(candidate.span_id): candidate for candidate in spans}
    found: list[Span] = []
    while (parent := by_id.get(bytes(span.parent_span_id))) is not None:
        found.append(parent)
        span = parent
    return found


def publish(
    tracing: Traced, task: Any, worker: Worker, *args: Any, **kwargs: Any
) -> tuple[Any, str, ReadableSpan]:
    """Sends ``task`` under a span of its own and waits for it: (its result, its id, that span)."""
    with tracing.provider.get_tracer(__name__).start_as_current_span(f"send {task.name}") as sender:
        sent = task.apply_async(args, kwargs, queue=worker.queue)
    assert isinstance(sender, ReadableSpan)
    return worker.result(sent), sent.id, sender


# --------------------------------------------------------------------------- with a real worker


def test_the_run_span_continues_the_publishers_trace_with_arguments_and_result(
    publisher: Traced, worker: Worker, receiver: Receiver
) -> None:
    result, task_id, sender = publish(publisher, app.add, worker, 2, 3, label="total")

    assert result == {"total": 5}
    published = publisher.one(publish_name(app.add))
    assert args_of(dict(published.attributes or {})) == {
        "execscope.args.x": "2",
        "execscope.args.y": "3",
        "execscope.args.label": "'total'",
    }
    spans = worker_spans(
        receiver, sender.context.trace_id, lambda spans: bool(runs_of(spans, app.add, task_id))
    )
    (run,) = runs_of(spans, app.add, task_id)
    attributes = attributes_of(run)
    assert int.from_bytes(run.trace_id, "big") == published.context.trace_id == sender.context.trace_id
    assert int.from_bytes(run.parent_span_id, "big") == published.context.span_id
    assert attributes[CORRELATION_ID] == correlation_of(published) == correlation_of(sender)
    assert args_of(attributes) == args_of(dict(published.attributes or {}))
    assert attributes[RETURN_VALUE] == "{'total': 5}"
    assert attributes[RETRIES] == 0
    assert run.status.code != Status.STATUS_CODE_ERROR


def test_spans_made_in_the_task_body_descend_from_the_run_span_with_its_correlation_id(
    publisher: Traced, worker: Worker, receiver: Receiver
) -> None:
    _, task_id, sender = publish(publisher, app.add, worker, 1, 1)

    def body_under_run(spans: list[Span]) -> bool:
        runs = runs_of(spans, app.add, task_id)
        bodies = [span for span in spans if span.name == app.BODY_SPAN]
        return bool(runs and bodies and runs[0] in ancestors(bodies[0], spans))

    spans = worker_spans(receiver, sender.context.trace_id, body_under_run)
    (body,) = [span for span in spans if span.name == app.BODY_SPAN]
    (run,) = runs_of(spans, app.add, task_id)
    # Between them stands at most the auto-instrumentor's span of the task function itself; the
    # whole lineage is the publisher's trace with the publisher's correlation id.
    above = ancestors(body, spans)
    between = above[: above.index(run)]
    assert [attributes_of(span).get("code.function.name") for span in between] in ([], [app.add.name])
    lineage = [body, *between, run]
    assert {attributes_of(span)[CORRELATION_ID] for span in lineage} == {correlation_of(sender)}


def test_a_failed_task_records_its_exception_once_with_status_error(
    publisher: Traced, worker: Worker, receiver: Receiver
) -> None:
    result, task_id, sender = publish(publisher, app.fail, worker, "boom")

    assert isinstance(result, ValueError)
    spans = worker_spans(
        receiver, sender.context.trace_id, lambda spans: bool(runs_of(spans, app.fail, task_id))
    )
    (run,) = runs_of(spans, app.fail, task_id)
    attributes = attributes_of(run)
    assert run.status.code == Status.STATUS_CODE_ERROR
    assert "boom" in run.status.message
    (event,) = [event for event in run.events if event.name == "exception"]
    assert attributes_of(event)["exception.type"] == "ValueError"
    assert attributes_of(event)["exception.message"] == "boom"
    assert args_of(attributes) == {"execscope.args.reason": "'boom'"}
    assert RETURN_VALUE not in attributes
    assert attributes[CORRELATION_ID] == correlation_of(sender)


def test_each_attempt_of_a_retried_task_shows_its_retry_count(
    publisher: Traced, worker: Worker, receiver: Receiver
) -> None:
    result, task_id, sender = publish(publisher, app.flaky, worker, 3)

    assert result == 2
    spans = worker_spans(
        receiver, sender.context.trace_id, lambda spans: len(runs_of(spans, app.flaky, task_id)) == 3
    )
    runs = runs_of(spans, app.flaky, task_id)
    assert [attributes_of(run)[RETRIES] for run in runs] == [0, 1, 2]
    assert [attributes_of(run)["celery.state"] for run in runs] == ["RETRY", "RETRY", "SUCCESS"]
    assert all("celery.retry.reason" in attributes_of(run) for run in runs[:2])
    assert attributes_of(runs[-1])[RETURN_VALUE] == "2"
    assert all(args_of(attributes_of(run)) == {"execscope.args.attempts": "3"} for run in runs)
    assert {attributes_of(run)[CORRELATION_ID] for run in runs} == {correlation_of(sender)}
    # Each retry is a new message, published by the attempt before it.
    by_id = {bytes(span.span_id): span for span in spans}
    for retry in runs[1:]:
        assert by_id[bytes(retry.parent_span_id)].name == publish_name(app.flaky)


@pytest.mark.parametrize(
    ("args", "kwargs"),
    [(("ada",), {"password": "hunter2"}), (("ada", "hunter2"), {})],
    ids=["keyword", "positional"],
)
def test_a_sensitive_argument_is_redacted_on_both_sides_by_its_parameter_name(
    publisher: Traced, worker: Worker, receiver: Receiver, args: tuple[str, ...], kwargs: dict[str, str]
) -> None:
    result, task_id, sender = publish(publisher, app.login, worker, *args, **kwargs)

    assert result == "ada logged in"
    spans = worker_spans(
        receiver, sender.context.trace_id, lambda spans: bool(runs_of(spans, app.login, task_id))
    )
    (run,) = runs_of(spans, app.login, task_id)
    published = dict(publisher.one(publish_name(app.login)).attributes or {})
    expected = {"execscope.args.user": "'ada'", "execscope.args.password": "[redacted]"}
    assert args_of(published) == expected
    assert args_of(attributes_of(run)) == expected
    assert not any("hunter2" in str(value) for value in [*published.values(), *attributes_of(run).values()])


def test_uninstrument_removes_only_our_receivers_and_instrument_adds_them_back(
    publisher: Traced, worker: Worker
) -> None:
    assert len(our_receivers()) == 3
    CeleryInstrumentor().uninstrument()
    assert our_receivers() == []
    publish(publisher, app.add, worker, 4, 5)
    plain = publisher.one(publish_name(app.add))
    CeleryInstrumentor().instrument()
    publish(publisher, app.add, worker, 6, 7)
    again = [span for span in publisher.named(publish_name(app.add)) if span is not plain]

    assert args_of(dict(plain.attributes or {})) == {}
    assert dict(plain.attributes or {})["celery.action"] == "apply_async"  # contrib's receivers stay
    assert args_of(dict(again[0].attributes or {})) == {"execscope.args.x": "6", "execscope.args.y": "7"}


# --------------------------------------------------------------------------- in process, no broker


def test_while_the_governor_sheds_values_nothing_is_captured(
    publisher: Traced, monkeypatch: pytest.MonkeyPatch
) -> None:
    # What the governor's critical level switches off (without its trace sampling, which would
    # drop this test's spans).
    monkeypatch.setattr(SHEDDING, "capture_args", False)
    assert app.add.apply((1, 2), {"label": "x"}).get() == {"x": 3}

    attributes = dict(publisher.one(run_name(app.add)).attributes or {})
    assert args_of(attributes) == {}
    assert RETURN_VALUE not in attributes
    assert attributes[RETRIES] == 0  # a count, not a captured value


def test_a_span_that_is_not_contribs_is_never_annotated(publisher: Traced) -> None:
    ContribCeleryInstrumentor().uninstrument()
    with publisher.provider.get_tracer(__name__).start_as_current_span("caller"):
        assert app.add.apply((1, 2)).get() == {"sum": 3}

    caller = dict(publisher.one("caller").attributes or {})
    assert args_of(caller) == {}
    assert RETURN_VALUE not in caller
    assert RETRIES not in caller


def test_instrument_requires_contribs_instrumentation_first() -> None:
    assert not ContribCeleryInstrumentor().is_instrumented_by_opentelemetry

    with pytest.raises(RuntimeError, match="opentelemetry-instrumentation-celery"):
        CeleryInstrumentor().instrument()
    assert not CeleryInstrumentor().is_instrumented_by_opentelemetry
    assert our_receivers() == []


def test_an_internal_error_leaves_the_task_alone_and_is_reported(
    publisher: Traced, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    def broken(*args: object, **kwargs: object) -> dict[str, str]:
        raise RuntimeError("capture broke")

    monkeypatch.setattr(_receivers, "arguments_attributes", broken)
    _failsafe.RAISE_INTERNAL_ERRORS = False  # as in production; `traced` sets it back
    try:
        with caplog.at_level(logging.WARNING, logger=_failsafe.__name__):
            result = app.add.apply((1, 2)).get()
    finally:
        _failsafe.RAISE_INTERNAL_ERRORS = True

    assert result == {"sum": 3}
    run = dict(publisher.one(run_name(app.add)).attributes or {})
    assert run[RETURN_VALUE] == "{'sum': 3}"
    assert any("internal error in celery task_prerun" in record.getMessage() for record in caplog.records)
