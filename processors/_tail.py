"""The in-process tail sampler: hold a trace's spans until its local root ends, then decide.

A trace is kept or dropped as a whole by :func:`execscope.processors._decision.decide` (errors
and slow traces are always kept). Spans that end after their trace was decided (a task that
outlives the request) follow the decision, remembered for a bounded number of traces.

Memory is bounded: the spans held are charged an estimate of their size, and when the total
passes ``max_bytes`` the oldest undecided traces are decided early, on what they show so far
(an error seen already keeps them). A trace whose local root has not ended after ``max_hold_s``
is decided early the same way, so a long-running root never pins its children in memory. When
the effective keep rate is 1 nothing is held at all: every span passes straight through.
"""

from __future__ import annotations

import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from typing import Final

from execscope.processors._compact import (
    ATTRIBUTES,
    END,
    EVENTS,
    NAME,
    START,
    TRACE_ID,
    CompactSpan,
    Pairs,
    is_error,
    is_local_root,
)
from execscope.processors._decision import TailPolicy, TraceFacts, Verdict, decide
from execscope.processors._stats import DropReason, PipelineStats

#: Traces whose decision is remembered for late spans.
DECIDED_CAPACITY: Final = 65_536
#: A held span's fixed cost besides its attribute text (the compact tuple, its ids, its pairs).
_SPAN_OVERHEAD_BYTES: Final = 400
#: How often (in spans offered) the hold-time limit is checked.
_AGE_CHECK_EVERY: Final = 256


class _Held:
    __slots__ = ("bytes", "facts", "first_seen", "spans")

    def __init__(self, now: float) -> None:
        self.spans: list[CompactSpan] = []
        self.facts = TraceFacts()
        self.bytes = 0
        self.first_seen = now


def _pairs_size(pairs: Pairs) -> int:
    size = 0
    for key, value in pairs:
        size += len(key) + (len(value) if isinstance(value, str) else 16)
    return size


def estimated_size(span: CompactSpan) -> int:
    """Bytes a held span is charged: a fixed overhead plus its attribute and event text."""
    size = _SPAN_OVERHEAD_BYTES + len(span[NAME]) + _pairs_size(span[ATTRIBUTES])
    for event in span[EVENTS]:
        size += 64 + len(event[0]) + _pairs_size(event[2])
    return size


def _add_facts(facts: TraceFacts, span: CompactSpan) -> None:
    facts.add(span[START], span[END], is_error(span))


class TailSampler:
    """Decides which spans go on to export; thread-safe, never blocks beyond its own short lock."""

    def __init__(
        self,
        policy: TailPolicy,
        stats: PipelineStats,
        *,
        max_bytes: int,
        max_hold_s: float,
        keep_rate: Callable[[], float] = lambda: 1.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.policy = policy
        self._stats = stats
        self._max_bytes = max_bytes
        self._max_hold_s = max_hold_s
        #: The governor's cap on the keep rate (1.0 when it sheds nothing).
        self._keep_rate = keep_rate
        self._clock = clock
        self._held: dict[int, _Held] = {}  # insertion order: oldest trace first
        self._decided: OrderedDict[int, bool] = OrderedDict()
        self._bytes = 0
        self._offers = 0
        self._lock = threading.Lock()

    @property
    def held_bytes(self) -> int:
        return self._bytes

    @property
    def held_traces(self) -> int:
        return len(self._held)

    def holds(self, trace_id: int) -> bool:
        """Whether spans of ``trace_id`` wait here for their trace to be decided."""
        return trace_id in self._held

    def effective_rate(self) -> float:
        return min(self.policy.keep_rate, self._keep_rate())

    def offer(self, span: CompactSpan) -> list[CompactSpan]:
        """The spans that may be exported now (this one, a whole decided trace, or none)."""
        trace_id = span[TRACE_ID]
        with self._lock:
            held = self._held.get(trace_id)
            if held is None:
                decided = self._decided.get(trace_id)
                if decided is not None:
                    if not decided:
                        self._stats.drop(DropReason.SAMPLING)
                    return [span] if decided else []
                if self.effective_rate() >= 1.0:
                    return [span]
                if is_local_root(span):
                    # A whole trace of one span (its children, if any, were not held): decided
                    # at once, without being held or measured.
                    facts = TraceFacts()
                    _add_facts(facts, span)
                    return [span] if self._conclude(trace_id, facts, 1) else []
                held = self._held[trace_id] = _Held(self._clock())
            held.spans.append(span)
            _add_facts(held.facts, span)
            size = estimated_size(span)
            held.bytes += size
            self._bytes += size
            released: list[CompactSpan] = []
            if is_local_root(span):
                released += self._decide(trace_id, early=False)
            self._offers += 1
            if self._bytes > self._max_bytes or self._offers % _AGE_CHECK_EVERY == 0:
                released += self._decide_early()
            return released

    def flush(self) -> list[CompactSpan]:
        """Decide every held trace now (at shutdown or force_flush), on what it shows so far."""
        with self._lock:
            released: list[CompactSpan] = []
            for trace_id in list(self._held):
                released += self._decide(trace_id, early=True)
            return released

    def drops_unmade(self, trace_id: int, *, local_root: bool, start: int, end: int, error: bool) -> bool:
        """Whether :meth:`offer` would drop a span with these facts, whatever else it holds: its
        trace was decided against already, or it is a whole trace of one span (a local root of
        which nothing is held) that the decision drops. A drop is then counted, and a decision
        remembered, as ``offer`` would have; False: the span must be made and offered."""
        with self._lock:
            if trace_id in self._held:
                return False
            decided = self._decided.get(trace_id)
            if decided is not None:
                if not decided:
                    self._stats.drop(DropReason.SAMPLING)
                return not decided
            if not local_root or self.effective_rate() >= 1.0:
                return False
            facts = TraceFacts()
            facts.add(start, end, error)
            return not self._conclude(trace_id, facts, 1)

    def _decide_early(self) -> list[CompactSpan]:
        released: list[CompactSpan] = []
        deadline = self._clock() - self._max_hold_s
        while self._held:
            trace_id, oldest = next(iter(self._held.items()))
            if self._bytes <= self._max_bytes and oldest.first_seen > deadline:
                break
            released += self._decide(trace_id, early=True)
        return released

    def _decide(self, trace_id: int, *, early: bool) -> list[CompactSpan]:
        held = self._held.pop(trace_id)
        self._bytes -= held.bytes
        over_budget = early and self._bytes + held.bytes > self._max_bytes
        reason = DropReason.BUDGET if over_budget else DropReason.SAMPLING
        return held.spans if self._conclude(trace_id, held.facts, len(held.spans), reason) else []

    def _conclude(
        self, trace_id: int, facts: TraceFacts, spans: int, reason: DropReason = DropReason.SAMPLING
    ) -> bool:
        """Decide, remember the decision for late spans, count a drop; True: keep the trace."""
        keep = decide(trace_id, facts, self.policy, self._keep_rate()).keep
        decided = self._decided
        decided[trace_id] = keep
        if len(decided) > DECIDED_CAPACITY:
            decided.popitem(last=False)
        if not keep:
            self._stats.drop(reason, spans)
        return keep


__all__ = ["TailSampler", "Verdict", "estimated_size"]
