"""Web requests of Flask applications, beyond contrib.

Contrib's Flask instrumentation makes the request's server span (started by a
``before_request`` hook, ended at the request's teardown) and records the route and status.
This instrumentor adds to that span what the request *was* (:mod:`._request`): the handler's
code location, the query and path parameters, the JSON or form body the application read, the
response size and, for an unhandled error, the application frame it was raised in. It patches
``flask.app.Flask`` (the class contrib's instrumentation subclasses, so applications made before
and after contrib's patch are both covered). With no recording server span around a request (no
contrib instrumentation, or the request not sampled) it does nothing.

The correlation id goes back to the client in the ``x-correlation-id`` response header, written
by the response propagator execscope installs for every contrib server instrumentation.
"""

from __future__ import annotations

from collections.abc import Collection
from typing import Any, Final

from opentelemetry.instrumentation.instrumentor import BaseInstrumentor  # type: ignore[attr-defined]

from execscope.instrumentors._patches import Patch, unwrap_all, wrap_all
from execscope.instrumentors.flask._request import RequestCapture
from execscope.settings import get_settings

__all__ = ["FlaskInstrumentor"]

_instruments: Final = ("flask >= 2.2",)


class FlaskInstrumentor(BaseInstrumentor):  # type: ignore[misc]  # untyped upstream
    """Adds request content to contrib's Flask server spans."""

    # BaseInstrumentor is a singleton whose __init__ runs at every construction: the patch handles
    # are kept from _instrument to _uninstrument as a class attribute, replaced, never cleared early.
    _handles: list[Patch] = []

    def instrumentation_dependencies(self) -> Collection[str]:
        return _instruments

    def _instrument(self, **kwargs: Any) -> None:
        import flask.app

        capture = RequestCapture(get_settings().settings.http_capture_body)
        FlaskInstrumentor._handles = wrap_all(
            [
                (flask.app.Flask, "full_dispatch_request", capture.dispatched),
                (flask.app.Flask, "handle_user_exception", capture.error_seen),
            ]
        )

    def _uninstrument(self, **kwargs: Any) -> None:
        unwrap_all(FlaskInstrumentor._handles)
        FlaskInstrumentor._handles = []
