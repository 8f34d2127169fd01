"""One HTTP request's capture: what contrib's ASGI server span lacks.

Contrib's ASGI middleware (under the FastAPI or Starlette instrumentation) makes the server
span, names it by route and records the status. The request's *content* is added here, from
inside the application's router, where the route has been matched:

- the handler's code location (``code.*``, as the auto-instrumentor writes them);
- query and path parameters (``execscope.http.query.<name>``, ``execscope.http.path.<name>``);
- JSON and form bodies up to ``http_capture_body`` bytes (``execscope.http.request.body``);
- the response body size (``http.response.body.size``);
- for an unhandled error, the application frame it was raised in (``execscope.error.frame``).

Values go through the capture renderer, so sensitive names (``password=``, ``"token": ...``)
are redacted before they are set. Everything is set before the response's last body message
is passed on, because contrib ends the server span when that message is sent.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any
from urllib.parse import parse_qsl

from opentelemetry.semconv._incubating.attributes.http_attributes import HTTP_RESPONSE_BODY_SIZE
from opentelemetry.trace import Span

from execscope.attributes import ERROR_FRAME, HTTP_PATH_PREFIX, HTTP_QUERY_PREFIX, HTTP_REQUEST_BODY
from execscope.instrumentors._capture import arguments_attributes, render_value, values_allowed
from execscope.instrumentors._failsafe import internal_error
from execscope.instrumentors._web import (
    FORM,
    JSON,
    application_frame,
    body_over_limit,
    handler_location,
    parsed_body,
)

Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]


def _content_type(scope: Message) -> str | None:
    for name, value in scope.get("headers") or ():
        if name == b"content-type":
            kind: bytes = value.split(b";", 1)[0].strip().lower()
            return kind.decode("latin-1")
    return None


class HttpExchange:
    """The capture state of one request; lives with the request (in its router call)."""

    __slots__ = ("_body", "_body_kind", "_body_limit", "_response_size", "_scope", "_span", "_started")

    def __init__(self, span: Span, scope: Message, body_limit: int) -> None:
        self._span = span
        self._scope = scope
        self._response_size = 0
        self._started = False
        self._body = bytearray()
        self._body_limit = body_limit
        self._body_kind: str | None = None
        if body_limit > 0 and values_allowed():
            kind = _content_type(scope)
            if kind in (JSON, FORM):
                self._body_kind = kind
        query = scope.get("query_string")
        if query and values_allowed():
            self._span.set_attributes(
                arguments_attributes(dict(parse_qsl(query.decode("latin-1"))), HTTP_QUERY_PREFIX)
            )

    def receive(self, receive: Receive) -> Receive:
        """``receive`` itself, or a wrapper that keeps a copy of a body worth capturing."""
        if self._body_kind is None:
            return receive

        async def capturing_receive() -> Message:
            message = await receive()
            try:
                self._on_request_message(message)
            except Exception:
                internal_error("request body capture")
            return message

        return capturing_receive

    def send(self, send: Send) -> Send:
        async def measuring_send(message: Message) -> None:
            try:
                self._on_response_message(message)
            except Exception:
                internal_error("response capture")
            await send(message)

        return measuring_send

    def failed(self, error: BaseException) -> None:
        """An exception escaped the application: note where, and what the request was.

        An ``HTTPException`` is the application answering (a 404, a 409), not failing: it gets
        no error frame, and its status code decides whether the span is an error.
        """
        try:
            self._describe_route()
            from starlette.exceptions import HTTPException

            if isinstance(error, HTTPException):
                return
            frame = application_frame(error.__traceback__)
            if frame is not None:
                self._span.set_attribute(ERROR_FRAME, frame)
        except Exception:
            internal_error("request error capture")

    def _on_request_message(self, message: Message) -> None:
        if message.get("type") != "http.request" or self._body_kind is None:
            return
        chunk = message.get("body", b"")
        if len(self._body) + len(chunk) > self._body_limit:
            size = len(self._body) + len(chunk)
            self._span.set_attribute(HTTP_REQUEST_BODY, body_over_limit(self._body_limit, size))
            self._body_kind = None
            self._body = bytearray()
            return
        self._body += chunk
        if not message.get("more_body", False):
            self._capture_body(self._body_kind, bytes(self._body))
            self._body_kind = None

    def _capture_body(self, kind: str, body: bytes) -> None:
        if not body:
            return
        try:
            value = parsed_body(kind, body)
        except ValueError:
            value = body  # not valid JSON: recorded as the bytes it is, still bounded and masked
        self._span.set_attribute(HTTP_REQUEST_BODY, render_value(value))

    def _on_response_message(self, message: Message) -> None:
        kind = message.get("type")
        if kind == "http.response.start":
            self._describe_route()
        elif kind == "http.response.body":
            self._response_size += len(message.get("body", b""))
            if not message.get("more_body", False):
                self._span.set_attribute(HTTP_RESPONSE_BODY_SIZE, self._response_size)

    def _describe_route(self) -> None:
        if self._started:
            return
        self._started = True
        scope = self._scope
        endpoint = scope.get("endpoint")
        if endpoint is not None:
            self._span.set_attributes(handler_location(endpoint))
        path_params = scope.get("path_params")
        if path_params and values_allowed():
            self._span.set_attributes(arguments_attributes(path_params, HTTP_PATH_PREFIX))
