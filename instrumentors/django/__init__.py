"""Web requests of Django applications, beyond contrib.

Contrib's Django instrumentation makes the request's server span (its middleware, first in
``MIDDLEWARE``, starts it when the request comes in and ends it with the response) and records
the route and status. This instrumentor adds to that span what the request *was*
(:mod:`._request`): the view's code location, the URL's and the query's parameters, the JSON or
form body the application read, the response size and, for an exception a view raised, the
application frame it was raised in. It wraps Django's request handler where the view is
called (``BaseHandler._get_response`` and its async twin), inside every middleware. With no
recording server span around a request (no contrib instrumentation, or the request not sampled)
it does nothing.

The correlation id goes back to the client in the ``x-correlation-id`` response header, written
by the response propagator execscope installs for every contrib server instrumentation.
"""

from __future__ import annotations

from collections.abc import Collection
from typing import Any, Final

from opentelemetry.instrumentation.instrumentor import BaseInstrumentor  # type: ignore[attr-defined]

from execscope.instrumentors._patches import Patch, unwrap_all, wrap_all
from execscope.instrumentors.django._request import RequestCapture
from execscope.settings import get_settings

__all__ = ["DjangoInstrumentor"]

_instruments: Final = ("django >= 4.2",)


class DjangoInstrumentor(BaseInstrumentor):  # type: ignore[misc]  # untyped upstream
    """Adds request content to contrib's Django server spans."""

    # BaseInstrumentor is a singleton whose __init__ runs at every construction: the patch handles
    # are kept from _instrument to _uninstrument as a class attribute, replaced, never cleared early.
    _handles: list[Patch] = []

    def instrumentation_dependencies(self) -> Collection[str]:
        return _instruments

    def _instrument(self, **kwargs: Any) -> None:
        from django.core.handlers.base import BaseHandler

        capture = RequestCapture(get_settings().settings.http_capture_body)
        DjangoInstrumentor._handles = wrap_all(
            [
                (BaseHandler, "_get_response", capture.dispatched),
                (BaseHandler, "_get_response_async", capture.dispatched_async),
                (BaseHandler, "process_exception_by_middleware", capture.error_seen),
            ]
        )

    def _uninstrument(self, **kwargs: Any) -> None:
        unwrap_all(DjangoInstrumentor._handles)
        DjangoInstrumentor._handles = []
