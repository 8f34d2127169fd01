"""Builds and installs execscope's tracing pipeline from the effective settings.

Called by the ``opentelemetry_configurator`` entry point (under ``opentelemetry-instrument`` or
``execscope run``) and by :func:`execscope.configure` in code. Every step fails open: whatever
goes wrong is reported once and the program runs as it would without execscope.
"""

from __future__ import annotations

import logging
import os
import sys
import threading
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from opentelemetry import trace
from opentelemetry.sdk.environment_variables import (
    OTEL_RESOURCE_ATTRIBUTES,
    OTEL_SERVICE_NAME,
    OTEL_TRACES_SAMPLER,
)
from opentelemetry.sdk.resources import SERVICE_NAME, Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SpanExporter
from opentelemetry.sdk.trace.sampling import ParentBased, Sampler, TraceIdRatioBased

from execscope._exporters import STORE_EXPORTER, choose_trace_exporters, load_exporter
from execscope._version import __version__
from execscope.processors import install_correlation_propagator
from execscope.processors._build import build_pipeline
from execscope.processors._pipeline import ExecscopeSpanProcessor, Monitor
from execscope.processors._self_metrics import register_self_metrics
from execscope.settings import LoadedSettings, Settings, get_settings, load_settings, use_settings
from execscope.settings._loader import report_problems
from execscope.tracing import ExecscopeTracerProvider

_logger = logging.getLogger(__name__)
_install_lock = threading.Lock()
_installed: TracerProvider | None = None
#: The pipelines built in this process (one per provider), for ``execscope.status()`` and tests.
_pipelines: list[tuple[ExecscopeSpanProcessor, Monitor]] = []

#: Script names that say nothing about the program; the folder name is used instead.
_GENERIC_SCRIPT_NAMES = frozenset(
    {"main", "__main__", "app", "run", "server", "manage", "wsgi", "asgi", "cli"}
)


def install(
    overrides: Mapping[str, Any] | None = None, *, auto_instrumentation_version: str | None = None
) -> bool:
    """Set up tracing once per process. Returns True when execscope's provider is installed."""
    global _installed
    with _install_lock:
        if _installed is not None:
            return True
        try:
            loaded = load_settings(overrides) if overrides else get_settings()
            if overrides:
                use_settings(loaded)
            _apply_log_level(loaded.settings.log_level)
            if not loaded.settings.enabled:
                _logger.info("execscope: disabled by the `enabled` setting; nothing is traced")
                return False
            provider = build_tracer_provider(loaded, os.environ, auto_instrumentation_version)
            if provider is None:
                return False
            trace.set_tracer_provider(provider)
            install_correlation_propagator(os.environ)
            _installed = provider
            if loaded.settings.subprocess_context:
                _continue_parent_context()
            _init_other_signals(provider.resource)
            if loaded.settings.autotrace:
                _install_autotrace(loaded.settings, provider)
            return True
        except Exception:  # fail open: the host program must start whatever happens here
            _logger.warning(
                "execscope: tracing could not be set up; the program runs untraced", exc_info=True
            )
            return False


def _continue_parent_context() -> None:
    """Continue the trace of the process that started this one, from the environment it gave."""
    try:
        from execscope.instrumentors.subprocess import continue_from_environment

        if continue_from_environment(os.environ):
            _logger.debug("execscope: continuing the trace context found in the environment")
    except Exception:  # fail open: the process then starts a trace of its own
        _logger.warning("execscope: the environment's trace context could not be read", exc_info=True)


def build_tracer_provider(
    loaded: LoadedSettings, environ: Mapping[str, str], auto_instrumentation_version: str | None = None
) -> TracerProvider | None:
    settings = loaded.settings
    choice = choose_trace_exporters(environ, settings.store_export)
    report_problems(choice.problems)
    provider = ExecscopeTracerProvider(
        resource=build_resource(environ, auto_instrumentation_version), sampler=_sampler(settings, environ)
    )
    exporters: list[SpanExporter] = [
        exporter for exporter in (load_exporter(name) for name in choice.names) if exporter is not None
    ]
    if choice.store:
        from execscope.store import StoreSpanExporter

        exporters.append(
            StoreSpanExporter(
                settings.store, max_size_mb=settings.store_max_size_mb, max_age_s=settings.store_max_age
            )
        )
    processor, monitor = build_pipeline(
        settings, exporters, service=str(provider.resource.attributes.get(SERVICE_NAME, "unknown"))
    )
    provider.add_span_processor(processor)
    _monitor_autotrace(monitor)
    register_self_metrics(monitor)
    monitor.start()
    _pipelines.append((processor, monitor))
    _logger.debug(
        "execscope: exporting spans to %s",
        ", ".join(choice.names + ([STORE_EXPORTER] if choice.store else [])),
    )
    return provider


