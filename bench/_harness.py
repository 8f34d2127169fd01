"""Runs the variants of one benchmark alternately and summarises the time per operation."""

from __future__ import annotations

import gc
import math
import time
from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

#: A monotonic clock in nanoseconds; the harness takes one so tests can inject a fake.
Clock = Callable[[], int]


class Variant(ABC):
    """One way of doing a benchmark's operation. Only :meth:`run_once` is timed."""

    def setup(self) -> None:  # noqa: B027 - an optional hook, not an abstract one
        """Called once, before the first round of any variant."""

    @abstractmethod
    def run_once(self) -> int:
        """Do one round of work; return how many operations it did (at least one)."""

    def end_round(self) -> None:  # noqa: B027
        """Called after each :meth:`run_once`, outside the timed region (flush, clear, ...)."""

    def metrics(self) -> dict[str, float]:
        """Extra figures to report for this variant, read after the last round."""
        return {}

    def teardown(self) -> None:  # noqa: B027
        """Called once, after the last round (also when a round failed)."""


@dataclass(frozen=True)
class Benchmark:
    name: str
    description: str
    variants: dict[str, Callable[[], Variant]]
    baseline: str
    #: What one operation is, for the report's units ("µs/span").
    operation: str = "op"

    def __post_init__(self) -> None:
        if self.baseline not in self.variants:
            raise ValueError(
                f"benchmark {self.name!r}: baseline {self.baseline!r} is not one of its variants"
            )


@dataclass(frozen=True)
class VariantResult:
    name: str
    #: Nanoseconds per operation, one sample per measured round, in round order.
    per_op_ns: tuple[float, ...]
    operations: int
    median_ns: float
    p10_ns: float
    p90_ns: float
    #: This variant's median divided by the baseline variant's median.
    ratio: float
    metrics: dict[str, float] = field(default_factory=dict)


@dataclass(frozen=True)
class Result:
    benchmark: Benchmark
    rounds: int
    warmup: int
    variants: tuple[VariantResult, ...]
    #: Variant names in the order their rounds ran, warm-up included.
    schedule: tuple[str, ...]


def percentile(values: Sequence[float], fraction: float) -> float:
    """The ``fraction`` quantile with linear interpolation between closest ranks (numpy's default)."""
    if not values:
        raise ValueError("percentile of no values")
    ordered = sorted(values)
    position = (len(ordered) - 1) * fraction
    low = math.floor(position)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (position - low)


def run_benchmark(
    benchmark: Benchmark,
    rounds: int,
    *,
    warmup: int = 1,
    clock: Clock = time.perf_counter_ns,
    collect_garbage: bool = True,
) -> Result:
    """Run every variant ``warmup + rounds`` times, round-robin, and summarise the measured rounds.

    All variants are set up before the first round and torn down after the last, so each round
    of one variant runs between rounds of the others. With ``collect_garbage`` a full collection
    runs before each timed call (outside the timed region) so one variant's garbage is not
    collected on another's clock.
    """
    if rounds < 1:
        raise ValueError("rounds must be at least 1")
    if warmup < 0:
        raise ValueError("warmup must not be negative")
    names = list(benchmark.variants)
    samples: dict[str, list[float]] = {name: [] for name in names}
    operations: dict[str, int] = dict.fromkeys(names, 0)
    schedule: list[str] = []
    started: list[Variant] = []
    try:
        variants: dict[str, Variant] = {}
        for name in names:
            variant = benchmark.variants[name]()
            variant.setup()
            started.append(variant)
            variants[name] = variant
        for round_index in range(warmup + rounds):
            for name, variant in variants.items():
                if collect_garbage:
                    gc.collect()
                start = clock()
                count = variant.run_once()
                elapsed = clock() - start
                variant.end_round()
                schedule.append(name)
                if count < 1:
                    raise ValueError(f"{benchmark.name}/{name}: run_once() returned {count}, expected >= 1")
                if round_index >= warmup:
                    samples[name].append(elapsed / count)
                    operations[name] += count
        metrics = {name: variant.metrics() for name, variant in variants.items()}
    finally:
        for variant in reversed(started):
            variant.teardown()
    baseline_median = percentile(samples[benchmark.baseline], 0.5)
    results = []
    for name in names:
        median = percentile(samples[name], 0.5)
        results.append(
            VariantResult(
                name=name,
                per_op_ns=tuple(samples[name]),
                operations=operations[name],
                median_ns=median,
                p10_ns=percentile(samples[name], 0.1),
                p90_ns=percentile(samples[name], 0.9),
                ratio=median / baseline_median if baseline_median > 0 else math.nan,
                metrics=metrics[name],
            )
        )
    return Result(benchmark, rounds, warmup, tuple(results), tuple(schedule))
