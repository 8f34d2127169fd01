"""Chooses the trace exporters: the standard ``OTEL_*`` variables first, the embedded store otherwise.

Unlike the SDK's configurator, an unknown exporter name or OTLP protocol does not abort set-up:
it is reported once and left out, and when nothing usable is left the spans go to the store.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass, field

from opentelemetry.environment_variables import OTEL_TRACES_EXPORTER
from opentelemetry.sdk.environment_variables import (
    OTEL_EXPORTER_OTLP_ENDPOINT,
    OTEL_EXPORTER_OTLP_PROTOCOL,
    OTEL_EXPORTER_OTLP_TRACES_ENDPOINT,
    OTEL_EXPORTER_OTLP_TRACES_PROTOCOL,
)
from opentelemetry.sdk.trace.export import SpanExporter
from opentelemetry.util._importlib_metadata import entry_points

from execscope.settings import Problem

_logger = logging.getLogger(__name__)

STORE_EXPORTER = "execscope_store"
_GROUP = "opentelemetry_traces_exporter"
_OTLP_BY_PROTOCOL = {"grpc": "otlp_proto_grpc", "http/protobuf": "otlp_proto_http"}


@dataclass
class ExporterChoice:
    """The exporter entry-point names to use, whether the store is among them, and what was wrong."""

    names: list[str] = field(default_factory=list)
    store: bool = False
    problems: list[Problem] = field(default_factory=list)


def choose_trace_exporters(environ: Mapping[str, str], store_export: str) -> ExporterChoice:
    choice = ExporterChoice()
    available = {entry.name for entry in entry_points(group=_GROUP)}
    raw = environ.get(OTEL_TRACES_EXPORTER)
    explicit_none = raw is not None and raw.strip().lower() == "none"
    if raw is not None and not explicit_none:
        requested = [name.strip() for name in raw.split(",") if name.strip()]
    elif raw is None and (
        environ.get(OTEL_EXPORTER_OTLP_ENDPOINT) or environ.get(OTEL_EXPORTER_OTLP_TRACES_ENDPOINT)
    ):
        requested = ["otlp"]
    else:
        requested = []

    rejected: list[tuple[str, str]] = []
    for name in requested:
        resolved = _resolve_otlp(name, environ, choice)
        if resolved == STORE_EXPORTER or name == "store":
            choice.store = True
        elif resolved in available:
            if resolved not in choice.names:
                choice.names.append(resolved)
        else:
            rejected.append(
                (name, "no such trace exporter is installed (known: " + ", ".join(sorted(available)) + ")")
            )

    if store_export == "always":
        choice.store = True
    elif store_export == "never":
        choice.store = False
    elif not choice.names and not explicit_none:
        choice.store = True
    fallback = ", ".join(choice.names + ([STORE_EXPORTER] if choice.store else [])) or "no exporter"
    for name, reason in rejected:
        choice.problems.append(Problem(OTEL_TRACES_EXPORTER, name, reason, fallback))
    return choice


def _resolve_otlp(name: str, environ: Mapping[str, str], choice: ExporterChoice) -> str:
    if name != "otlp":
        return name
    variable = OTEL_EXPORTER_OTLP_TRACES_PROTOCOL
    protocol = environ.get(variable)
    if protocol is None:
        variable = OTEL_EXPORTER_OTLP_PROTOCOL
        protocol = environ.get(variable)
    if protocol is None or not protocol.strip():
        return _OTLP_BY_PROTOCOL["grpc"]
    resolved = _OTLP_BY_PROTOCOL.get(protocol.strip().lower())
    if resolved is None:
        choice.problems.append(Problem(variable, protocol, "expected grpc or http/protobuf", "grpc"))
        return _OTLP_BY_PROTOCOL["grpc"]
    return resolved


def load_exporter(name: str) -> SpanExporter | None:
    """Instantiate one exporter by entry-point name; a failure is reported once and yields None."""
    try:
        (entry,) = tuple(entry_points(group=_GROUP, name=name))
        exporter = entry.load()()
    except Exception as error:  # fail open: one broken exporter must not stop the program
        _logger.warning("execscope: trace exporter %r could not be created (%s); it is left out", name, error)
        return None
    if not isinstance(exporter, SpanExporter):
        _logger.warning("execscope: %r is not a span exporter; it is left out", name)
        return None
    return exporter
