"""The ``opentelemetry_distro`` entry point: ``OTEL_PYTHON_DISTRO=execscope``."""

from __future__ import annotations

import logging
import os
import sys
from typing import Any

from opentelemetry.instrumentation.dependencies import DependencyConflictError
from opentelemetry.instrumentation.distro import BaseDistro  # type: ignore[attr-defined]  # untyped upstream
from opentelemetry.util._importlib_metadata import EntryPoint

from execscope._contrib_options import contrib_options
from execscope.settings import get_settings

_logger = logging.getLogger(__name__)


def _django_settings_named() -> bool:
    """Are Django's settings named (``DJANGO_SETTINGS_MODULE``), or configured already?"""
    if os.environ.get("DJANGO_SETTINGS_MODULE"):
        return True
    try:
        conf = sys.modules.get("django.conf")
        settings = getattr(conf, "settings", None)
        return bool(getattr(settings, "configured", False))
    except Exception:  # a Django too unusual to ask: left alone, as when nothing names its settings
        return False


class ExecscopeDistro(BaseDistro):  # type: ignore[misc]
    """Loads contrib instrumentations like ``opentelemetry-instrument`` does, with execscope's
    options (``_contrib_options``); one that fails is reported once and skipped, so the others
    still load (contrib re-raises and stops)."""

    def _configure(self, **kwargs: Any) -> None:
        # Settings are read by the configurator, which runs right after this; nothing to do here.
        return None

    def load_instrumentor(self, entry_point: EntryPoint, **kwargs: Any) -> None:
        if entry_point.name == "django" and not _django_settings_named():
            # Contrib's Django instrumentation reads Django's settings at start-up and, when no
            # settings module is named, configures Django's defaults: in a program that is not
            # a Django application, or one whose manage.py names its settings only later, that
            # changes what the program does (its own settings are then never read).
            _logger.info(
                "execscope: DJANGO_SETTINGS_MODULE is not set at start-up; Django's instrumentation "
                "is not loaded (export it to trace a Django application)"
            )
            return
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
