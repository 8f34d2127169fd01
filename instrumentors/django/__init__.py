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

import wrapt
from opentelemetry.instrumentation.instrumentor import BaseInstrumentor  # type: ignore[attr-defined]

from execscope.instrumentors.django._request import RequestCapture
from execscope.settings import get_settings

__all__ = ["DjangoInstrumentor"]

_instruments: Final = ("django >= 4.2",)


class DjangoInstrumentor(BaseInstrumentor):  # type: ignore[misc]  # untyped upstream
    """Adds request content to contrib's Django server spans."""

    # BaseInstrumentor is a singleton whose __init__ runs at every construction: the patch handles
    # are kept from _instrument to _uninstrument as a class attribute, replaced, never cleared early.
    _handles: list[tuple[Any, str, Any]] = []

    def instrumentation_dependencies(self) -> Collection[str]:
        return _instruments

    def _instrument(self, **kwargs: Any) -> None:
        from django.core.handlers.base import BaseHandler

        capture = RequestCapture(get_settings().settings.http_capture_body)
        DjangoInstrumentor._handles = [
            (BaseHandler, name, wrapt.wrap_function_wrapper(BaseHandler, name, wrapper))
            for name, wrapper in (
                ("_get_response", capture.dispatched),
                ("_get_response_async", capture.dispatched_async),
                ("process_exception_by_middleware", capture.error_seen),
            )
        ]

    def _uninstrument(self, **kwargs: Any) -> None:
        for owner, name, handle in DjangoInstrumentor._handles:
            wrapt.unwrap_object(owner, name, handle, missing_ok=True)
        DjangoInstrumentor._handles = []
