"""Helpers for the tests that run execscope's processor inside the real rotel collector.

A rotel process on free loopback ports, loading the plugin, exporting OTLP/gRPC to a receiver in
the test process that records what arrives. Every wait is bounded and event-driven: readiness is
a successful connect to rotel's port, arrival is a condition signalled by the receiver.
"""

from __future__ import annotations

import importlib.util
import os
import socket
import stat
import subprocess
import sysconfig
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from concurrent import futures
from contextlib import contextmanager
from pathlib import Path
from typing import NoReturn

import grpc
import pytest
from opentelemetry.proto.collector.trace.v1 import trace_service_pb2, trace_service_pb2_grpc
from opentelemetry.proto.trace.v1 import trace_pb2

import execscope
import execscope.processors
from bench._processes import stop

#: The plugin as an installed file: inside an ``execscope/processors/`` folder, as users point rotel at it.
PLUGIN = Path(execscope.processors.__file__).parent / "collector_plugin.py"
#: How long rotel may take to listen, and spans to arrive.
START_TIMEOUT_S = 20.0
ARRIVAL_TIMEOUT_S = 15.0


def _unavailable(reason: str) -> NoReturn:
    """In CI a collector that cannot run is a failure; on a developer machine the tests are skipped."""
    if os.environ.get("CI") == "true":
        pytest.fail(f"rotel is required in CI: {reason}")
    pytest.skip(f"rotel cannot run here: {reason}")


def rotel_binary() -> Path:
    """The ``rotel-agent`` binary shipped in the ``rotel`` wheel, made executable, checked to start."""
    spec = importlib.util.find_spec("rotel")
    if spec is None or spec.origin is None:
        _unavailable("the rotel package is not installed (pip install -e '.[test]')")
    binary = Path(spec.origin).parent / "rotel-agent"
    if not binary.is_file():
        _unavailable(f"{binary} is missing from the rotel package")
    if not os.access(binary, os.X_OK):
        binary.chmod(binary.stat().st_mode | stat.S_IXUSR | stat.S_IXGRP | stat.S_IXOTH)
    try:
        probe = subprocess.run(
            [str(binary), "start", "--help"], capture_output=True, text=True, timeout=30, check=False
        )
    except OSError as error:
        _unavailable(f"{binary} does not start: {error}")
    if probe.returncode != 0:
        # Typically the Python 3.11 shared library it links against is missing.
        _unavailable(f"{binary} does not start: {(probe.stderr or probe.stdout).strip()[-300:]}")
    return binary


def plugin_pythonpath() -> str:
    """Where rotel's embedded interpreter finds execscope and its dependencies: this environment's."""
    folders = [sysconfig.get_paths()["purelib"], str(Path(execscope.__file__).parent.parent)]
    return os.pathsep.join(dict.fromkeys(folders))


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def span_id_of(span: trace_pb2.Span) -> int:
    return int.from_bytes(span.span_id, "big")


def trace_id_of(span: trace_pb2.Span) -> int:
    return int.from_bytes(span.trace_id, "big")


def attributes_of(span: trace_pb2.Span | trace_pb2.Span.Event) -> dict[str, object]:
    """Attribute values as Python values (arrays as lists, bytes as bytes)."""

    def value(any_value: object) -> object:
        kind = any_value.WhichOneof("value")  # type: ignore[attr-defined]
        if kind is None:
            return None
        if kind == "array_value":
            return [value(item) for item in any_value.array_value.values]  # type: ignore[attr-defined]
        if kind == "kvlist_value":
            return {kv.key: value(kv.value) for kv in any_value.kvlist_value.values}  # type: ignore[attr-defined]
        return getattr(any_value, kind)

    return {attribute.key: value(attribute.value) for attribute in span.attributes}


