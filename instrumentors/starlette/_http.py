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

import functools
import json
import os
import types
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any, Final
from urllib.parse import parse_qsl

from opentelemetry.semconv._incubating.attributes.http_attributes import HTTP_RESPONSE_BODY_SIZE
from opentelemetry.trace import Span

from execscope.attributes import ERROR_FRAME, HTTP_PATH_PREFIX, HTTP_QUERY_PREFIX, HTTP_REQUEST_BODY
from execscope.instrumentors._capture import (
    arguments_attributes,
    code_attributes,
    render_value,
    values_allowed,
)
from execscope.instrumentors._failsafe import internal_error

Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]

_JSON: Final = "application/json"
_FORM: Final = "application/x-www-form-urlencoded"


@functools.lru_cache(maxsize=1024)
def _cached_location(endpoint: Any) -> dict[str, str | int]:
    return code_attributes(endpoint)


def _handler_location(endpoint: Any) -> dict[str, str | int]:
    try:
        return _cached_location(endpoint)
    except TypeError:  # an unhashable endpoint object
        return code_attributes(endpoint)


def _content_type(scope: Message) -> str | None:
    for name, value in scope.get("headers") or ():
        if name == b"content-type":
            kind: bytes = value.split(b";", 1)[0].strip().lower()
            return kind.decode("latin-1")
    return None


def _parsed_body(kind: str, body: bytes) -> object:
    if kind == _JSON:
        return json.loads(body)
    return dict(parse_qsl(body.decode("utf-8", "replace"), keep_blank_values=True))


@functools.lru_cache(maxsize=1)
def _library_folders() -> tuple[str, ...]:
    # The auto-instrumentor's own rule for "not the application's" (standard library,
    # site-packages, execscope), imported on the error path only.
    from execscope.autotrace._selection import installed_dirs

    return tuple(folder.rstrip(os.sep) + os.sep for folder in installed_dirs())


def application_frame(traceback: types.TracebackType | None) -> str | None:
    """``file:line in function`` of the innermost traceback frame outside installed packages,
    the standard library and execscope: where the application's own code raised (or called what
    raised)."""
    folders = _library_folders()
    found = None
    while traceback is not None:
        code = traceback.tb_frame.f_code
        if not code.co_filename.startswith("<"):
            path = os.path.normcase(os.path.realpath(code.co_filename))
            if not path.startswith(folders):
                name = getattr(code, "co_qualname", code.co_name)  # co_qualname: Python 3.11+
                found = f"{code.co_filename}:{traceback.tb_lineno} in {name}"
        traceback = traceback.tb_next
    return found


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
            if kind in (_JSON, _FORM):
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
            self._span.set_attribute(
                HTTP_REQUEST_BODY, f"<body over the {self._body_limit}-byte capture limit: {size}+ bytes>"
            )
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
            value = _parsed_body(kind, body)
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
            self._span.set_attributes(_handler_location(endpoint))
        path_params = scope.get("path_params")
        if path_params and values_allowed():
            self._span.set_attributes(arguments_attributes(path_params, HTTP_PATH_PREFIX))
