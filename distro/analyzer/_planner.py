"""Turning an ``Analysis`` into a prioritised instrumentation ``Plan``.

Depth follows what explains behaviour: state-dependent code (actors, stateful classes) gets
``full`` so state changes are recorded; request handlers and task bodies get ``args``; I/O
and messaging code gets ``timing``; tiny, I/O-free helpers called in loops get ``off``
because tracing them would cost more than it tells. Every target carries a reason a human
can check, and the plan is a pure function of the analysis (sorted, no clocks, no hashing
order), so the same tree always yields the same plan.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from typing import Final

from execscope.plan import Level, OverheadEstimate, Plan, Target

from ._costs import COST_PER_CALL_US, COST_SOURCE, LOOP_CALL_WEIGHT, SAMPLING_DECISION_US
from ._model import Analysis, FunctionMetrics, Role

TRIVIAL_STATEMENTS: Final = 3
TRIVIAL_COMPLEXITY: Final = 2
COMPLEX: Final = 10
HOT_SAMPLE_RATE: Final = 0.1
SLOW_CALL_MS: Final = 1.0
_BASE_PRIORITY: Final[dict[Level, int]] = {"full": 80, "args": 60, "timing": 40, "off": 20}
_ROLE_WORDS: Final[dict[Role, str]] = {
    "stateful": "stateful",
    "actor": "actor",
    "web_entry": "request handler",
    "task": "task",
    "producer": "message producer",
    "consumer": "message consumer",
    "db": "database access",
    "cli": "CLI entry point",
    "library": "library",
}
_ROLE_ORDER: Final[tuple[Role, ...]] = (
    "stateful",
    "actor",
    "web_entry",
    "task",
    "producer",
    "consumer",
    "db",
    "cli",
)


@dataclass
class _Subject:
    """A class or function the plan may target, with everything known about it."""

    module: str
    qualname: str
    roles: set[Role] = field(default_factory=set)
    metrics: list[FunctionMetrics] = field(default_factory=list)

    @property
    def name(self) -> str:
        return f"{self.module}:{self.qualname}"

    @property
    def complexity(self) -> int:
        return max((m.cyclomatic for m in self.metrics), default=1)

    @property
    def io(self) -> list[str]:
        return sorted({kind for m in self.metrics for kind in m.io})

    @property
    def weight(self) -> int:
        return sum(1 + m.call_sites + LOOP_CALL_WEIGHT * m.loop_call_sites for m in self.metrics) or 1


def _subjects(analysis: Analysis) -> dict[str, _Subject]:
    subjects: dict[str, _Subject] = {}
    for rec in analysis.recognitions:
        if rec.kind in ("class", "function") and rec.role != "library":
            subjects.setdefault(rec.name, _Subject(rec.module, rec.qualname)).roles.add(rec.role)
    for fn in analysis.functions:
        if fn.name in subjects:
            subjects[fn.name].metrics.append(fn)
        owner = fn.qualname.rpartition(".")[0]
        owner_name = f"{fn.module}:{owner}"
        if owner and owner_name in subjects and owner_name != fn.name:
            subjects[owner_name].metrics.append(fn)  # a class is as complex as its worst method
    return subjects


def _reachable(analysis: Analysis, roots: set[str]) -> set[str]:
    """Functions reachable through the static call graph from ``roots`` (classes: their methods)."""
    callees = {fn.name: fn.callees for fn in analysis.functions}
    methods: dict[str, list[str]] = defaultdict(list)
    for fn in analysis.functions:
        methods[f"{fn.module}:{fn.qualname.rpartition('.')[0]}"].append(fn.name)
    seen: set[str] = set()
    stack = sorted(roots)
    while stack:
        name = stack.pop()
        if name not in seen:
            seen.add(name)
            stack += [*callees.get(name, ()), *methods.get(name, ())]
    return seen


def _level(subject: _Subject) -> Level:
    if subject.roles & {"stateful", "actor"}:
        return "full"
    if subject.roles & {"web_entry", "task"}:
        return "args"
    return "timing"


def _reason(subject: _Subject, on_request_path: bool) -> str:
    words = [_ROLE_WORDS[r] for r in _ROLE_ORDER if r in subject.roles]
    parts = [" ".join(words[:2]) + (f" ({', '.join(words[2:])})" if words[2:] else "")]
    parts.append(f"complexity {subject.complexity}")
    if subject.io:
        parts.append(f"does {'/'.join(subject.io)} I/O")
    if on_request_path and "web_entry" not in subject.roles:
        parts.append("on the request path")
    return ", ".join(parts)


def _priority(level: Level, subject_complexity: int, io: bool, on_request_path: bool) -> int:
    score = _BASE_PRIORITY[level] + min(10, subject_complexity // 2) + (5 if io else 0)
    return min(100, score + (10 if on_request_path else 0))


def _role_targets(subjects: dict[str, _Subject], request_path: set[str]) -> list[tuple[Target, int]]:
    out = []
    for name in sorted(subjects):
        subject = subjects[name]
        level = _level(subject)
        hot = any(m.loop_call_sites for m in subject.metrics) and level == "timing"
        on_path = name in request_path or any(m.name in request_path for m in subject.metrics)
        target = Target(
            pattern=name,
            level=level,
            sample_rate=HOT_SAMPLE_RATE if hot else 1.0,
            min_duration_ms=SLOW_CALL_MS if level == "timing" and not subject.io else 0.0,
            stateful="stateful" in subject.roles,
            reason=_reason(subject, on_path) + (", hot: sampled" if hot else ""),
            priority=_priority(level, subject.complexity, bool(subject.io), on_path),
        )
        out.append((target, subject.weight))
    return out


def _is_hot_trivial(fn: FunctionMetrics) -> bool:
    return (
        fn.loop_call_sites > 0
        and not fn.io
        and fn.statements <= TRIVIAL_STATEMENTS
        and fn.cyclomatic <= TRIVIAL_COMPLEXITY
        and not fn.recursive
        and not fn.writes_state
    )


def _function_targets(
    analysis: Analysis, subjects: dict[str, _Subject], request_path: set[str]
) -> list[tuple[Target, int]]:
    out = []
    for fn in analysis.functions:
        if fn.name in subjects or "<locals>" in fn.qualname:
            continue
        on_path = fn.name in request_path
        if _is_hot_trivial(fn):
            reason = (
                f"hot trivial helper: {fn.statements} statement(s), no I/O, "
                f"called in {fn.loop_call_sites} loop(s)"
            )
            out.append((Target(fn.name, "off", reason=reason, priority=_BASE_PRIORITY["off"]), 0))
        elif fn.io or (on_path and fn.cyclomatic >= COMPLEX):
            what = f"does {'/'.join(fn.io)} I/O" if fn.io else "complex"
            reason = f"{what}, complexity {fn.cyclomatic}" + (", on the request path" if on_path else "")
            priority = _priority("timing", fn.cyclomatic, bool(fn.io), on_path)
            min_ms = 0.0 if fn.io else SLOW_CALL_MS
            target = Target(fn.name, "timing", min_duration_ms=min_ms, reason=reason, priority=priority)
            out.append((target, 1 + fn.call_sites + LOOP_CALL_WEIGHT * fn.loop_call_sites))
    return out


def _estimate(weighted: list[tuple[Target, int]]) -> OverheadEstimate:
    live = [(t, w) for t, w in weighted if t.level != "off"]
    costs = [(SAMPLING_DECISION_US + t.sample_rate * COST_PER_CALL_US[t.level], w) for t, w in live]
    total_weight = sum(w for _, w in costs)
    mean = sum(c * w for c, w in costs) / total_weight if total_weight else 0.0
    basis = (
        f"static estimate over {len(live)} instrumented target(s), no runtime call counts: per-call cost = "
        f"{SAMPLING_DECISION_US} us sampling decision + sample_rate x level cost, using {COST_SOURCE}; "
        f"mean weighted by 1 + call sites + {LOOP_CALL_WEIGHT} x loop call sites"
    )
    return OverheadEstimate(
        instrumented_targets=len(live),
        mean_call_cost_us=round(mean, 3),
        max_call_cost_us=round(max((c for c, _ in costs), default=0.0), 3),
        basis=basis,
    )


def build_plan(analysis: Analysis, generated_by: str = "execscope.analyzer") -> Plan:
    """A deterministic, prioritised plan for ``analysis`` with its overhead estimate."""
    subjects = _subjects(analysis)
    entries = {r.name for r in analysis.recognitions if r.role == "web_entry"}
    request_path = _reachable(analysis, entries)
    weighted = _role_targets(subjects, request_path) + _function_targets(analysis, subjects, request_path)
    return Plan(
        targets=tuple(t for t, _ in weighted), estimate=_estimate(weighted), generated_by=generated_by
    )
