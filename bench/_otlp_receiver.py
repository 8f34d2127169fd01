"""A throwaway OTLP/gRPC trace receiver for benchmarks: ``python -m bench._otlp_receiver``.

It runs in its own process so that what receiving, decoding and acknowledging spans costs is
not counted in the benchmark process's CPU. It listens on 127.0.0.1 only, prints ``PORT <n>``
once it is serving, answers ``count`` on stdin with ``SPANS <n>`` (so a benchmark can tell its
exports really arrived), and exits when stdin closes (its parent is gone) or after
``--max-seconds``, whichever comes first: it never outlives the benchmark that started it.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import threading
from concurrent import futures
from pathlib import Path
from typing import IO

import grpc
from opentelemetry.proto.collector.trace.v1 import trace_service_pb2, trace_service_pb2_grpc

#: ``bench`` is a top-level package of the repository: the receiver is started from there.
_REPOSITORY = Path(__file__).resolve().parents[1]


class _TraceService(trace_service_pb2_grpc.TraceServiceServicer):
    """Acknowledges every export and counts its spans."""

    def __init__(self) -> None:
        self.spans = 0
        self.lock = threading.Lock()

    def Export(self, request: trace_service_pb2.ExportTraceServiceRequest, context: object) -> object:
        count = sum(
            len(scope_spans.spans)
            for resource_spans in request.resource_spans
            for scope_spans in resource_spans.scope_spans
        )
        with self.lock:
            self.spans += count
        return trace_service_pb2.ExportTraceServiceResponse()


def serve(max_seconds: float) -> int:
    service = _TraceService()
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=2))
    trace_service_pb2_grpc.add_TraceServiceServicer_to_server(service, server)  # type: ignore[no-untyped-call]
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    print(f"PORT {port}", flush=True)
    done = threading.Event()

    def read_commands() -> None:
        for line in sys.stdin:
            if line.strip() == "count":
                with service.lock:
                    print(f"SPANS {service.spans}", flush=True)
        done.set()

    threading.Thread(target=read_commands, name="commands", daemon=True).start()
    done.wait(max_seconds)
    server.stop(grace=None)
    return 0


class Receiver:
    """A receiver process started by a benchmark; :meth:`close` ends it."""

    def __init__(self, max_seconds: float = 3600.0) -> None:
        self._process = subprocess.Popen(
            [sys.executable, "-m", "bench._otlp_receiver", "--max-seconds", str(max_seconds)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
            cwd=_REPOSITORY,
        )
        self.port = int(self._expect("PORT"))

    @property
    def endpoint(self) -> str:
        return f"127.0.0.1:{self.port}"

    def _pipes(self) -> tuple[IO[str], IO[str]]:
        stdin, stdout = self._process.stdin, self._process.stdout
        assert stdin is not None and stdout is not None
        return stdin, stdout

    def _expect(self, word: str) -> str:
        line = self._pipes()[1].readline()
        key, _, value = line.partition(" ")
        if key != word:
            self.close()
            raise RuntimeError(f"OTLP receiver said {line!r}, expected {word} <n>")
        return value.strip()

    def spans_received(self) -> int:
        stdin = self._pipes()[0]
        stdin.write("count\n")
        stdin.flush()
        return int(self._expect("SPANS"))

    def close(self) -> None:
        if self._process.poll() is None:
            stdin = self._process.stdin
            if stdin is not None:
                stdin.close()
            try:
                self._process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self._process.kill()
                self._process.wait()
        if self._process.stdout is not None:
            self._process.stdout.close()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench._otlp_receiver", description=__doc__)
    parser.add_argument("--max-seconds", type=float, default=3600.0, help="exit after this long at most")
    args = parser.parse_args(argv)
    return serve(args.max_seconds)


if __name__ == "__main__":
    sys.exit(main())
