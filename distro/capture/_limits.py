"""The bounds every captured value is rendered within, and the per-span character budget."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

#: What a value becomes once the span's budget is used up.
BUDGET_EXHAUSTED: Final = "<budget exhausted>"
#: The default size cap of a state diff's JSON document, in UTF-8 bytes (Tempo truncates
#: attribute values above 2 KB).
DEFAULT_MAX_STATE_DIFF: Final = 2000
# Beyond this the renderer's own recursion could approach the interpreter's limit.
_MAX_DEPTH_LIMIT: Final = 64
# A state diff must at least hold ``{"v":1,"truncated":N}``.
_MIN_STATE_DIFF: Final = 64


@dataclass(frozen=True)
class CaptureLimits:
    """Bounds on the rendering of one value (and on the state snapshot of one object).

    ``max_depth``: container nesting levels shown; deeper containers become ``[…]``/``{…}``.
    ``max_items``: elements shown per container, then ``…+N more``.
    ``max_string``: characters shown per string, then ``…(+N chars)``.
    ``max_bytes``: bytes shown per bytes-like value, then ``…(+N bytes)``.
    ``budget``: characters of one rendered value, all included.
    ``span_budget``: characters of all values of one span (see ``SpanBudget.for_limits``).
    ``max_state_fields``: fields (or keys) recorded per state snapshot.
    ``max_state_diff``: UTF-8 bytes of a state diff's JSON document.
    """

    max_depth: int = 3
    max_items: int = 10
    max_string: int = 200
    max_bytes: int = 64
    budget: int = 1024
    span_budget: int = 4096
    max_state_fields: int = 100
    max_state_diff: int = DEFAULT_MAX_STATE_DIFF

    def __post_init__(self) -> None:
        for name in (
            "max_depth",
            "max_items",
            "max_string",
            "max_bytes",
            "budget",
            "span_budget",
            "max_state_fields",
            "max_state_diff",
        ):
            value = getattr(self, name)
            if type(value) is not int or value < 0:
                raise ValueError(f"CaptureLimits.{name} must be a non-negative int, got {value!r}")
        if self.max_depth > _MAX_DEPTH_LIMIT:
            raise ValueError(f"CaptureLimits.max_depth must be at most {_MAX_DEPTH_LIMIT}")
        if self.budget < len(BUDGET_EXHAUSTED):
            raise ValueError(f"CaptureLimits.budget must be at least {len(BUDGET_EXHAUSTED)}")
        if self.max_state_diff < _MIN_STATE_DIFF:
            raise ValueError(f"CaptureLimits.max_state_diff must be at least {_MIN_STATE_DIFF}")


DEFAULT_LIMITS: Final = CaptureLimits()


class SpanBudget:
    """Characters left for the captured values of one span (arguments, return value, state diff).

    Create one per instrumented call and pass it to every ``render``/``render_arguments``/
    ``snapshot`` of that call. Each rendered value is cut to what is left and then charged;
    once nothing is left, values render as ``<budget exhausted>`` (which is not charged).
    Not thread-safe: a call's values are rendered by the thread making the call.
    """

    __slots__ = ("limit", "remaining")

    def __init__(self, limit: int = 4096) -> None:
        if type(limit) is not int or limit < 0:
            raise ValueError(f"SpanBudget limit must be a non-negative int, got {limit!r}")
        self.limit = limit
        self.remaining = limit

    @classmethod
    def for_limits(cls, limits: CaptureLimits) -> SpanBudget:
        return cls(limits.span_budget)

    @property
    def exhausted(self) -> bool:
        return self.remaining <= 0

    def consume(self, n: int) -> None:
        """Charge ``n`` characters (e.g. a state diff's JSON rendered outside ``render``)."""
        self.remaining = max(0, self.remaining - n)

    def __repr__(self) -> str:
        return f"SpanBudget(limit={self.limit}, remaining={self.remaining})"
