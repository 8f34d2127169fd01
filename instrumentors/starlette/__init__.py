"""Web requests and WebSocket messages of Starlette and FastAPI applications, beyond contrib.

Contrib's FastAPI/Starlette instrumentation (ASGI middleware) makes the request's server span.
This instrumentor wraps the application's router, the innermost ASGI layer, where the route is
known, and adds to that span the handler's code location, the query and path parameters, the
JSON or form body and the response size (:mod:`._http`); for WebSocket connections it makes one
span per message received and sent (:mod:`._websocket`). With no recording server span around
a request (no contrib instrumentation, or the request not sampled) it does nothing.

The correlation id goes back to the client in the ``x-correlation-id`` response header, written
by the response propagator execscope installs for every contrib server instrumentation.
"""

from __future__ import annotations

import contextvars
import logging
from collections.abc import Collection
from typing import Any, Final

from opentelemetry import trace
from opentelemetry.instrumentation.instrumentor import BaseInstrumentor  # type: ignore[attr-defined]

from execscope._version import __version__
from execscope.instrumentors._failsafe import internal_error
from execscope.instrumentors._patches import Patch, unwrap_all, wrap_all
from execscope.instrumentors.starlette._http import HttpExchange
from execscope.instrumentors.starlette._websocket import TracedReceive, WebSocketSession
from execscope.settings import get_settings

__all__ = ["StarletteInstrumentor"]

_logger = logging.getLogger(__name__)
_instruments: Final = ("starlette >= 0.37",)
#: Set while a request is inside an outer router's capture (a mounted app has a router of its
#: own); a context variable rather than a scope key, so the application's scope is unchanged.
_IN_REQUEST: Final = contextvars.ContextVar("execscope_in_request", default=False)


class StarletteInstrumentor(BaseInstrumentor):  # type: ignore[misc]  # untyped upstream
    """Adds request content and WebSocket message spans to contrib's ASGI server spans."""

    # BaseInstrumentor is a singleton whose __init__ runs at every construction: the patch handles
    # are kept from _instrument to _uninstrument as a class attribute, replaced, never cleared early.
    _handles: list[Patch] = []

    def instrumentation_dependencies(self) -> Collection[str]:
        return _instruments

    def _instrument(self, **kwargs: Any) -> None:
        import starlette.endpoints
        import starlette.routing

        tracer = trace.get_tracer(__name__, __version__, kwargs.get("tracer_provider"))
        settings = get_settings().settings
        router_wrapper = _RouterWrapper(tracer, settings.http_capture_body, settings.websocket_preview)
        StarletteInstrumentor._handles = wrap_all(
            [
                (starlette.routing.Router, "__call__", router_wrapper),
                (starlette.endpoints.WebSocketEndpoint, "__init__", _remember_handler),
            ]
        )

    def _uninstrument(self, **kwargs: Any) -> None:
        unwrap_all(StarletteInstrumentor._handles)
        StarletteInstrumentor._handles = []


class _RouterWrapper:
    """``Router.__call__`` with the request's capture around it."""

    def __init__(self, tracer: trace.Tracer, body_limit: int, preview: int) -> None:
        self._tracer = tracer
        self._body_limit = body_limit
        self._preview = preview

    def __call__(self, wrapped: Any, instance: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
        return self._call(wrapped, *args, **kwargs)

    async def _call(self, wrapped: Any, scope: Any, receive: Any, send: Any) -> None:
        exchange: HttpExchange | WebSocketSession | None = None
        try:
            exchange = self._begin(scope)
            if exchange is not None:
                receive, send = exchange.receive(receive), exchange.send(send)
        except Exception:
            internal_error("request capture start")
        if exchange is None:
            return await wrapped(scope, receive, send)  # type: ignore[no-any-return]
        token = _IN_REQUEST.set(True)
        try:
            await wrapped(scope, receive, send)
        except BaseException as error:
            if isinstance(exchange, HttpExchange):
                exchange.failed(error)
            raise
        finally:
            _IN_REQUEST.reset(token)
            if isinstance(exchange, WebSocketSession):
                exchange.finish()

    def _begin(self, scope: Any) -> HttpExchange | WebSocketSession | None:
        kind = scope.get("type")
        if kind not in ("http", "websocket") or _IN_REQUEST.get():
            return None
        span = trace.get_current_span()
        if not span.is_recording():
            return None
        if kind == "http":
            return HttpExchange(span, scope, self._body_limit)
        return WebSocketSession(self._tracer, scope, self._preview)


def _remember_handler(wrapped: Any, instance: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
    """``WebSocketEndpoint.__init__``: tell the connection's session which object handles it."""
    result = wrapped(*args, **kwargs)
    try:
        receive = args[1] if len(args) > 1 else kwargs.get("receive")
        if isinstance(receive, TracedReceive):
            receive.session.handler = instance
    except Exception:
        internal_error("websocket handler lookup")
    return result
