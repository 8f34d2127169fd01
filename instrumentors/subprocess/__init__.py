"""Child processes: the trace context and correlation id travel in their environment.

``subprocess.Popen`` (and so ``subprocess.run``/``check_output``/…, and asyncio's subprocesses)
starts each child with the current trace context written into its environment as
``TRACEPARENT``/``TRACESTATE``/``BAGGAGE`` (the OpenTelemetry specification's environment
carriers) plus whatever else the configured propagators write, such as ``X_CORRELATION_ID``.
The caller's ``env`` mapping is never changed (the child gets a copy), and a variable the caller
set explicitly in it is kept. When no span is current and there is no baggage, nothing is added.

A child that runs under execscope (or any OpenTelemetry SDK that reads these variables) continues
the trace at start-up: its root spans are children of the span that was current where the child
was started, and share its correlation id. Not covered: ``os.system``, the ``os.exec*`` and
``os.spawn*`` families, and ``multiprocessing``'s spawn start method (forked children already run
in the parent's context). The ``subprocess_context`` setting turns both directions off; so does
``OTEL_PYTHON_DISABLED_INSTRUMENTATIONS=execscope-subprocess`` for the writing side.
"""

from __future__ import annotations

import subprocess
from collections.abc import Callable, Collection
from typing import Any, Final

from opentelemetry.instrumentation.instrumentor import BaseInstrumentor  # type: ignore[attr-defined]

from execscope.instrumentors._failsafe import internal_error
from execscope.instrumentors.subprocess._environment import (
    child_environment,
    context_variables,
    continue_from_environment,
)

__all__ = ["SubprocessInstrumentor", "continue_from_environment"]

#: ``env``'s position among ``Popen``'s parameters (args, bufsize, executable, stdin, stdout,
#: stderr, preexec_fn, close_fds, shell, cwd, env, ...).
_ENV_POSITION: Final = 10


def _with_context(
    wrapped: Callable[..., None], instance: Any, args: tuple[Any, ...], kwargs: dict[str, Any]
) -> None:
    try:
        variables = context_variables()
        if variables:
            if len(args) > _ENV_POSITION:
                env = child_environment(args[_ENV_POSITION], variables)
                args = (*args[:_ENV_POSITION], env, *args[_ENV_POSITION + 1 :])
            else:
                kwargs = {**kwargs, "env": child_environment(kwargs.get("env"), variables)}
    except Exception:
        internal_error("subprocess: the child's environment")
    wrapped(*args, **kwargs)


class SubprocessInstrumentor(BaseInstrumentor):  # type: ignore[misc]  # untyped upstream
    """Writes the current trace context into every ``subprocess.Popen`` child's environment."""

    _handle: Any = None

    def instrumentation_dependencies(self) -> Collection[str]:
        return ()

    def _instrument(self, **kwargs: Any) -> None:
        import wrapt

        from execscope.settings import get_settings

        if not get_settings().settings.subprocess_context:
            return
        self._handle = wrapt.wrap_function_wrapper(subprocess.Popen, "__init__", _with_context)

    def _uninstrument(self, **kwargs: Any) -> None:
        from execscope.instrumentors.actors._span import unwrap

        handle, self._handle = self._handle, None
        if handle is not None:
            unwrap(subprocess.Popen, "__init__", handle)
