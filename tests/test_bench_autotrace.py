"""The auto-instrumentor's benchmarks, run in a tiny configuration so they cannot rot.

Every variant runs (Logfire's only when the ``bench`` extra is installed; otherwise the report
must say it was skipped). No timing is asserted: the checks are that each variant did what its
name says (recorded a span per call, or none) and that the report carries its comparisons.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

# ``bench`` is a top-level package of the repository, not part of the installed distribution.
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench import autotrace, autotrace_breakdown, autotrace_import
from bench._harness import run_benchmark
from bench._report import Environment, render_json, render_text

REPO_ROOT = Path(__file__).resolve().parents[1]
ENVIRONMENT = Environment("python -m bench autotrace", "CPython 3.x", "test machine")


def test_autotrace_runs_every_variant_and_reports_the_targets() -> None:
    benchmark = autotrace.make_benchmark(calls={"f": 20, "work": 10}, otlp_calls=20)
    result = run_benchmark(benchmark, rounds=1, warmup=0)

    names = {variant.name for variant in result.variants}
    for group in ("f", "work"):
        for kind in ("plain", "sdk_span", "timing", "args", "full", "args_unsampled_otel", "ast_args"):
            assert f"{group}/{kind}" in names
        for level in autotrace.LEVELS:
            assert {f"{group}/{level}_unsampled", f"{group}/{level}_below_min"} <= names
    assert {"otlp/sdk_span", "otlp/args"} <= names
    assert ("f/logfire" in names) == autotrace.logfire_available()

    for variant in result.variants:
        assert variant.cpu is not None and variant.thread_cpu is not None
        kind = variant.name.partition("/")[2]
        if kind == "plain":
            continue
        spans_per_call = variant.metrics["spans_per_call"]
        if kind.endswith(("_unsampled", "_unsampled_otel")):
            assert spans_per_call == 0, variant.name
        elif kind.endswith("_below_min"):
            assert spans_per_call < 0.5, variant.name  # only the drive loop's own span
        else:
            # One span per call (OTLP: as counted by the receiver process), plus the loop's.
            assert spans_per_call >= 1, variant.name
        if "recorder_dropped" in variant.metrics:
            assert variant.metrics["recorder_dropped"] == 0
            assert variant.metrics["internal_errors"] == 0

    text = render_text(result, ENVIRONMENT)
    assert "thread cpu µs/call" in text
    assert "targets (product spec; one on added time" in text
    assert "total process cpu per recorded call incl. OTLP export" in text
    assert ("logfire: not installed" in text) != autotrace.logfire_available()
    document = json.loads(render_json(result, ENVIRONMENT))
    assert document["notes"]
    assert all("thread_cpu" in variant for variant in document["variants"])
    # Without the bench extra, only Logfire's variants go, and the report says why.
    assert not any("logfire" in name for name in autotrace.make_benchmark(logfire=False).variants)
    assert autotrace.notes(result, logfire=False)[0].startswith("logfire: not installed")


def test_autotrace_import_runs_cold_and_warm_from_the_command_line() -> None:
    result = run_benchmark(autotrace_import.make_benchmark(classes=2, functions=3), rounds=2, warmup=0)
    assert {variant.name for variant in result.variants} == {
        "plain_cold",
        "rewritten_cold",
        "ast_rewritten_cold",
        "plain_warm",
        "rewritten_warm",
        "ast_rewritten_warm",
        "roundtrip_cold",
        "libraries_plain",
        "libraries_hooked",
    }
    assert result.variant("rewritten_cold").baseline == "plain_cold"
    assert result.variant("ast_rewritten_cold").baseline == "plain_cold"
    assert result.variant("roundtrip_cold").baseline == "plain_cold"
    assert result.variant("libraries_hooked").baseline == "libraries_plain"
    assert result.variant("libraries_hooked").metrics["imports_ms"] > 0
    text = render_text(result, ENVIRONMENT)
    assert "rewriting, warm cache" in text
    assert "compiling them back, no rewrite" in text
    assert "installed libraries imported by a new interpreter" in text
    assert len(autotrace_import.generate_module().splitlines()) >= 2_000

    completed = subprocess.run(
        [sys.executable, "-m", "bench", "autotrace_import", "--rounds", "1", "--warmup", "0"],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        check=True,
        timeout=120,
    )
    assert "rewritten_warm" in completed.stdout
    assert "targets (product spec):" in completed.stdout


def test_autotrace_breakdown_times_every_step() -> None:
    result = run_benchmark(autotrace_breakdown.make_benchmark(operations=20), rounds=1, warmup=0)
    names = [variant.name for variant in result.variants]
    assert names[0] == "call/plain"
    assert {"call/args", "step/capture_arguments+Call()", "export/otlp_encode_execscope"} <= set(names)
    assert all(variant.thread_cpu is not None and variant.operations == 20 for variant in result.variants)
