"""One WebSocket connection's messages as spans (the analogue of Phoenix Channel events).

Contrib's ASGI middleware makes the connection span (it lasts as long as the connection). Its
per-event spans (one per ASGI ``send``/``receive``, handshakes included) are switched off by the
distro, and this adds one span per *message* instead:

- ``<route> receive``: from the moment a message arrives until the handler asks for the next
  one, so what the handler does with the message (queries, tasks, replies) is its children.
  It carries a preview of the message and, for a class-based handler (Starlette's
  ``WebSocketEndpoint``), the diff of the handler object's state while handling it.
- ``<route> send``: one per message sent, with its preview.

The receive span is made current by attaching it to the handler task's context inside
``receive()`` and detached at the next ``receive()``: an ``await`` runs in its caller's context,
so that is the handler's context. It is only detached from the task that attached it.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

from opentelemetry import context, trace
from opentelemetry.trace import SpanKind, Status, StatusCode, Tracer

from execscope.attributes import MESSAGE
from execscope.instrumentors._capture import StateWatch, render_value, values_allowed
from execscope.instrumentors._failsafe import internal_error

Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]


def _payload(message: Message) -> object:
    text = message.get("text")
    return text if text is not None else message.get("bytes")


def _current_task() -> asyncio.Task[Any] | None:
    try:
        return asyncio.current_task()
    except RuntimeError:
        return None


class _OpenMessage:
    __slots__ = ("span", "task", "token", "watch")

    def __init__(self, span: trace.Span, token: object, watch: StateWatch | None) -> None:
        self.span = span
        self.token = token
        self.task = _current_task()
        self.watch = watch


class WebSocketSession:
    """The message spans of one connection; lives with the connection (in its router call)."""

    def __init__(self, tracer: Tracer, scope: Message, preview: int) -> None:
        self._tracer = tracer
        self._scope = scope
        self._preview = preview
        self._open: _OpenMessage | None = None
        #: The class-based handler object of the connection, once it is created.
        self.handler: object | None = None

    def receive(self, receive: Receive) -> TracedReceive:
        return TracedReceive(self, receive)

    def send(self, send: Send) -> Send:
        async def traced_send(message: Message) -> None:
            span = None
            try:
                if message.get("type") == "websocket.send":
                    span = self._tracer.start_span(
                        f"{self._route()} send", kind=SpanKind.PRODUCER, attributes=self._preview_of(message)
                    )
            except Exception:
                internal_error("websocket send span")
            if span is None:
                await send(message)
                return
            try:
                await send(message)
            except BaseException as error:
                span.record_exception(error)
                span.set_status(Status(StatusCode.ERROR, f"{type(error).__name__}: {error}"))
                raise
            finally:
                span.end()

        return traced_send

    def finish(self) -> None:
        """The connection's handler returned: close the message span still open."""
        try:
            self._end_message()
        except Exception:
            internal_error("websocket message end")

    def message_arrived(self, message: Message) -> None:
        if message.get("type") != "websocket.receive":
            return
        span = self._tracer.start_span(
            f"{self._route()} receive", kind=SpanKind.CONSUMER, attributes=self._preview_of(message)
        )
        watch = StateWatch(self.handler) if self.handler is not None else None
        token = context.attach(trace.set_span_in_context(span))
        self._open = _OpenMessage(span, token, watch)

    def _end_message(self) -> None:
        current, self._open = self._open, None
        if current is None:
            return
        if current.watch is not None:
            current.span.set_attributes(current.watch.diff_attributes())
        current.span.end()
        if current.task is _current_task() and trace.get_current_span() is current.span:
            context.detach(current.token)  # type: ignore[arg-type]

    def _route(self) -> str:
        route = self._scope.get("route")
        path = getattr(route, "path", None)
        return str(path) if isinstance(path, str) else str(self._scope.get("path", "websocket"))

    def _preview_of(self, message: Message) -> dict[str, str]:
        if self._preview <= 0 or not values_allowed():
            return {}
        return {MESSAGE: render_value(_payload(message), cap=self._preview)}


class TracedReceive:
    """The ``receive`` a WebSocket handler gets: ends the previous message's span, then starts the
    next one's. A class, so a handler object created with it can be found (``session``)."""

    __slots__ = ("_receive", "session")

    def __init__(self, session: WebSocketSession, receive: Receive) -> None:
        self.session = session
        self._receive = receive

    async def __call__(self) -> Message:
        self.session.finish()
        message = await self._receive()
        try:
            self.session.message_arrived(message)
        except Exception:
            internal_error("websocket message span")
        return message
