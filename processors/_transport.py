"""Sends already-encoded OTLP trace requests through the official OTLP exporters.

The official exporters resolve everything from the standard ``OTEL_EXPORTER_OTLP_*`` settings
(endpoint, headers, TLS, compression, timeout); execscope builds them exactly as the SDK would
and only replaces the step that turns spans into a request, because it encodes once (much more
cheaply, see ``_otlp_encoding``) and must be able to keep the bytes on disk and send them later.
That needs two non-public members of the exporters of the pinned release series; they are read
once here, and a test exercises both transports against real receivers so an upgrade that
changes them fails loudly instead of losing spans.
"""

from __future__ import annotations

import logging
import os
import threading
import time
import weakref
from collections.abc import Callable
from concurrent.futures import Future
from enum import Enum
from queue import SimpleQueue
from typing import Any, Protocol

from opentelemetry.sdk.trace.export import SpanExporter

_logger = logging.getLogger(__name__)

_GRPC_METHOD = "/opentelemetry.proto.collector.trace.v1.TraceService/Export"


#: gRPC status codes after which the same request may succeed later (the OTLP specification's list).
_GRPC_RETRYABLE = frozenset(
    {
        "CANCELLED",
        "DEADLINE_EXCEEDED",
        "ABORTED",
        "OUT_OF_RANGE",
        "UNAVAILABLE",
        "DATA_LOSS",
        "RESOURCE_EXHAUSTED",
    }
)
_HTTP_RETRYABLE = frozenset({408, 429, 502, 503, 504})


class Sent(Enum):
    """What became of one request."""

    #: The receiver accepted it.
    DELIVERED = "delivered"
    #: The receiver is down, slow or overloaded: the same request may succeed later (spool it).
    RETRY = "retry"
    #: The receiver refused this request for good (malformed, too large, unauthorised).
    REJECTED = "rejected"


class Pending(Protocol):
    """A request on its way: :meth:`result` waits for the receiver's answer."""

    def done(self) -> bool: ...

    def result(self) -> Sent: ...

    def when_done(self, callback: Callable[[], object]) -> None:
        """Call ``callback`` (on any thread) once the answer is in, or now if it is."""


class Answered:
    """A request whose answer is already known (a transport that sends synchronously)."""

    __slots__ = ("_sent",)

    def __init__(self, sent: Sent) -> None:
        self._sent = sent

    def done(self) -> bool:
        return True

    def result(self) -> Sent:
        return self._sent

    def when_done(self, callback: Callable[[], object]) -> None:
        callback()


class Transport(Protocol):
    """Delivers one encoded ``ExportTraceServiceRequest``, in one attempt (no retries inside)."""

    name: str
    #: The exporter's own timeout per request (its argument, or the ``OTEL_EXPORTER_OTLP_*``
    #: setting it read), seconds; None where it could not be read.
    timeout_s: float | None
    #: How many requests :meth:`start` may have on their way at once (1: it answers before returning).
    concurrency: int

    @property
    def cpu_s(self) -> float:
        """CPU seconds spent sending on threads of the transport's own (0: it sends on the caller's)."""
        ...

    def start(self, payload: bytes, timeout_s: float) -> Pending: ...

    def close(self) -> None: ...


class _GrpcPending:
    """A gRPC call under way on a sender thread; its answer is read (and mapped to :class:`Sent`) once."""

    __slots__ = ("_channel", "_future", "_sent", "_transport")

    def __init__(self, transport: GrpcTransport, future: Future[object], channel: int) -> None:
        self._transport = transport
        self._future = future
        self._channel = channel
        self._sent: Sent | None = None

    def done(self) -> bool:
        return self._sent is not None or self._future.done()

    def when_done(self, callback: Callable[[], object]) -> None:
        self._future.add_done_callback(lambda _: callback())

    def result(self) -> Sent:
        if self._sent is None:
            try:
                self._future.result()
                self._sent = Sent.DELIVERED
            except Exception as error:  # an RpcError, or the channel closed under the call
                self._sent = self._transport.failed(error, self._channel)
        return self._sent


