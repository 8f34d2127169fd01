"""execscope: see what your Python program did.

The public API is deliberately small. Most programs need none of it: run them with
``execscope run`` or ``opentelemetry-instrument``. :func:`configure` sets up the same pipeline
from code, with explicit settings taking precedence over ``EXECSCOPE_*`` variables and files.
"""

from __future__ import annotations

from typing import Any

from execscope._version import __version__


def configure(**settings: Any) -> bool:
    """Set up execscope's tracing pipeline in this process (once; later calls do nothing).

    Keyword arguments are settings by name (see ``execscope config``). Returns True when
    tracing is on. Never raises: bad values are reported once and replaced.
    """
    from execscope._setup import install

    return install(settings)


__all__ = ["__version__", "configure"]
