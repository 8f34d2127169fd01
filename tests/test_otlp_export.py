"""With an OTLP endpoint configured, spans reach the collector there, not the embedded store."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from concurrent import futures
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import grpc
import pytest
from opentelemetry.proto.collector.trace.v1 import trace_service_pb2, trace_service_pb2_grpc

from conftest import HELLO, HELLO_SPANS, execscope, execscope_json


class Collector:
    """What an OTLP receiver on loopback was sent."""

    def __init__(self) -> None:
        self.requests: list[trace_service_pb2.ExportTraceServiceRequest] = []
        self.lock = threading.Lock()

    def add(self, request: trace_service_pb2.ExportTraceServiceRequest) -> None:
        with self.lock:
            self.requests.append(request)

    def span_names(self) -> list[str]:
        with self.lock:
            return sorted(
                span.name
                for request in self.requests
                for resource_spans in request.resource_spans
                for scope_spans in resource_spans.scope_spans
                for span in scope_spans.spans
            )

    def services(self) -> set[str]:
        with self.lock:
            return {
                attribute.value.string_value
                for request in self.requests
                for resource_spans in request.resource_spans
                for attribute in resource_spans.resource.attributes
                if attribute.key == "service.name"
            }


class _TraceService(trace_service_pb2_grpc.TraceServiceServicer):  # type: ignore[misc]
    def __init__(self, collector: Collector) -> None:
        self.collector = collector

    def Export(self, request: trace_service_pb2.ExportTraceServiceRequest, context: object) -> object:
        self.collector.add(request)
        return trace_service_pb2.ExportTraceServiceResponse()


@pytest.fixture
def grpc_collector() -> Iterator[tuple[str, Collector]]:
    collector = Collector()
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=2))
    trace_service_pb2_grpc.add_TraceServiceServicer_to_server(_TraceService(collector), server)
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    yield f"http://127.0.0.1:{port}", collector
    server.stop(grace=None)


@pytest.fixture
def http_collector() -> Iterator[tuple[str, Collector]]:
    collector = Collector()

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers["Content-Length"]))
            if self.path == "/v1/traces":
                collector.add(trace_service_pb2.ExportTraceServiceRequest.FromString(body))
            self.send_response(200)
            self.send_header("Content-Type", "application/x-protobuf")
            self.end_headers()

        def log_message(self, format: str, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_port}", collector
    server.shutdown()
    server.server_close()


def test_spans_reach_an_otlp_grpc_collector_instead_of_the_store(
    env: dict[str, str], tmp_path: Path, grpc_collector: tuple[str, Collector]
) -> None:
    endpoint, collector = grpc_collector
    result = execscope("run", HELLO, env={**env, "OTEL_EXPORTER_OTLP_ENDPOINT": endpoint}, cwd=tmp_path)

    assert result.returncode == 0, result.stderr
    assert collector.span_names() == HELLO_SPANS
    assert collector.services() == {"hello"}
    assert not Path(env["EXECSCOPE_STORE"]).exists()


def test_spans_reach_an_otlp_http_collector(
    env: dict[str, str], tmp_path: Path, http_collector: tuple[str, Collector]
) -> None:
    endpoint, collector = http_collector
    otlp_env = {
        **env,
        "OTEL_EXPORTER_OTLP_ENDPOINT": endpoint,
        "OTEL_EXPORTER_OTLP_PROTOCOL": "http/protobuf",
    }
    result = execscope("run", "--service-name", "greeter", HELLO, env=otlp_env, cwd=tmp_path)

    assert result.returncode == 0, result.stderr
    assert collector.span_names() == HELLO_SPANS
    assert collector.services() == {"greeter"}


def test_the_store_also_receives_spans_when_asked_to(
    env: dict[str, str], tmp_path: Path, grpc_collector: tuple[str, Collector]
) -> None:
    endpoint, collector = grpc_collector
    both = {**env, "OTEL_EXPORTER_OTLP_ENDPOINT": endpoint, "EXECSCOPE_STORE_EXPORT": "always"}
    result = execscope("run", HELLO, env=both, cwd=tmp_path)

    assert result.returncode == 0, result.stderr
    assert collector.span_names() == HELLO_SPANS
    (listed,) = execscope_json("traces", env=env, cwd=tmp_path)
    assert listed["span_count"] == len(HELLO_SPANS)
