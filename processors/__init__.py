"""execscope's span pipeline: correlation, tail sampling, redaction, governed and spooled export.

The decision rules (``_decision``, ``_redaction``, ``_correlation``) are shared with the
collector plugin (``collector_plugin``), so a collector decides exactly as the process would.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping

from opentelemetry import propagate
from opentelemetry.propagators.composite import CompositePropagator
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

from execscope.processors._correlation import (
    HEADER,
    CorrelationPropagator,
    current_correlation_id,
    new_correlation_id,
)
from execscope.processors._decision import TailPolicy, TraceFacts, Verdict, decide, rate_keeps
from execscope.processors._governor import SHEDDING, Budgets, Governor, Level
from execscope.processors._stats import DropReason, PipelineStats

_logger = logging.getLogger(__name__)

#: The ``OTEL_PROPAGATORS`` name of the correlation propagator (an ``opentelemetry_propagator`` entry point).
PROPAGATOR_NAME = "execscope_correlation"


def install_correlation_propagator(environ: Mapping[str, str]) -> None:
    """Use W3C trace context plus the correlation propagator, unless ``OTEL_PROPAGATORS`` says otherwise.

    The correlation propagator also carries W3C baggage, so the default is the SDK's
    ``tracecontext,baggage`` with the correlation id added to both directions.
    """
    configured = environ.get("OTEL_PROPAGATORS")
    if configured is not None:
        if PROPAGATOR_NAME not in configured:
            _logger.info(
                "execscope: OTEL_PROPAGATORS=%s does not include %s; correlation ids are not propagated "
                "to other services",
                configured,
                PROPAGATOR_NAME,
            )
        return
    propagate.set_global_textmap(
        CompositePropagator([TraceContextTextMapPropagator(), CorrelationPropagator()])
    )


__all__ = [
    "HEADER",
    "PROPAGATOR_NAME",
    "SHEDDING",
    "Budgets",
    "CorrelationPropagator",
    "DropReason",
    "Governor",
    "Level",
    "PipelineStats",
    "TailPolicy",
    "TraceFacts",
    "Verdict",
    "current_correlation_id",
    "decide",
    "install_correlation_propagator",
    "new_correlation_id",
    "rate_keeps",
]