def build_resource(environ: Mapping[str, str], auto_instrumentation_version: str | None = None) -> Resource:
    attributes: dict[str, Any] = {
        "telemetry.distro.name": "execscope",
        "telemetry.distro.version": __version__,
    }
    if auto_instrumentation_version:
        attributes["telemetry.auto.version"] = auto_instrumentation_version
    if not environ.get(OTEL_SERVICE_NAME) and "service.name=" not in environ.get(
        OTEL_RESOURCE_ATTRIBUTES, ""
    ):
        # Explicit resource attributes win over the OTEL_* variables in Resource.create, so a
        # derived name is only offered when the user named no service at all.
        attributes[SERVICE_NAME] = program_name()
    return Resource.create(attributes)


def program_name(argv: list[str] | None = None) -> str:
    """A service name from the command line: ``python -m pkg.app`` → pkg.app, ``hello/main.py`` → hello."""
    args = list(getattr(sys, "orig_argv", sys.argv) if argv is None else argv)[1:]
    while args and args[0].startswith("-") and args[0] not in ("-m", "-c"):
        args.pop(0)
    if not args:
        return "python"
    if args[0] == "-m" and len(args) > 2 and args[1] == "execscope.autotrace":
        args = args[2:]  # the script runner of `execscope run script.py`: name the script
    elif args[0] == "-m" and len(args) > 1:
        return str(args[1])
    if args[0] == "-c":
        return "python-c"
    script = Path(args[0])
    if script.stem in _GENERIC_SCRIPT_NAMES and script.resolve().parent.name:
        return script.resolve().parent.name
    return script.stem or "python"


def _sampler(settings: Settings, environ: Mapping[str, str]) -> Sampler | None:
    if environ.get(OTEL_TRACES_SAMPLER):
        return None  # the SDK reads OTEL_TRACES_SAMPLER and its argument itself
    if settings.sample_rate >= 1.0:
        return None
    return ParentBased(TraceIdRatioBased(settings.sample_rate))


def _init_other_signals(resource: Resource) -> None:
    """Metrics and logs keep their standard OTEL_METRICS_EXPORTER / OTEL_LOGS_EXPORTER meaning."""
    try:
        from opentelemetry.sdk._configuration import (
            _get_exporter_names,
            _import_exporters,
            _init_logging,
            _init_metrics,
        )

        metric_names = _get_exporter_names("metrics")
        log_names = _get_exporter_names("logs")
        if not metric_names and not log_names:
            return
        _, metric_exporters, log_exporters = _import_exporters([], metric_names, log_names)
        if metric_exporters:
            _init_metrics(metric_exporters, resource)
        if log_exporters:
            _init_logging(log_exporters, resource, setup_logging_handler=False)
    except Exception as error:  # fail open
        _logger.warning(
            "execscope: metrics/logs exporters could not be set up (%s); those signals are off", error
        )


def _monitor_autotrace(monitor: Monitor) -> None:
    """Count the auto-instrumentor's CPU in execscope's (its recorder thread's, and what recording
    costs the application's threads, estimated on a sample), and in the status its drops and the
    calls that left no span, by reason."""
    from execscope.autotrace._recorder import RECORDER
    from execscope.autotrace._runtime import SLOW_PATH, not_recorded

    monitor.extra_cpu_s = lambda: RECORDER.cpu_s + SLOW_PATH.estimated_s
    monitor.extra_stats = lambda: {
        "recorded_calls": RECORDER.stats.as_dict(),
        "calls_not_recorded": not_recorded(),
    }


def _install_autotrace(settings: Settings, provider: TracerProvider) -> None:
    try:
        from execscope.autotrace import install as install_autotrace

        install_autotrace(settings, provider)
    except Exception:  # fail open: tracing of other instrumentations still works
        _logger.warning(
            "execscope: the auto-instrumentor could not start; functions are not traced", exc_info=True
        )


def _apply_log_level(level: str) -> None:
    logger = logging.getLogger("execscope")
    logger.setLevel(level.upper())
    if level in ("debug", "info") and not logger.handlers:
        handler = logging.StreamHandler()
        handler.setFormatter(logging.Formatter("%(message)s"))
        logger.addHandler(handler)
        logger.propagate = False


def installed_provider() -> TracerProvider | None:
    return _installed


def installed_pipeline() -> tuple[ExecscopeSpanProcessor, Monitor] | None:
    """The pipeline of the provider execscope installed, if any."""
    return _pipelines[-1] if _pipelines else None
