"""Task arguments, results and retry counts on opentelemetry-python-contrib's Celery spans.

Contrib's Celery instrumentation makes the publish span (``apply_async/<task>``) and the run span
(``run/<task>``), records a failed task's exception with status ERROR, and carries the trace
context to the worker in the message headers with the global propagator, which under execscope
also carries the correlation id (``x-correlation-id`` and W3C baggage); the worker's spans get
the publisher's trace id and correlation id from there. What it leaves out is what a task was
called with and what it gave back, which is what one needs to understand a failed or slow task.
This instrumentor adds, on contrib's own spans (no spans of its own):

- publish span: the message's arguments, ``execscope.args.0``... and ``execscope.args.<keyword>``;
- run span: the same arguments, ``execscope.return`` when the task succeeded, and
  ``celery.retries`` on every attempt (contrib writes it only from the first retry on).

Values are rendered and redacted like the auto-instrumentor's, and not captured while the
governor sheds values. It extends contrib, so contrib must be instrumented first: its receivers
are then connected before these, and its span is current when these run.
"""

from __future__ import annotations

from collections.abc import Callable, Collection
from typing import Any, Final

from opentelemetry.instrumentation.instrumentor import BaseInstrumentor  # type: ignore[attr-defined]

from execscope.instrumentors.celery._receivers import on_before_task_publish, on_task_prerun, on_task_success

__all__ = ["CeleryInstrumentor"]

_instruments = ("celery >= 5.3, < 6",)

#: Celery signal name → execscope's receiver for it.
_RECEIVERS: Final[tuple[tuple[str, Callable[..., None]], ...]] = (
    ("before_task_publish", on_before_task_publish),
    ("task_prerun", on_task_prerun),
    ("task_success", on_task_success),
)


def _dispatch_uid(signal_name: str) -> str:
    # Connecting by uid makes a second connect a no-op and lets uninstrument remove exactly ours.
    return f"{__name__}.{signal_name}"


class CeleryInstrumentor(BaseInstrumentor):  # type: ignore[misc]  # untyped upstream
    """Adds task arguments, results and retry counts to contrib's Celery spans.

    ``instrument()`` raises if contrib's ``CeleryInstrumentor`` is not instrumented yet: connected
    before contrib's, these receivers would find no contrib span and record nothing.
    """

    def instrumentation_dependencies(self) -> Collection[str]:
        return _instruments

    def _instrument(self, **kwargs: Any) -> None:
        from celery import signals
        from opentelemetry.instrumentation.celery import CeleryInstrumentor as ContribCeleryInstrumentor

        contrib = ContribCeleryInstrumentor()  # type: ignore[no-untyped-call]  # untyped upstream
        if not contrib.is_instrumented_by_opentelemetry:
            raise RuntimeError(
                "execscope-celery extends opentelemetry-instrumentation-celery: instrument that first"
            )
        for name, receiver in _RECEIVERS:
            getattr(signals, name).connect(receiver, weak=False, dispatch_uid=_dispatch_uid(name))

    def _uninstrument(self, **kwargs: Any) -> None:
        from celery import signals

        for name, receiver in _RECEIVERS:
            getattr(signals, name).disconnect(receiver, dispatch_uid=_dispatch_uid(name))