class Receiver(trace_service_pb2_grpc.TraceServiceServicer):
    """An OTLP/gRPC trace receiver on loopback that records every span and signals each arrival."""

    def __init__(self) -> None:
        self.spans: list[trace_pb2.Span] = []
        self._arrived = threading.Condition()
        self._server = grpc.server(futures.ThreadPoolExecutor(max_workers=4))
        trace_service_pb2_grpc.add_TraceServiceServicer_to_server(self, self._server)  # type: ignore[no-untyped-call]
        self.port = self._server.add_insecure_port("127.0.0.1:0")

    def Export(self, request: trace_service_pb2.ExportTraceServiceRequest, context: object) -> object:
        with self._arrived:
            for resource_spans in request.resource_spans:
                for scope_spans in resource_spans.scope_spans:
                    self.spans.extend(scope_spans.spans)
            self._arrived.notify_all()
        return trace_service_pb2.ExportTraceServiceResponse()

    def wait_for(
        self, done: Callable[[list[trace_pb2.Span]], bool], what: str, timeout: float = ARRIVAL_TIMEOUT_S
    ) -> list[trace_pb2.Span]:
        """A copy of the spans received once ``done`` holds for them; fails after ``timeout``."""
        with self._arrived:
            if not self._arrived.wait_for(lambda: done(self.spans), timeout):
                raise AssertionError(
                    f"timed out after {timeout}s waiting for {what}; got {len(self.spans)} spans"
                )
            return list(self.spans)

    def wait_for_span_ids(
        self, span_ids: set[int], timeout: float = ARRIVAL_TIMEOUT_S
    ) -> list[trace_pb2.Span]:
        """The spans received once all of ``span_ids`` are among them; fails saying how many are missing."""
        with self._arrived:
            if not self._arrived.wait_for(lambda: span_ids <= {span_id_of(s) for s in self.spans}, timeout):
                missing = span_ids - {span_id_of(span) for span in self.spans}
                raise AssertionError(
                    f"{len(missing)} of {len(span_ids)} expected spans did not arrive in {timeout}s"
                )
            return list(self.spans)

    def __enter__(self) -> Receiver:
        self._server.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._server.stop(grace=None)


class Rotel:
    """A running rotel process and where its output goes."""

    def __init__(self, process: subprocess.Popen[bytes], port: int, folder: Path) -> None:
        self.process = process
        self.port = port
        self.folder = folder

    @property
    def endpoint(self) -> str:
        """For the SDK's gRPC exporter (``insecure=True``)."""
        return f"localhost:{self.port}"

    def output(self) -> str:
        return _output(self.folder)

    def assert_running(self) -> None:
        assert self.process.poll() is None, f"rotel exited ({self.process.returncode}):\n{self.output()}"


def rotel_environment(extra: Mapping[str, str]) -> dict[str, str]:
    """This environment minus OTEL_/EXECSCOPE_/ROTEL_ settings, plus the plugin's path and ``extra``."""
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(("OTEL_", "EXECSCOPE_", "ROTEL_")) and key != "PYTHONPATH"
    }
    env["PYTHONPATH"] = plugin_pythonpath()
    env.update(extra)
    return env


def _output(folder: Path) -> str:
    """What rotel (and the plugin's log lines, on its stderr) wrote so far."""
    return "".join((folder / name).read_text(errors="replace") for name in ("rotel.out", "rotel.err"))


def _wait_until_listening(process: subprocess.Popen[bytes], port: int, folder: Path) -> None:
    deadline = time.monotonic() + START_TIMEOUT_S
    while True:
        if process.poll() is not None:
            raise AssertionError(f"rotel exited at start ({process.returncode}):\n{_output(folder)}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return
        except OSError:
            if time.monotonic() > deadline:
                raise AssertionError(
                    f"rotel did not listen on port {port} within {START_TIMEOUT_S}s"
                ) from None
            time.sleep(0.02)  # the polling interval, not a wait for something to happen


@contextmanager
def running_rotel(
    binary: Path,
    folder: Path,
    receiver_port: int,
    *,
    plugin: Path = PLUGIN,
    env: Mapping[str, str] | None = None,
    port: int | None = None,
) -> Iterator[Rotel]:
    """rotel loading ``plugin``, receiving on ``port`` (default: a free one), exporting to
    ``receiver_port`` in 20 ms batches."""
    folder.mkdir(parents=True, exist_ok=True)
    port = port or free_port()
    args = [
        str(binary),
        "start",
        "--otlp-grpc-endpoint",
        f"127.0.0.1:{port}",
        "--otlp-http-endpoint",
        f"127.0.0.1:{free_port()}",
        "--otlp-with-trace-processor",
        str(plugin),
        "--exporter",
        "otlp",
        "--otlp-exporter-endpoint",
        f"http://127.0.0.1:{receiver_port}",
        "--batch-timeout",
        "20ms",
        "--pid-file",
        str(folder / "rotel.pid"),
        "--log-file",
        str(folder / "rotel.log"),
    ]
    with (folder / "rotel.out").open("wb") as out, (folder / "rotel.err").open("wb") as err:
        process = subprocess.Popen(args, env=rotel_environment(env or {}), stdout=out, stderr=err)
    try:
        _wait_until_listening(process, port, folder)
        yield Rotel(process, port, folder)
    finally:
        stop(process, timeout_s=10)
