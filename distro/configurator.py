"""The ``opentelemetry_configurator`` entry point: ``OTEL_PYTHON_CONFIGURATOR=execscope``."""

from __future__ import annotations

from typing import Any

from opentelemetry.sdk._configuration import _OTelSDKConfigurator

from execscope._setup import install


class ExecscopeConfigurator(_OTelSDKConfigurator):
    """Sets up execscope's pipeline instead of the SDK's default one."""

    def _configure(self, **kwargs: Any) -> None:
        install(auto_instrumentation_version=kwargs.get("auto_instrumentation_version"))
