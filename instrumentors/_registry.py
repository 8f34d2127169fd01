"""The list of execscope's instrumentors, and loading all of them after contrib's."""

from __future__ import annotations

import importlib
import logging
import os
from dataclasses import dataclass
from typing import Any, Final

from opentelemetry.instrumentation.dependencies import DependencyConflictError
from opentelemetry.instrumentation.environment_variables import OTEL_PYTHON_DISABLED_INSTRUMENTATIONS

_logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class InstrumentorEntry:
    """One execscope instrumentor: its name, what it extends, and where its class lives."""

    #: Name in ``OTEL_PYTHON_DISABLED_INSTRUMENTATIONS`` (and in log messages).
    name: str
    #: The contrib instrumentation it extends (disabling that one disables this too), if any.
    extends: str | None
    #: ``module:Class`` of a ``BaseInstrumentor`` subclass, imported only when it is loaded.
    target: str

    def load(self) -> Any:
        module_name, _, class_name = self.target.partition(":")
        return getattr(importlib.import_module(module_name), class_name)()


INSTRUMENTORS: Final = (
    InstrumentorEntry("execscope-starlette", None, "execscope.instrumentors.starlette:StarletteInstrumentor"),
    InstrumentorEntry("execscope-flask", "flask", "execscope.instrumentors.flask:FlaskInstrumentor"),
    InstrumentorEntry("execscope-django", "django", "execscope.instrumentors.django:DjangoInstrumentor"),
    InstrumentorEntry("execscope-celery", "celery", "execscope.instrumentors.celery:CeleryInstrumentor"),
    InstrumentorEntry(
        "execscope-redis-pubsub", "redis", "execscope.instrumentors.redis_pubsub:RedisPubSubInstrumentor"
    ),
    InstrumentorEntry("execscope-pykka", None, "execscope.instrumentors.pykka:PykkaInstrumentor"),
    InstrumentorEntry(
        "execscope-subprocess", None, "execscope.instrumentors.subprocess:SubprocessInstrumentor"
    ),
)


def _disabled_names(environ: os._Environ[str] | dict[str, str]) -> set[str]:
    raw = environ.get(OTEL_PYTHON_DISABLED_INSTRUMENTATIONS, "")
    return {name.strip() for name in raw.split(",") if name.strip()}


def _execscope_is_configured() -> bool:
    # Only when execscope set up the tracer provider: with another distro or configurator the
    # user asked for plain OpenTelemetry, and execscope's extras would be a surprise.
    from execscope import _setup

    return _setup.installed_provider() is not None


def instrument_all(*, force: bool = False) -> list[str]:
    """Instrument every library execscope extends that is installed; returns the names loaded.

    The ``opentelemetry_post_instrument`` entry point. Fails open: an instrumentor that cannot
    load is reported in one line and skipped. ``force`` loads them even when execscope did not
    set up tracing (for programs that configure the SDK themselves).
    """
    loaded: list[str] = []
    try:
        if not force and not _execscope_is_configured():
            return loaded
        from execscope.instrumentors._response_header import install_response_propagator

        install_response_propagator()
        disabled = _disabled_names(os.environ)
        for entry in INSTRUMENTORS:
            if entry.name in disabled or (entry.extends is not None and entry.extends in disabled):
                continue
            if _instrument(entry):
                loaded.append(entry.name)
    except Exception:  # fail open: the program runs with whatever instrumentation did load
        _logger.warning("execscope: framework instrumentors could not be loaded", exc_info=True)
    return loaded


def _instrument(entry: InstrumentorEntry) -> bool:
    try:
        instrumentor = entry.load()
        if instrumentor.is_instrumented_by_opentelemetry:
            return True
        instrumentor.instrument(raise_exception_on_conflict=True)
        return bool(instrumentor.is_instrumented_by_opentelemetry)
    except (ModuleNotFoundError, DependencyConflictError) as missing:
        # The library is not installed, or not in a supported version: nothing to extend.
        _logger.debug("execscope: %s not loaded: %s", entry.name, missing)
    except Exception as error:
        _logger.warning(
            "execscope: instrumentor %s failed to load (%s: %s); skipped",
            entry.name,
            type(error).__name__,
            error,
        )
    return False


def uninstrument_all() -> None:
    """Undo :func:`instrument_all` (for tests and for programs that switch tracing off)."""
    for entry in INSTRUMENTORS:
        try:
            instrumentor = entry.load()
        except Exception:
            continue
        if instrumentor.is_instrumented_by_opentelemetry:
            instrumentor.uninstrument()
