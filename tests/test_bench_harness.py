"""The benchmark harness: alternation, medians and ratios with a fake clock; ``python -m bench --list``.

No timing is asserted here: benchmarks report figures, they never pass or fail.
"""

from __future__ import annotations

import functools
import json
import subprocess
import sys
from pathlib import Path

import pytest

# ``bench`` is a top-level package of the repository, not part of the installed distribution.
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench._harness import Benchmark, Variant, percentile, run_benchmark
from bench._report import Environment, render_json, render_text

REPO_ROOT = Path(__file__).resolve().parents[1]


class FakeClock:
    def __init__(self) -> None:
        self.now = 0

    def __call__(self) -> int:
        return self.now


class FakeVariant(Variant):
    """Advances the fake clock by a scripted number of nanoseconds per round and logs every call."""

    def __init__(
        self, name: str, costs: list[int], operations: int, clock: FakeClock, log: list[str]
    ) -> None:
        self.name, self.costs, self.operations, self.clock, self.log = name, costs, operations, clock, log
        self.round = 0

    def setup(self) -> None:
        self.log.append(f"setup {self.name}")

    def run_once(self) -> int:
        self.log.append(f"run {self.name}")
        self.clock.now += self.costs[self.round]
        self.round += 1
        return self.operations

    def end_round(self) -> None:
        # Outside the timed region: time passing here must not count.
        self.clock.now += 1_000_000
        self.log.append(f"end {self.name}")

    def metrics(self) -> dict[str, float]:
        return {"rounds_seen": self.round}

    def teardown(self) -> None:
        self.log.append(f"teardown {self.name}")


def fake_benchmark(clock: FakeClock, log: list[str]) -> Benchmark:
    # Per-operation ns = cost / operations. The first cost of each list is the warm-up round.
    scripts = {
        "a": ([999, 100, 300, 200, 500, 400], 10),  # per op 10, 30, 20, 50, 40 -> median 30
        "b": ([999, 600, 200, 1000, 800, 400], 10),  # per op 60, 20, 100, 80, 40 -> median 60
        "c": ([999, 45, 15, 30, 75, 60], 5),  # per op 9, 3, 6, 15, 12 -> median 9
    }

    def factory(name: str) -> FakeVariant:
        costs, operations = scripts[name]
        return FakeVariant(name, costs, operations, clock, log)

    return Benchmark(
        name="fake",
        description="a fake benchmark",
        variants={name: functools.partial(factory, name) for name in scripts},
        baseline="a",
    )


def test_variants_alternate_and_medians_and_ratios_are_computed() -> None:
    clock, log = FakeClock(), list[str]()
    result = run_benchmark(fake_benchmark(clock, log), rounds=5, warmup=1, clock=clock, collect_garbage=False)

    assert result.schedule == ("a", "b", "c") * 6
    runs = [entry for entry in log if not entry.startswith(("setup", "teardown"))]
    assert runs == [f"{step} {name}" for _ in range(6) for name in "abc" for step in ("run", "end")]
    assert log[:3] == ["setup a", "setup b", "setup c"]
    assert log[-3:] == ["teardown c", "teardown b", "teardown a"]

    by_name = {variant.name: variant for variant in result.variants}
    assert by_name["a"].per_op_ns == (10, 30, 20, 50, 40)
    assert (by_name["a"].median_ns, by_name["b"].median_ns, by_name["c"].median_ns) == (30, 60, 9)
    assert by_name["a"].ratio == 1.0
    assert by_name["b"].ratio == pytest.approx(2.0)
    assert by_name["c"].ratio == pytest.approx(0.3)
    assert by_name["a"].p10_ns == pytest.approx(14.0)  # sorted 10,20,30,40,50: rank 0.4
    assert by_name["a"].p90_ns == pytest.approx(46.0)  # rank 3.6
    assert by_name["b"].operations == 50
    assert by_name["c"].metrics == {"rounds_seen": 6}


def test_percentile_interpolates_between_ranks() -> None:
    assert percentile([5.0], 0.9) == 5.0
    assert percentile([1.0, 2.0, 3.0, 4.0], 0.5) == 2.5
    assert percentile([4.0, 1.0, 3.0, 2.0], 0.1) == pytest.approx(1.3)


def test_variants_are_torn_down_when_a_round_fails() -> None:
    clock, log = FakeClock(), list[str]()
    benchmark = fake_benchmark(clock, log)
    with pytest.raises(IndexError):  # the scripts hold six rounds
        run_benchmark(benchmark, rounds=10, warmup=0, clock=clock, collect_garbage=False)
    assert log[-3:] == ["teardown c", "teardown b", "teardown a"]


