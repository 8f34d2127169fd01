"""pykka actors: a span per handled message, a child of the code that sent it.

For every ``pykka.Actor`` (no decorator needed), each message the actor handles becomes a span in
the actor's thread, parented by the span that was current where ``tell``/``ask``/the proxy call
was made, so it is in the sender's trace and has its correlation id. The span is of kind CONSUMER:
the message crossed a mailbox into another thread and is handled asynchronously to its sender.

What each span carries:

* a plain message (``tell``/``ask``, handled by ``on_receive``): span ``"<Class> on_receive"``
  with ``execscope.message``, ``execscope.reply`` and the actor's ``execscope.state.diff``;
* a proxy call (``ref.proxy().add(2)``, which pykka sends as a ``ProxyCall`` message): span
  ``"<Class>.add"`` with the method's ``code.*`` location, ``execscope.args.<name>``,
  ``execscope.return`` and the state diff; proxy attribute reads and writes get
  ``"<Class> get <attr>"``/``"<Class> set <attr>"``;
* a failing handler: an exception event and status ERROR; pykka then hands the same exception to
  the ``ask`` caller (or stops the actor after a ``tell``) exactly as untraced.

Lifecycle hooks (``on_start``, ``on_stop``, ``on_failure``) get no span of their own. How the
context crosses the mailbox is explained in :mod:`._seams`. Disable with
``OTEL_PYTHON_DISABLED_INSTRUMENTATIONS=execscope-pykka``.

Why pykka (and not thespian) is the actor library execscope supports: pykka is maintained (4.5.0
in October 2026), pure Python, widely used (among PyPI's 15,000 most downloaded packages), and its
actors are threads whose state is the actor instance, handling one message at a time: the
GenServer model, where a state diff per message is exactly what a reader wants and the sender's
context can follow the message within one process. thespian's actors live in an ``ActorSystem``
that by default runs them in other processes (messages pickled, state in those processes, out of
reach of the program's tracer); its latest release is 4.0.1 (March 2025) and it is far less used.
"""

from __future__ import annotations

from collections.abc import Collection
from typing import Any, Final

from opentelemetry import trace
from opentelemetry.instrumentation.instrumentor import BaseInstrumentor  # type: ignore[attr-defined]

from execscope._version import __version__

__all__ = ["PykkaInstrumentor"]

_instruments: Final = ("pykka >= 4, < 5",)


class PykkaInstrumentor(BaseInstrumentor):  # type: ignore[misc]  # untyped upstream
    """Traces the messages every pykka actor handles; ``instrument(tracer_provider=...)``.

    Two wrappers, both removed by handle on ``uninstrument()``: the ``Envelope`` that
    ``ActorRef.tell``/``ask`` make (to carry the sender's context) and ``Actor._handle_receive``
    (where every message is dispatched, to make the span).
    """

    # (target, attribute name, wrapt handle) of each wrapper put in place by _instrument.
    _patches: list[tuple[Any, str, Any]]

    def instrumentation_dependencies(self) -> Collection[str]:
        return _instruments

    def _instrument(self, **kwargs: Any) -> None:
        import pykka
        import pykka._ref
        import wrapt

        from execscope.instrumentors.pykka import _seams

        tracer = trace.get_tracer(__name__, __version__, kwargs.get("tracer_provider"))
        self._patches = []
        for target, name, wrapper in (
            (pykka._ref, "Envelope", _seams.make_envelope),
            (pykka.Actor, "_handle_receive", _seams.handle_receive_wrapper(tracer)),
        ):
            self._patches.append((target, name, wrapt.wrap_function_wrapper(target, name, wrapper)))

    def _uninstrument(self, **kwargs: Any) -> None:
        from execscope.instrumentors.actors._span import unwrap

        patches, self._patches = getattr(self, "_patches", []), []
        for target, name, handle in reversed(patches):
            unwrap(target, name, handle)
