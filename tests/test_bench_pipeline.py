"""The pipeline benchmark, in its quickest mode, so it cannot rot.

Every variant runs in its own process against rotel and the counting receiver, as in a real run,
with a few thousand spans. Only the structure is checked: every variant reports, and execscope's
variants account for every span they did not deliver. No figure is asserted. Without rotel (the
test extra) the test is skipped, except on CI, where it must run.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

# ``bench`` is a top-level package of the repository, not part of the installed distribution.
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench import pipeline
from bench._harness import run_benchmark
from bench._report import Environment, render_text

REPO_ROOT = Path(__file__).resolve().parents[1]
SPANS = 2_000


@pytest.fixture(autouse=True)
def _needs_rotel() -> None:
    if pipeline.find_rotel() is not None:
        return
    message = "rotel (the test extra) is not installed: pip install -e '.[test]'"
    if os.environ.get("CI", "").strip().lower() in ("true", "1"):
        pytest.fail(message + "; CI must run the pipeline benchmark against it")
    pytest.skip(message)


def test_every_variant_reports_and_execscope_accounts_for_every_span() -> None:
    runs, receiver = pipeline.run_all(SPANS)

    assert [run.variant for run in runs] == list(pipeline.VARIANTS)
    assert receiver.startswith("rotel")
    for run in runs:
        assert run.produced == SPANS, run.variant
        assert 0 <= run.delivered <= run.produced, run.variant
        assert run.wall_s > 0 and run.cpu_s > 0 and run.process_cpu_s >= run.cpu_s, run.variant
        if run.variant == pipeline.REFERENCE:
            assert run.delivered == 0
        if run.variant.startswith("execscope"):
            assert run.dropped is not None, run.variant
            # Delivered (counted at the receiver) + dropped by reason + spooled == produced.
            assert run.delivered + sum(run.dropped.values()) + run.spooled_pending == run.produced, run
            assert run.unexplained == 0
            assert run.internal_errors == 0, run.variant
            assert run.governor is not None and "timeline" in run.governor
        else:
            assert run.dropped is None

    text = "\n".join(pipeline.report_lines(runs, receiver=receiver, spans=SPANS))
    for variant in pipeline.VARIANTS:
        assert f"\n{variant} " in text
    assert "targets (the issue's):" in text
    assert "no span lost without a counted reason" in text
    assert f"per cpu-second: {pipeline.VARIANTS[2]}" in text


def test_the_harness_and_the_command_line_run_it_too() -> None:
    benchmark = pipeline.make_benchmark(spans=200, variants=("sdk_default", "execscope"))
    result = run_benchmark(benchmark, rounds=1, warmup=0)
    assert {variant.name for variant in result.variants} == {"sdk_default", "execscope"}
    assert all(variant.metrics["produced"] == 200 for variant in result.variants)
    text = render_text(result, Environment("python -m bench pipeline", "CPython 3.x", "test machine"))
    assert "each variant's own figures" in text
    assert "all counted" in text

    completed = subprocess.run(
        [sys.executable, "-m", "bench.pipeline", "--spans", "200", "--variants", "sdk_no_export", "--json"],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        check=True,
        timeout=120,
    )
    document = json.loads(completed.stdout)
    assert document["spans"] == 200
    assert [variant["variant"] for variant in document["variants"]] == ["sdk_no_export"]
