"""The tracer provider the distro installs."""

from __future__ import annotations

import logging

from opentelemetry import trace as trace_api
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.util import types

from execscope.tracing._tracer import ExecscopeTracer, can_speed_up

_logger = logging.getLogger(__name__)


class ExecscopeTracerProvider(TracerProvider):
    """The SDK's ``TracerProvider`` (same constructor, samplers, limits, processors, tracer
    configuration) whose tracers make ``ExecscopeSpan`` objects.

    The SDK builds, configures and caches each tracer, and re-configures the cached object when
    the tracer configuration changes; so the tracer it returns is kept and only given
    :class:`ExecscopeTracer`'s methods (a subclass adding no fields). An SDK release whose
    tracers this does not know keeps its own tracers, said once at debug level.
    """

    _reported_unknown_sdk = False

    def get_tracer(
        self,
        instrumenting_module_name: str,
        instrumenting_library_version: str | None = None,
        schema_url: str | None = None,
        attributes: types.Attributes = None,
    ) -> trace_api.Tracer:
        tracer = super().get_tracer(
            instrumenting_module_name, instrumenting_library_version, schema_url, attributes
        )
        if can_speed_up(tracer):
            tracer.__class__ = ExecscopeTracer
        elif type(tracer) is not ExecscopeTracer and not ExecscopeTracerProvider._reported_unknown_sdk:
            ExecscopeTracerProvider._reported_unknown_sdk = True
            _logger.debug("execscope: %s is not a tracer it knows; spans are the SDK's", type(tracer))
        return tracer
