"""The correlation id in every HTTP response: ``x-correlation-id``.

Contrib's server instrumentations (ASGI, WSGI, Flask, Django, Falcon, Tornado...) hand each
response's headers to the process's *response propagator* with the server span's context, also for
responses written by an error handler. execscope installs one that writes the request's
correlation id there, so a user who got an error page can quote the id that finds its trace
(``execscope query --correlation-id``). A response propagator the program set itself still runs.
"""

from __future__ import annotations

import logging

from opentelemetry.context import Context
from opentelemetry.instrumentation import propagators
from opentelemetry.propagators import textmap

from execscope.processors import current_correlation_id
from execscope.processors._correlation import HEADER

_logger = logging.getLogger(__name__)
_EXPOSE_HEADERS = "Access-Control-Expose-Headers"


class CorrelationResponsePropagator(propagators.ResponsePropagator):
    """Writes ``x-correlation-id`` (and exposes it to browser scripts), then runs ``inner``."""

    def __init__(self, inner: propagators.ResponsePropagator | None = None) -> None:
        self.inner = inner

    def inject(
        self,
        carrier: textmap.CarrierT,
        context: Context | None = None,
        setter: textmap.Setter[textmap.CarrierT] = textmap.default_setter,
    ) -> None:
        try:
            correlation_id = current_correlation_id(context)
            if correlation_id is not None:
                setter.set(carrier, HEADER, correlation_id)
                setter.set(carrier, _EXPOSE_HEADERS, HEADER)
        except Exception:  # fail open: a response always goes out
            _logger.debug("execscope: correlation header not written", exc_info=True)
        if self.inner is not None:
            self.inner.inject(carrier, context, setter)


def install_response_propagator() -> None:
    """Make :class:`CorrelationResponsePropagator` the process's response propagator (once)."""
    current = propagators.get_global_response_propagator()  # type: ignore[no-untyped-call]
    if isinstance(current, CorrelationResponsePropagator):
        return
    propagators.set_global_response_propagator(CorrelationResponsePropagator(current))  # type: ignore[no-untyped-call]


def uninstall_response_propagator() -> None:
    """Restore the response propagator that was there before :func:`install_response_propagator`."""
    current = propagators.get_global_response_propagator()  # type: ignore[no-untyped-call]
    if isinstance(current, CorrelationResponsePropagator):
        propagators.set_global_response_propagator(current.inner)  # type: ignore[no-untyped-call]
