"""A real OTLP/gRPC trace receiver for tests: it records every span it accepts, by id.

It can be stopped and started again on the same port (a collector going down and coming back),
or told to stall (a collector that accepts connections but never answers), and tests wait for
what they expect with :meth:`Receiver.wait_for` instead of sleeping.
"""

from __future__ import annotations

import socket
import threading
from collections.abc import Callable, Sequence
from concurrent import futures
from typing import Any

import grpc
from opentelemetry.proto.collector.trace.v1 import trace_service_pb2, trace_service_pb2_grpc
from opentelemetry.proto.trace.v1.trace_pb2 import Span


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


class Receiver(trace_service_pb2_grpc.TraceServiceServicer):
    def __init__(self, port: int | None = None) -> None:
        self.port = port or free_port()
        self.spans: list[Span] = []
        self.resources: list[dict[str, Any]] = []
        self.requests = 0
        self._changed = threading.Condition()
        self._server: grpc.Server | None = None
        self.stall = threading.Event()  # set: hold every request until released
        self._release = threading.Event()
        #: Requests being held by ``stall`` now, and the most ever held at once.
        self.held = 0
        self.most_held = 0

    @property
    def endpoint(self) -> str:
        return f"127.0.0.1:{self.port}"

    def start(self) -> Receiver:
        server = grpc.server(futures.ThreadPoolExecutor(max_workers=4))
        trace_service_pb2_grpc.add_TraceServiceServicer_to_server(self, server)
        server.add_insecure_port(self.endpoint)
        server.start()
        self._server = server
        return self

    def stop(self) -> None:
        self._release.set()
        if self._server is not None:
            self._server.stop(grace=None).wait()
            self._server = None
        self._release.clear()

    def Export(self, request: trace_service_pb2.ExportTraceServiceRequest, context: Any) -> Any:
        if self.stall.is_set():
            with self._changed:
                self.held += 1
                self.most_held = max(self.most_held, self.held)
                self._changed.notify_all()
            self._release.wait(30)
            with self._changed:
                self.held -= 1
        with self._changed:
            self.requests += 1
            for resource_spans in request.resource_spans:
                attributes = {kv.key: kv.value for kv in resource_spans.resource.attributes}
                for scope_spans in resource_spans.scope_spans:
                    self.spans.extend(scope_spans.spans)
                    self.resources.extend(attributes for _ in scope_spans.spans)
            self._changed.notify_all()
        return trace_service_pb2.ExportTraceServiceResponse()

    def release(self) -> None:
        """Answer the requests held so far (and, with ``stall`` cleared, all later ones)."""
        self._release.set()

    def wait_held(self, count: int, timeout: float = 20.0) -> bool:
        """Wait until ``count`` requests are being held at once; False on timeout."""
        with self._changed:
            return self._changed.wait_for(lambda: self.held >= count, timeout)

    def span_ids(self) -> list[int]:
        with self._changed:
            return [int.from_bytes(span.span_id, "big") for span in self.spans]

    def wait_for(self, count: int, timeout: float = 20.0) -> bool:
        """Wait until at least ``count`` spans arrived; False on timeout."""
        with self._changed:
            return self._changed.wait_for(lambda: len(self.spans) >= count, timeout)

    def wait_until(self, found: Callable[[Sequence[Span]], bool], timeout: float = 30.0) -> list[Span]:
        """Wait until ``found(spans so far)`` is true; the spans then. Fails the test on timeout."""
        with self._changed:
            if not self._changed.wait_for(lambda: found(self.spans), timeout):
                names = sorted({span.name for span in self.spans})
                raise AssertionError(f"spans expected within {timeout}s did not arrive; got {names}")
            return list(self.spans)


def attributes_of(span: Span) -> dict[str, Any]:
    values: dict[str, Any] = {}
    for kv in span.attributes:
        kind = kv.value.WhichOneof("value")
        values[kv.key] = getattr(kv.value, kind) if kind else None
    return values