class _SenderThreads:
    """Daemon threads, each making one blocking gRPC call at a time.

    Why not grpcio's own ``future()`` calls: each time the calls on a channel drop to none,
    grpcio ends the thread that polls for their answers and starts a new one with the next call;
    a worker delivering batches as fast as they are made did that for nearly every batch, and in
    a profile of the pipeline benchmark starting those threads took more of the worker's time
    than encoding the spans. A blocking call polls its own completion queue on the calling
    thread instead, and these threads live as long as the process. They are daemons: a call to
    a collector that hangs never holds up the exit (closing the channel at shutdown ends the
    calls under way at once). A forked child starts its own.
    """

    def __init__(self, count: int, name: str) -> None:
        self._count = count
        self._name = name
        #: CPU seconds the threads spent in calls (gRPC does a call's work on the calling thread).
        self.cpu_s = 0.0
        self._queue: SimpleQueue[tuple[Callable[[], object], Future[object]] | None] = SimpleQueue()
        self._pid: int | None = None
        self._lock = threading.Lock()
        reference = weakref.ref(self)

        def _after_fork_in_child() -> None:
            # A sender thread may have held the lock at the fork; in the child it never lets go.
            senders = reference()
            if senders is not None:
                senders._lock = threading.Lock()

        os.register_at_fork(after_in_child=_after_fork_in_child)

    def submit(self, call: Callable[[], object]) -> Future[object]:
        if self._pid != os.getpid():
            self._start()
        future: Future[object] = Future()
        self._queue.put((call, future))
        return future

    def _start(self) -> None:
        with self._lock:
            if self._pid == os.getpid():
                return
            # In a forked child the parent's threads are gone and its queue may hold their work.
            self._queue = SimpleQueue()
            for index in range(self._count):
                thread = threading.Thread(
                    target=self._run, args=(self._queue,), name=f"{self._name}-{index}", daemon=True
                )
                thread.start()
            self._pid = os.getpid()

    def _run(self, queue: SimpleQueue[tuple[Callable[[], object], Future[object]] | None]) -> None:
        while (item := queue.get()) is not None:
            call, future = item
            began = time.thread_time()
            try:
                answer = call()
            except BaseException as error:  # handed to whoever reads the answer
                self._add_cpu(began)
                future.set_exception(error)
            else:
                self._add_cpu(began)
                future.set_result(answer)

    def _add_cpu(self, began: float) -> None:
        spent = time.thread_time() - began
        with self._lock:  # several threads add to it
            self.cpu_s += spent

    def close(self) -> None:
        if self._pid == os.getpid():
            for _ in range(self._count):
                self._queue.put(None)
            self._pid = None


