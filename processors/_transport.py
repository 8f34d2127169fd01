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
from enum import Enum
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


class Transport(Protocol):
    """Delivers one encoded ``ExportTraceServiceRequest``, in one attempt (no retries inside)."""

    name: str

    def send(self, payload: bytes, timeout_s: float) -> Sent: ...

    def close(self) -> None: ...


class GrpcTransport:
    def __init__(self, exporter: Any) -> None:
        self._exporter = exporter
        self.name = f"OTLP/gRPC {exporter._endpoint}"
        self._call = self._bind()

    def _bind(self) -> Any:
        # Bytes in, no deserialising of the (empty) response: grpcio passes ``bytes`` through
        # when no serializer is given.
        return self._exporter._channel.unary_unary(_GRPC_METHOD)

    def send(self, payload: bytes, timeout_s: float) -> Sent:
        import grpc

        try:
            self._call(payload, metadata=self._exporter._headers or None, timeout=timeout_s)
            return Sent.DELIVERED
        except grpc.RpcError as error:
            code = error.code() if callable(getattr(error, "code", None)) else None
            _logger.debug("execscope: %s did not take a batch: %s", self.name, code)
            if code == grpc.StatusCode.UNAVAILABLE:
                self._reconnect()
            if code is None or code.name in _GRPC_RETRYABLE:
                return Sent.RETRY
            _logger.warning(
                "execscope: %s rejected a batch (%s); its spans are dropped", self.name, code.name
            )
            return Sent.REJECTED

    def _reconnect(self) -> None:
        # A channel that saw the server go away backs off reconnecting for up to minutes; a new
        # one connects at the next probe (the official exporter does the same on UNAVAILABLE).
        try:
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


class HttpTransport:
    def __init__(self, exporter: Any) -> None:
        self._exporter = exporter
        self.name = f"OTLP/HTTP {exporter._endpoint}"

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

    def close(self) -> None:
        try:
            self._exporter.shutdown()
        except Exception as error:  # fail open
            _logger.debug("execscope: closing %s failed: %s", self.name, error)


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
