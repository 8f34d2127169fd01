"""The instrumentation-plan schema: the only definition of what a plan may contain.

Every producer (the analyzer, a human editing TOML) and every consumer (the runtime
instrumentors) goes through these frozen dataclasses, so validation lives in their
``__post_init__``: an invalid ``Plan`` cannot exist in memory, wherever it came from.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from typing import Final, Literal, get_args

Level = Literal["off", "timing", "args", "full"]
LEVELS: Final[tuple[Level, ...]] = get_args(Level)
PLAN_VERSION: Final = 1

# A pattern is "<module glob>" or "<module glob>:<qualname glob>". Glob characters are the
# fnmatch ones; everything else must look like a dotted Python name so that typos such as
# "app/users.py" are rejected instead of silently matching nothing.
_NAME_GLOB = r"[A-Za-z0-9_*?\[\]!<>-]+(?:\.[A-Za-z0-9_*?\[\]!<>-]+)*"
_PATTERN_RE: Final = re.compile(rf"^{_NAME_GLOB}(?::{_NAME_GLOB})?$")


class PlanError(ValueError):
    """A plan (file or object) violates the schema; the message names the field and value."""


def _require(condition: bool, message: str) -> None:
    if not condition:
        raise PlanError(message)


def _check_float(where: str, value: object, low: float, high: float) -> float:
    # bool is an int subclass; a plan saying ``sample_rate = true`` is a mistake, not 1.0.
    _require(
        isinstance(value, (int, float)) and not isinstance(value, bool),
        f"{where} must be a number, got {value!r}",
    )
    number = float(value)  # type: ignore[arg-type]
    _require(
        math.isfinite(number) and low <= number <= high, f"{where} must be in [{low}, {high}], got {value!r}"
    )
    return number


@dataclass(frozen=True)
class Target:
    """What to record for the code matched by ``pattern``.

    ``pattern`` is a dotted module glob, optionally followed by ``:`` and a qualname glob,
    e.g. ``"app.users:UserService.*"``. A pattern also covers everything nested below the
    name it matches (``app`` covers ``app.users``; ``app.users:UserService`` covers its methods).
    """

    pattern: str
    level: Level = "timing"
    sample_rate: float = 1.0
    min_duration_ms: float = 0.0
    stateful: bool = False
    reason: str = ""
    priority: int = 0

    def __post_init__(self) -> None:
        where = f"target {self.pattern!r}"
        _require(isinstance(self.pattern, str), f"target.pattern must be a string, got {self.pattern!r}")
        _require(
            bool(_PATTERN_RE.match(self.pattern)),
            f"target.pattern {self.pattern!r} is not 'dotted.module' or 'dotted.module:Qual.name' glob",
        )
        _require(self.level in LEVELS, f"{where}: level must be one of {list(LEVELS)}, got {self.level!r}")
        object.__setattr__(
            self, "sample_rate", _check_float(f"{where}: sample_rate", self.sample_rate, 0.0, 1.0)
        )
        object.__setattr__(
            self,
            "min_duration_ms",
            _check_float(f"{where}: min_duration_ms", self.min_duration_ms, 0.0, math.inf),
        )
        _require(
            isinstance(self.stateful, bool), f"{where}: stateful must be true/false, got {self.stateful!r}"
        )
        _require(isinstance(self.reason, str), f"{where}: reason must be a string, got {self.reason!r}")
        _require(
            isinstance(self.priority, int) and not isinstance(self.priority, bool),
            f"{where}: priority must be an integer, got {self.priority!r}",
        )


@dataclass(frozen=True)
class OverheadEstimate:
    """A static guess at the per-call cost of a plan, with the basis spelled out.

    The figures come from constant per-level costs, not measurements of the target program,
    so ``basis`` must always say how they were obtained; a number without its basis would be
    mistaken for a benchmark.
    """

    instrumented_targets: int
    mean_call_cost_us: float
    max_call_cost_us: float
    basis: str

    def __post_init__(self) -> None:
        _require(
            isinstance(self.instrumented_targets, int)
            and not isinstance(self.instrumented_targets, bool)
            and self.instrumented_targets >= 0,
            f"estimate.instrumented_targets must be an integer >= 0, got {self.instrumented_targets!r}",
        )
        for name in ("mean_call_cost_us", "max_call_cost_us"):
            value = _check_float(f"estimate.{name}", getattr(self, name), 0.0, math.inf)
            object.__setattr__(self, name, value)
        _require(
            isinstance(self.basis, str) and bool(self.basis.strip()),
            f"estimate.basis must be a non-empty string, got {self.basis!r}",
        )


def _target_order(target: Target) -> tuple[int, str]:
    return (-target.priority, target.pattern)


@dataclass(frozen=True)
class Plan:
    """A versioned, ordered set of targets; targets are kept sorted so output is deterministic."""

    version: int = PLAN_VERSION
    targets: tuple[Target, ...] = ()
    estimate: OverheadEstimate | None = None
    generated_by: str = ""

    def __post_init__(self) -> None:
        _require(
            self.version == PLAN_VERSION and not isinstance(self.version, bool),
            f"version must be {PLAN_VERSION}, got {self.version!r}",
        )
        _require(
            isinstance(self.generated_by, str), f"generated_by must be a string, got {self.generated_by!r}"
        )
        targets = tuple(self.targets)
        for target in targets:
            _require(isinstance(target, Target), f"targets must contain Target objects, got {target!r}")
        seen: set[str] = set()
        for target in targets:
            _require(target.pattern not in seen, f"target.pattern {target.pattern!r} appears more than once")
            seen.add(target.pattern)
        _require(
            self.estimate is None or isinstance(self.estimate, OverheadEstimate),
            f"estimate must be an OverheadEstimate or None, got {self.estimate!r}",
        )
        object.__setattr__(self, "targets", tuple(sorted(targets, key=_target_order)))
