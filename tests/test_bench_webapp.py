"""The web application benchmark, in its quickest mode, so it cannot rot.

Every variant is a real uvicorn process serving ``examples/webapp`` on PostgreSQL, as in a real
run, measured for one one-second window at a low rate. Only the structure is checked: every
variant reports, no request failed, the instrumented variants' receivers got spans, and execscope
exported over OTLP only. No figure is asserted. Without PostgreSQL the test is skipped, except on
CI, where it must run.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

from conftest import require_service

# ``bench`` is a top-level package of the repository, not part of the installed distribution.
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench import webapp
from bench._report import Environment

pytestmark = pytest.mark.slow

QUICK = webapp.Config(rate=40, seconds=1, rounds=1, users=50, warmup_requests=20)


@pytest.fixture(autouse=True)
def _needs_postgresql() -> None:
    require_service("PostgreSQL", 5432)


def test_every_variant_reports_and_the_instrumented_ones_record() -> None:
    session = webapp.run(QUICK)

    assert session.problems == []
    assert list(session.figures) == list(webapp.VARIANTS)
    assert [window.variant for window in session.windows] == list(webapp.VARIANTS)
    for variant, figures in session.figures.items():
        assert figures.windows == 1, variant
        assert figures.completed == figures.scheduled == 40, variant
        assert figures.errors == {}, variant
        assert figures.p50_ms > 0 and figures.p99_ms >= figures.p50_ms, variant
        assert figures.cpu_ms_per_request >= 0, variant
        if variant == webapp.BASELINE:
            assert figures.spans == 0
        else:
            assert figures.spans > 0 and figures.spans_total >= figures.spans, variant
        if variant in webapp.EXECSCOPE_VARIANTS:
            assert figures.exporters and all(name.startswith("OTLP/") for name in figures.exporters)
        else:
            assert figures.exporters is None

    text = "\n".join(webapp.report_lines(session))
    for variant in webapp.VARIANTS:
        assert f"\n{variant} " in text
    assert "targets (the issue's" in text
    assert "execscope_default p50 no slower than opentelemetry_instrument" in text
    assert "ERROR" not in text
    environment = Environment("python -m bench.webapp", "CPython 3.x", "test machine")
    document = json.loads(json.dumps(webapp.document(session, environment)))
    assert [variant["variant"] for variant in document["variants"]] == list(webapp.VARIANTS)
    assert document["problems"] == []


def test_the_command_line_and_the_harness_know_it() -> None:
    with pytest.raises(SystemExit):
        webapp.main(["--variants", "no_such_variant"])
    assert webapp.rotated(webapp.VARIANTS, 1) == [*webapp.VARIANTS[1:], webapp.VARIANTS[0]]
    benchmark = webapp.make_benchmark(QUICK)
    assert benchmark.name == "webapp" and list(benchmark.variants) == list(webapp.VARIANTS)
    assert benchmark.baseline == webapp.BASELINE
