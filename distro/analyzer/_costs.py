"""Per-call instrumentation cost constants: the ONE place the overhead estimate gets them from.

Measured, not guessed: calling-thread CPU added per call of a rewritten function, medians from
``python -m bench autotrace`` (CPython 3.11.7, 2-core x86-64 server; README "Benchmarks"):
a recorded call at level ``timing`` adds 3.1 us, at ``args`` 6.7 us, at ``full`` 6.7 us for a
function without state (a stateful method adds two bounded snapshots and a diff); a call that is
rewritten but not recorded (not sampled) adds 0.34 us. Building and exporting each recorded span
costs more CPU on a background thread (about 30 us over OTLP), which the estimate leaves out
and its basis says so.
"""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType
from typing import Final

from execscope.plan import Level

COST_PER_CALL_US: Final[Mapping[Level, float]] = MappingProxyType(
    {"off": 0.0, "timing": 3.1, "args": 6.7, "full": 6.7}
)
SAMPLING_DECISION_US: Final = 0.34  # a rewritten call that records nothing (not sampled)
LOOP_CALL_WEIGHT: Final = 4  # a call site inside a loop is assumed to run this many times more often
COST_SOURCE: Final = (
    "calling-thread CPU per call measured by `python -m bench autotrace` on CPython 3.11 "
    "(not sampled 0.34 us; recorded: timing 3.1 us, args 6.7 us, full 6.7 us without state; "
    "the background export of each recorded span, about 30 us over OTLP, is not included)"
)