class GrpcTransport:
    """Several requests may be on their way at once (see ``OtlpSink``), so that the receiver's
    latency does not bound the throughput of the one worker thread that encodes and sends; each
    is a blocking call on one of ``concurrency`` sender threads (:class:`_SenderThreads`)."""

    concurrency = 4

    def __init__(self, exporter: Any) -> None:
        self._exporter = exporter
        self.name = f"OTLP/gRPC {exporter._endpoint}"
        self.timeout_s = _positive(getattr(exporter, "_timeout", None))
        #: Which channel is current: requests on a channel already replaced do not replace it again.
        self._channel = 0
        self._call = self._bind()
        self._senders = _SenderThreads(self.concurrency, "execscope-otlp-send")

    def _bind(self) -> Any:
        # Bytes in, no deserialising of the (empty) response: grpcio passes ``bytes`` through
        # when no serializer is given.
        return self._exporter._channel.unary_unary(_GRPC_METHOD)

    @property
    def cpu_s(self) -> float:
        """CPU seconds spent in calls, on the sender threads."""
        return self._senders.cpu_s

    def start(self, payload: bytes, timeout_s: float) -> Pending:
        call, metadata = self._call, self._exporter._headers or None
        future = self._senders.submit(lambda: call(payload, metadata=metadata, timeout=timeout_s))
        return _GrpcPending(self, future, self._channel)

    def failed(self, error: Exception, channel: int) -> Sent:
        """What a call on ``channel`` that raised ``error`` means for its request (a new channel
        when the receiver went away, once for all the calls that were on the old one)."""
        import grpc

        code = error.code() if callable(getattr(error, "code", None)) else None  # type: ignore[attr-defined]
        _logger.debug("execscope: %s did not take a batch: %s", self.name, code or error)
        if code == grpc.StatusCode.UNAVAILABLE and channel == self._channel:
            self._reconnect()
        if code is None or code.name in _GRPC_RETRYABLE:
            return Sent.RETRY
        _logger.warning("execscope: %s rejected a batch (%s); its spans are dropped", self.name, code.name)
        return Sent.REJECTED

    def _reconnect(self) -> None:
        # A channel that saw the server go away backs off reconnecting for up to minutes; a new
        # one connects at the next probe (the official exporter does the same on UNAVAILABLE).
        try:
            self._channel += 1
            self._exporter._channel.close()
            self._exporter._initialize_channel_and_stub()
            self._call = self._bind()
        except Exception as error:  # fail open: the next probe tries again
            _logger.debug("execscope: reconnecting to %s failed: %s", self.name, error)

    def close(self) -> None:
        try:
            self._exporter.shutdown()
        except Exception as error:  # fail open
            _logger.debug("execscope: closing %s failed: %s", self.name, error)
        self._senders.close()


class HttpTransport:
    concurrency = 1
    cpu_s = 0.0  # requests are sent on the export worker's thread

    def __init__(self, exporter: Any) -> None:
        self._exporter = exporter
        self.name = f"OTLP/HTTP {exporter._endpoint}"
        self.timeout_s = _positive(getattr(getattr(exporter, "_client", None), "_timeout", None))

    def send(self, payload: bytes, timeout_s: float) -> Sent:
        client = self._exporter._client
        try:
            # One attempt (``_submit``), not the client's ``export`` with its own retries and
            # per-attempt error logs: retrying is the spool's and the breaker's job here.
            result = client._submit(client._compress(payload), timeout_s)
        except Exception as error:  # a connection error the client did not turn into a result
            _logger.debug("execscope: %s did not take a batch: %s", self.name, error)
            return Sent.RETRY
        status = result.status_code
        if status is not None and 200 <= status < 400:
            return Sent.DELIVERED
        if status is None or status in _HTTP_RETRYABLE or status >= 500:
            return Sent.RETRY
        _logger.warning("execscope: %s rejected a batch (HTTP %s); its spans are dropped", self.name, status)
        return Sent.REJECTED

    def start(self, payload: bytes, timeout_s: float) -> Pending:
        return Answered(self.send(payload, timeout_s))

    def close(self) -> None:
        try:
            self._exporter.shutdown()
        except Exception as error:  # fail open
            _logger.debug("execscope: closing %s failed: %s", self.name, error)


def _positive(value: object) -> float | None:
    return float(value) if isinstance(value, (int, float)) and value > 0 else None


def transport_for(exporter: SpanExporter) -> Transport | None:
    """A byte transport over ``exporter`` when it is an official OTLP exporter, otherwise None."""
    module = type(exporter).__module__
    try:
        if module.startswith("opentelemetry.exporter.otlp.proto.grpc"):
            return GrpcTransport(exporter)
        if module.startswith("opentelemetry.exporter.otlp.proto.http"):
            return HttpTransport(exporter)
    except AttributeError as error:
        _logger.warning(
            "execscope: %s does not have the members execscope sends through (%s); its spans are "
            "exported the standard way, without the on-disk spool",
            type(exporter).__name__,
            error,
        )
    return None
