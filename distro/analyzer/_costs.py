"""Per-call instrumentation cost constants: the ONE place the overhead estimate gets them from.

PLACEHOLDERS, to be replaced by measured figures from bench/. They are order-of-magnitude
guesses for CPython 3.11 on a current x86-64 core: a wrapper that only reads the clock
(``timing``), one that also captures and truncates arguments/results (``args``), and one
that additionally snapshots instance state before and after (``full``). Keeping them here,
named and documented, means the planner's estimate states its basis instead of hiding it.
"""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType
from typing import Final

from execscope.plan import Level

COST_PER_CALL_US: Final[Mapping[Level, float]] = MappingProxyType(
    {"off": 0.0, "timing": 0.4, "args": 1.5, "full": 6.0}
)
SAMPLING_DECISION_US: Final = 0.05  # deciding whether this call is sampled at all
LOOP_CALL_WEIGHT: Final = 4  # a call site inside a loop is assumed to run this many times more often
COST_SOURCE: Final = (
    "placeholder per-call costs from execscope.analyzer._costs "
    "(off 0, timing 0.4 us, args 1.5 us, full 6.0 us; to be replaced by measured figures from bench/)"
)
