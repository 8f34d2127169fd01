"""Recording spans for instrumentor tests: in process, and from other processes over OTLP.

In process: :func:`traced` gives a tracer provider with execscope's real pipeline (so spans get
their correlation ids) in front of a :class:`CollectingExporter`, with the given settings made
the process's settings for its duration. Across processes: :func:`child_environment` points an
``execscope run`` child at a test :class:`otlp_receiver.Receiver`, which the test waits on.
"""

from __future__ import annotations

import queue
import subprocess
import threading
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SpanExporter, SpanExportResult
from pipeline_helpers import pipeline

from conftest import clean_environment
from execscope.attributes import CORRELATION_ID
from execscope.instrumentors import _capture, _failsafe
from execscope.settings import get_settings, load_settings, use_settings


class CollectingExporter(SpanExporter):
    """Keeps every exported span; tests wait for the ones they expect."""

    def __init__(self) -> None:
        self.spans: list[ReadableSpan] = []
        self._changed = threading.Condition()

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        with self._changed:
            self.spans.extend(spans)
            self._changed.notify_all()
        return SpanExportResult.SUCCESS

    def wait_until(
        self, found: Callable[[Sequence[ReadableSpan]], bool], timeout: float = 20.0
    ) -> list[ReadableSpan]:
        with self._changed:
            if not self._changed.wait_for(lambda: found(self.spans), timeout):
                names = sorted(span.name for span in self.spans)
                raise AssertionError(f"spans expected within {timeout}s did not arrive; got {names}")
            return list(self.spans)


@dataclass
class Traced:
    provider: TracerProvider
    exporter: CollectingExporter

    def spans(self) -> list[ReadableSpan]:
        """Every span ended so far (flushes the pipeline first)."""
        assert self.provider.force_flush(10_000)
        return list(self.exporter.spans)

    def named(self, name: str) -> list[ReadableSpan]:
        return [span for span in self.spans() if span.name == name]

    def one(self, name: str) -> ReadableSpan:
        found = self.named(name)
        assert len(found) == 1, f"expected one span {name!r}, got {[s.name for s in self.spans()]}"
        return found[0]


@contextmanager
def traced(tmp_path: Path, **settings: Any) -> Iterator[Traced]:
    """execscope's pipeline (``pipeline_helpers.pipeline``) with ``settings`` made the process's
    settings too, which the instrumentors read, and their internal errors raised."""
    previous = get_settings()
    use_settings(load_settings({"store": tmp_path / "store", **settings}))
    _capture.reload_settings()
    _failsafe.RAISE_INTERNAL_ERRORS = True
    exporter = CollectingExporter()
    try:
        with pipeline(tmp_path, [exporter], **settings) as active:
            yield Traced(active.provider, exporter)
    finally:
        _failsafe.RAISE_INTERNAL_ERRORS = False
        use_settings(previous)
        _capture.reload_settings()


def correlation_of(span: ReadableSpan) -> str:
    value = (span.attributes or {}).get(CORRELATION_ID)
    assert isinstance(value, str), f"{span.name} has no correlation id"
    return value


def child_environment(otlp_endpoint: str, tmp_path: Path, **extra: str) -> dict[str, str]:
    """Environment of an ``execscope run`` child that exports to the test receiver at once."""
    return clean_environment(
        EXECSCOPE_STORE=str(tmp_path / "store"),
        OTEL_EXPORTER_OTLP_ENDPOINT=f"http://{otlp_endpoint}",
        OTEL_EXPORTER_OTLP_PROTOCOL="grpc",
        OTEL_TRACES_EXPORTER="otlp",
        OTEL_BSP_SCHEDULE_DELAY="50",
        EXECSCOPE_SPOOL="false",
        **extra,
    )


class Output:
    """A child's output lines, read by a thread, so a test can wait for one with a timeout."""

    def __init__(self, stream: IO[str]) -> None:
        self.lines: queue.Queue[str] = queue.Queue()
        self.seen: list[str] = []
        threading.Thread(target=self._pump, args=(stream,), daemon=True).start()

    def _pump(self, stream: IO[str]) -> None:
        for line in stream:
            self.lines.put(line)

    def wait_for(self, text: str, timeout: float = 60.0) -> None:
        while True:
            try:
                line = self.lines.get(timeout=timeout)
            except queue.Empty:
                raise AssertionError(f"{text!r} not printed within {timeout}s; got {self.seen}") from None
            self.seen.append(line)
            if text in line:
                return


@contextmanager
def correlated_responses() -> Iterator[None]:
    """What the distro sets up for server instrumentations: the W3C and correlation-id
    propagators, and the response propagator that returns the id in ``x-correlation-id``."""
    from opentelemetry import propagate
    from opentelemetry.propagators.composite import CompositePropagator
    from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

    from execscope.instrumentors._response_header import (
        install_response_propagator,
        uninstall_response_propagator,
    )
    from execscope.processors import CorrelationPropagator

    install_response_propagator()
    previous = propagate.get_global_textmap()
    propagate.set_global_textmap(
        CompositePropagator([TraceContextTextMapPropagator(), CorrelationPropagator()])
    )
    try:
        yield
    finally:
        propagate.set_global_textmap(previous)
        uninstall_response_propagator()


def server_span(spans: Sequence[ReadableSpan]) -> ReadableSpan:
    """The one server span among ``spans``."""
    from opentelemetry.trace import SpanKind

    (found,) = [span for span in spans if span.kind == SpanKind.SERVER]
    return found


@contextmanager
def served(args: list[str], env: dict[str, str], cwd: Path, ready: str) -> Iterator[subprocess.Popen[str]]:
    """A server process, once it printed ``ready``; terminated (killed if it must be) after."""
    server = subprocess.Popen(
        args, cwd=cwd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    )
    try:
        assert server.stdout is not None
        Output(server.stdout).wait_for(ready)
        yield server
    finally:
        server.terminate()
        try:
            server.wait(timeout=20)
        except subprocess.TimeoutExpired:
            server.kill()


def assert_a_served_note_is_recorded(receiver: Any, port: int, route: str, view: str) -> None:
    """POST a note with a token to a served application's ``/users/5/notes`` (a view that reads
    the JSON body and counts its words) and check what its server span and the view's own
    rewritten span recorded: correlation id, view location, parameters, redacted body."""
    import httpx
    from otlp_receiver import attributes_of

    from execscope.attributes import HTTP_PATH_PREFIX, HTTP_REQUEST_BODY

    response = httpx.post(
        f"http://127.0.0.1:{port}/users/5/notes", json={"text": "one two", "token": "t0k3n"}, timeout=30
    )
    assert response.json() == {"user": 5, "words": 2}
    server_name = f"POST {route}"
    spans = receiver.wait_until(
        lambda found: {server_name, "add_note"} <= {span.name for span in found}, timeout=60
    )
    (request,) = [span for span in spans if span.name == server_name]
    attributes = attributes_of(request)
    assert attributes["execscope.correlation_id"] == response.headers["x-correlation-id"]
    assert attributes["code.function.name"] == view
    assert attributes[HTTP_PATH_PREFIX + "user"] == "5"
    assert attributes[HTTP_REQUEST_BODY] == "{'text': 'one two', 'token': [redacted]}"
    (handler,) = [span for span in spans if span.name == "add_note"]
    assert handler.parent_span_id == request.span_id
