"""The ``opentelemetry_distro`` entry point: ``OTEL_PYTHON_DISTRO=execscope``."""

from __future__ import annotations

import logging
from typing import Any

from opentelemetry.instrumentation.dependencies import DependencyConflictError
from opentelemetry.instrumentation.distro import BaseDistro  # type: ignore[attr-defined]  # untyped upstream
from opentelemetry.util._importlib_metadata import EntryPoint

from execscope._contrib_options import contrib_options
from execscope.settings import get_settings

_logger = logging.getLogger(__name__)


class ExecscopeDistro(BaseDistro):  # type: ignore[misc]
    """Loads contrib instrumentations like ``opentelemetry-instrument`` does, with execscope's
    options (``_contrib_options``); one that fails is reported once and skipped, so the others
    still load (contrib re-raises and stops)."""

    def _configure(self, **kwargs: Any) -> None:
        # Settings are read by the configurator, which runs right after this; nothing to do here.
        return None

    def load_instrumentor(self, entry_point: EntryPoint, **kwargs: Any) -> None:
        try:
            options = contrib_options(entry_point.name, get_settings().settings)
        except Exception:  # fail open: without execscope's options the instrumentation still loads
            options = {}
        try:
            super().load_instrumentor(entry_point, **{**options, **kwargs})
        except (ModuleNotFoundError, DependencyConflictError):
            raise  # "library not installed" and version conflicts: contrib's loader skips these quietly
        except Exception as error:
            _logger.warning(
                "execscope: instrumentation %r failed to load (%s: %s); skipped, the others still load",
                entry_point.name,
                type(error).__name__,
                error,
            )
