"""Framework instrumentors execscope adds where opentelemetry-python-contrib has none.

Each sub-package extends one library with what its contrib instrumentation does not record
(request bodies and handler locations, WebSocket messages, task arguments and results, pub/sub
receipt, actor messages and state), as a ``BaseInstrumentor`` with symmetric
``instrument()``/``uninstrument()`` and its supported versions declared.

Under ``opentelemetry-instrument`` or ``execscope run`` they are loaded by the
``opentelemetry_post_instrument`` entry point :func:`instrument_all`, after every contrib
instrumentation, so an extension always finds its contrib counterpart already in place. They
honour ``OTEL_PYTHON_DISABLED_INSTRUMENTATIONS`` by their own name (``execscope-celery``...) and
by their counterpart's (``celery``...).
"""

from execscope.instrumentors._registry import (
    INSTRUMENTORS,
    InstrumentorEntry,
    instrument_all,
    uninstrument_all,
)

__all__ = ["INSTRUMENTORS", "InstrumentorEntry", "instrument_all", "uninstrument_all"]
