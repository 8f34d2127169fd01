"""The span pipeline's compiled per-span work (``_accelerated.c``), where it was compiled at install.

One place answers whether it is here, so the modules that use a part of it (``_compact``,
``_redaction``, ``_otlp_encoding``) and the start-up message agree.
"""

from __future__ import annotations

from typing import Any, Final

#: The compiled module, or None: then the Python code does all the work, with the same results.
COMPILED: Any
try:
    from execscope.processors import _accelerated  # type: ignore[attr-defined]

    COMPILED = _accelerated
except ImportError:  # no C compiler at install
    COMPILED = None

#: Whether the compiled per-span work is in use.
ACCELERATED: Final = COMPILED is not None
