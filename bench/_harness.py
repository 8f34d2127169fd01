"""Runs the variants of one benchmark alternately and summarises the time per operation."""

from __future__ import annotations

import gc
import math
import time
from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from fnmatch import fnmatchcase

#: A monotonic clock in nanoseconds; the harness takes one so tests can inject a fake.
Clock = Callable[[], int]


class Variant(ABC):
    """One way of doing a benchmark's operation. Only :meth:`run_once` is timed."""

    def setup(self) -> None:  # noqa: B027 - an optional hook, not an abstract one
        """Called once, before the first round of any variant."""

    @abstractmethod
    def run_once(self) -> int:
        """Do one round of work; return how many operations it did (at least one)."""

    def settle(self) -> None:  # noqa: B027
        """Finish the work this round handed to other threads (drain queues, flush exporters).

        Runs after the timed region, so it adds nothing to the wall-clock or calling-thread
        figures, but before the process-CPU reading of benchmarks that measure CPU: work a
        variant defers to a background thread is charged to that variant, not to whichever
        variant happens to run when the thread wakes up.
        """

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
    #: Variants compared with another variant than ``baseline`` (variant -> its baseline), for
    #: benchmarks that hold several groups, each with its own reference.
    baselines: dict[str, str] = field(default_factory=dict)
    #: Also read process CPU (all threads, from before ``run_once`` to after ``settle``) and the
    #: calling thread's CPU (``run_once`` only), for work that background threads share.
    measure_cpu: bool = False
    #: Lines printed after the table: figures derived from several variants (differences,
    #: ratios between groups), and what was left out and why.
    notes: Callable[[Result], list[str]] | None = None

    def __post_init__(self) -> None:
        if self.baseline not in self.variants:
            raise ValueError(
                f"benchmark {self.name!r}: baseline {self.baseline!r} is not one of its variants"
            )
        for variant, baseline in self.baselines.items():
            if variant not in self.variants or baseline not in self.variants:
                raise ValueError(
                    f"benchmark {self.name!r}: baselines maps {variant!r} to {baseline!r}; "
                    "both must be variants"
                )

    def baseline_of(self, variant: str) -> str:
        return self.baselines.get(variant, self.baseline)

    def only(self, patterns: Sequence[str]) -> Benchmark:
        """This benchmark with just the variants whose names match one of ``patterns`` (shell
        globs), plus the baselines they are compared with; ``ValueError`` if none matches."""
        chosen = {name for name in self.variants if any(fnmatchcase(name, p) for p in patterns)}
        if not chosen:
            raise ValueError(f"benchmark {self.name!r}: no variant matches {', '.join(patterns)}")
        chosen |= {self.baseline_of(name) for name in chosen}
        baseline = self.baseline if self.baseline in chosen else self.baseline_of(min(chosen))
        chosen.add(baseline)
        return replace(
            self,
            variants={name: make for name, make in self.variants.items() if name in chosen},
            baseline=baseline,
            baselines={v: b for v, b in self.baselines.items() if v in chosen},
        )


@dataclass(frozen=True)
class Figures:
    """One clock's per-operation samples for a variant, summarised."""

    #: Nanoseconds per operation, one sample per measured round, in round order.
    per_op_ns: tuple[float, ...]
    median_ns: float
    p10_ns: float
    p90_ns: float
    #: This median divided by the same clock's median of the variant's baseline.
    ratio: float


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
    #: The variant its ratios are to (the benchmark's baseline unless ``baselines`` says otherwise).
    baseline: str = ""
    #: Process CPU, all threads, ``run_once`` + ``settle`` (only with ``measure_cpu``).
    cpu: Figures | None = None
    #: CPU of the thread that ran ``run_once`` (only with ``measure_cpu``).
    thread_cpu: Figures | None = None


@dataclass(frozen=True)
class Result:
    benchmark: Benchmark
    rounds: int
    warmup: int
    variants: tuple[VariantResult, ...]
    #: Variant names in the order their rounds ran, warm-up included.
    schedule: tuple[str, ...]

    def variant(self, name: str) -> VariantResult:
        """The result of variant ``name``; ``KeyError`` if the benchmark has none."""
        for variant in self.variants:
            if variant.name == name:
                return variant
        raise KeyError(name)


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
    cpu_clock: Clock = time.process_time_ns,
    thread_clock: Clock = time.thread_time_ns,
) -> Result:
    """Run every variant ``warmup + rounds`` times, round-robin, and summarise the measured rounds.

    All variants are set up before the first round and torn down after the last, so each round
    of one variant runs between rounds of the others. With ``collect_garbage`` a full collection
    runs before each timed call (outside the timed region) so one variant's garbage is not
    collected on another's clock. ``cpu_clock`` and ``thread_clock`` are reported only for a
    benchmark with ``measure_cpu``: the CPU window opens before the wall clock's and closes
    after ``settle()``; the thread window is the same as the wall clock's.
    """
    if rounds < 1:
        raise ValueError("rounds must be at least 1")
    if warmup < 0:
        raise ValueError("warmup must not be negative")
    names = list(benchmark.variants)
    samples: dict[str, list[float]] = {name: [] for name in names}
    cpu_samples: dict[str, list[float]] = {name: [] for name in names}
    thread_samples: dict[str, list[float]] = {name: [] for name in names}
    measure_cpu = benchmark.measure_cpu
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
                cpu_start, thread_start = cpu_clock(), thread_clock()
                start = clock()
                count = variant.run_once()
                elapsed = clock() - start
                thread_elapsed = thread_clock() - thread_start
                variant.settle()
                cpu_elapsed = cpu_clock() - cpu_start
                variant.end_round()
                schedule.append(name)
                if count < 1:
                    raise ValueError(f"{benchmark.name}/{name}: run_once() returned {count}, expected >= 1")
                if round_index >= warmup:
                    samples[name].append(elapsed / count)
                    operations[name] += count
                    if measure_cpu:
                        cpu_samples[name].append(cpu_elapsed / count)
                        thread_samples[name].append(thread_elapsed / count)
        metrics = {name: variant.metrics() for name, variant in variants.items()}
    finally:
        for variant in reversed(started):
            variant.teardown()
    results = []
    for name in names:
        baseline = benchmark.baseline_of(name)
        wall = summarise(samples[name], samples[baseline])
        results.append(
            VariantResult(
                name=name,
                per_op_ns=wall.per_op_ns,
                operations=operations[name],
                median_ns=wall.median_ns,
                p10_ns=wall.p10_ns,
                p90_ns=wall.p90_ns,
                ratio=wall.ratio,
                metrics=metrics[name],
                baseline=baseline,
                cpu=summarise(cpu_samples[name], cpu_samples[baseline]) if measure_cpu else None,
                thread_cpu=summarise(thread_samples[name], thread_samples[baseline]) if measure_cpu else None,
            )
        )
    return Result(benchmark, rounds, warmup, tuple(results), tuple(schedule))


def summarise(samples: Sequence[float], baseline_samples: Sequence[float]) -> Figures:
    median = percentile(samples, 0.5)
    baseline_median = percentile(baseline_samples, 0.5)
    return Figures(
        per_op_ns=tuple(samples),
        median_ns=median,
        p10_ns=percentile(samples, 0.1),
        p90_ns=percentile(samples, 0.9),
        ratio=median / baseline_median if baseline_median > 0 else math.nan,
    )
