"""Which traces are kept: the one rule shared by the in-process tail sampler and the collector plugin.

This module imports nothing from OpenTelemetry, so the collector plugin (which sees spans as the
collector's own objects, not the SDK's) runs exactly this code on the facts it gathers. A trace
is kept when any of its spans has an error, when it lasted at least the latency threshold, or
when its trace id falls in the keep rate. The rate test is the SDK's ``TraceIdRatioBased`` rule
(the low 64 bits of the trace id against ``rate * 2**64``), so every service and the collector
agree on the same trace without talking to each other, and a tail rate below a head rate keeps
a subset of what the head sampler let through.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum

_TRACE_ID_LOW_BITS = (1 << 64) - 1


class Verdict(str, Enum):
    """A decision and why: the first three keep the trace, ``SAMPLED_OUT`` drops it."""

    ERROR = "error"
    LATENCY = "latency"
    RATE = "rate"
    SAMPLED_OUT = "sampled_out"

    @property
    def keep(self) -> bool:
        return self is not Verdict.SAMPLED_OUT


@dataclass(frozen=True)
class TailPolicy:
    """What the tail decision keeps besides errors: a latency threshold and a keep rate."""

    #: Fraction of traces kept by trace id (0 to 1) when they have no error and are not slow.
    keep_rate: float = 1.0
    #: Traces lasting at least this long (first start to last end, nanoseconds) are kept; 0: off.
    latency_threshold_ns: int = 0

    def __post_init__(self) -> None:
        if not 0.0 <= self.keep_rate <= 1.0:
            raise ValueError(f"keep_rate must be between 0 and 1, got {self.keep_rate!r}")
        if self.latency_threshold_ns < 0:
            raise ValueError(f"latency_threshold_ns must not be negative, got {self.latency_threshold_ns!r}")


class TraceFacts:
    """What the decision needs to know of one trace, gathered span by span."""

    __slots__ = ("end_ns", "has_error", "spans", "start_ns")

    def __init__(self) -> None:
        self.has_error = False
        self.start_ns = 0
        self.end_ns = 0
        self.spans = 0

    def add(self, start_ns: int, end_ns: int, error: bool) -> None:
        if error:
            self.has_error = True
        if not self.spans or start_ns < self.start_ns:
            self.start_ns = start_ns
        self.end_ns = max(self.end_ns, end_ns)
        self.spans += 1

    @property
    def duration_ns(self) -> int:
        return max(0, self.end_ns - self.start_ns)


def rate_keeps(trace_id: int, rate: float) -> bool:
    """Whether ``trace_id`` falls in ``rate``, by the same rule as the SDK's ``TraceIdRatioBased``."""
    if rate >= 1.0:
        return True
    if rate <= 0.0:
        return False
    return (trace_id & _TRACE_ID_LOW_BITS) < round(rate * (_TRACE_ID_LOW_BITS + 1))


def decide(trace_id: int, facts: TraceFacts, policy: TailPolicy, keep_rate: float | None = None) -> Verdict:
    """The verdict on one trace. ``keep_rate`` overrides the policy's (the governor lowers it)."""
    if facts.has_error:
        return Verdict.ERROR
    if policy.latency_threshold_ns and facts.duration_ns >= policy.latency_threshold_ns:
        return Verdict.LATENCY
    rate = policy.keep_rate if keep_rate is None else min(keep_rate, policy.keep_rate)
    return Verdict.RATE if rate_keeps(trace_id, rate) else Verdict.SAMPLED_OUT