def test_reports_start_with_command_python_and_machine() -> None:
    clock, log = FakeClock(), list[str]()
    result = run_benchmark(fake_benchmark(clock, log), rounds=5, warmup=1, clock=clock, collect_garbage=False)
    environment = Environment("python -m bench fake", "CPython 3.x", "Linux x86_64, 2 cores")

    text = render_text(result, environment)
    assert text.splitlines()[0] == "# python -m bench fake | CPython 3.x | Linux x86_64, 2 cores"
    assert "2.00x" in text

    document = json.loads(render_json(result, environment))
    assert document["command"] == "python -m bench fake"
    assert [variant["ratio_to_baseline"] for variant in document["variants"]] == pytest.approx(
        [1.0, 2.0, 0.3]
    )


def test_bench_list_names_span_export() -> None:
    completed = subprocess.run(
        [sys.executable, "-m", "bench", "--list"],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        check=True,
        timeout=120,
    )
    assert "span_export" in completed.stdout.split()


class BackgroundVariant(Variant):
    """Spends ``cost`` on the calling thread and ``background`` more process CPU in ``settle``."""

    def __init__(self, cost: int, background: int, clocks: tuple[FakeClock, FakeClock, FakeClock]) -> None:
        self.cost, self.background = cost, background
        self.wall, self.cpu, self.thread = clocks

    def run_once(self) -> int:
        for clock in (self.wall, self.cpu, self.thread):
            clock.now += self.cost
        return 10

    def settle(self) -> None:
        # Another thread's work: process CPU only, after the timed region.
        self.cpu.now += self.background
        self.wall.now += 1_000_000


def test_cpu_windows_include_settle_and_ratios_use_each_variants_baseline() -> None:
    clocks = (FakeClock(), FakeClock(), FakeClock())
    benchmark = Benchmark(
        name="fake",
        description="variants in two groups",
        variants={
            name: functools.partial(BackgroundVariant, cost, background, clocks)
            for name, cost, background in (
                ("a/plain", 100, 0),
                ("a/traced", 300, 200),
                ("b/plain", 1_000, 0),
                ("b/traced", 1_500, 500),
            )
        },
        baseline="a/plain",
        baselines={"b/plain": "b/plain", "b/traced": "b/plain"},
        measure_cpu=True,
        notes=lambda result: [f"note: {result.variant('b/traced').name}"],
    )
    wall, cpu, thread = clocks
    result = run_benchmark(
        benchmark, rounds=3, warmup=1, clock=wall, cpu_clock=cpu, thread_clock=thread, collect_garbage=False
    )

    traced = result.variant("a/traced")
    assert traced.median_ns == 30 and traced.ratio == pytest.approx(3.0)
    assert traced.cpu is not None and traced.thread_cpu is not None
    assert traced.cpu.median_ns == 50 and traced.cpu.ratio == pytest.approx(5.0)
    assert traced.thread_cpu.median_ns == 30
    b_traced = result.variant("b/traced")
    assert b_traced.baseline == "b/plain" and b_traced.ratio == pytest.approx(1.5)
    assert b_traced.cpu is not None and b_traced.cpu.ratio == pytest.approx(2.0)

    text = render_text(result, Environment("python -m bench fake", "CPython 3.x", "test"))
    assert "thread cpu µs/op" in text and "vs baseline" in text
    assert text.splitlines()[-1] == "note: b/traced"
    document = json.loads(render_json(result, Environment("c", "p", "m")))
    assert document["variants"][1]["cpu"]["median_ns"] == 50
    assert document["notes"] == ["note: b/traced"]


def test_a_baseline_outside_the_variants_is_refused() -> None:
    with pytest.raises(ValueError, match="baselines"):
        Benchmark(
            name="fake",
            description="d",
            variants={"a": functools.partial(FakeVariant, "a", [1], 1, FakeClock(), [])},
            baseline="a",
            baselines={"a": "missing"},
        )


def test_only_keeps_the_matching_variants_and_the_baselines_they_compare_to() -> None:
    def variant(name: str) -> functools.partial[FakeVariant]:
        return functools.partial(FakeVariant, name, [1], 1, FakeClock(), [])

    names = ("f/plain", "f/args", "f/timing", "otlp/sdk", "otlp/args")
    benchmark = Benchmark(
        name="fake",
        description="d",
        variants={name: variant(name) for name in names},
        baseline="f/plain",
        baselines={"otlp/sdk": "otlp/sdk", "otlp/args": "otlp/sdk"},
    )

    only_otlp = benchmark.only(["otlp/a*"])
    assert list(only_otlp.variants) == ["otlp/sdk", "otlp/args"]
    assert only_otlp.baseline_of("otlp/args") == "otlp/sdk"
    assert list(benchmark.only(["f/args", "f/timing"]).variants) == ["f/plain", "f/args", "f/timing"]
    with pytest.raises(ValueError, match="no variant matches"):
        benchmark.only(["nothing*"])
