"""Safe, bounded capture of Python values as span attributes (``execscope.capture``).

The auto-instrumentation records every call's arguments, return value and, for methods of
stateful objects, the change of the object's state. This package turns those arbitrary values
into attribute strings without ever running user code (no ``__repr__``, ``__getattr__``,
properties, iteration of generators...), within configurable bounds (``CaptureLimits``, a
per-span ``SpanBudget``), with sensitive values redacted (``Redactor``). State changes are
snapshotted field by field and diffed into the versioned JSON document of ``STATE_DIFF.md``.
"""

from ._limits import BUDGET_EXHAUSTED, CaptureLimits, SpanBudget
from ._redact import DEFAULT_NAME_PATTERNS, REDACTED, NoopRedactor, Redactor, default_redactor
from ._render import render, render_arguments
from ._state import STATE_DIFF_VERSION, StateDiff, diff, diff_values, snapshot

__all__ = [
    "BUDGET_EXHAUSTED",
    "DEFAULT_NAME_PATTERNS",
    "REDACTED",
    "STATE_DIFF_VERSION",
    "CaptureLimits",
    "NoopRedactor",
    "Redactor",
    "SpanBudget",
    "StateDiff",
    "default_redactor",
    "diff",
    "diff_values",
    "render",
    "render_arguments",
    "snapshot",
]
