"""Under load the governor's level tells rewritten functions what not to capture."""

from __future__ import annotations

import textwrap
from pathlib import Path

from autotrace_helpers import import_source, recording

from execscope.processors import SHEDDING, Level


def test_the_auto_instrumentor_stops_capturing_what_the_level_sheds(tmp_path: Path) -> None:
    source = textwrap.dedent(
        """
        class Counter:
            def __init__(self):
                self.n = 0

            def add(self, k):
                self.n += k
                return self.n
        """
    )
    try:
        with recording() as rec:
            module = import_source(tmp_path, source)
            counter = module.Counter()
            for level in (Level.NORMAL, Level.DEGRADED, Level.CRITICAL):
                SHEDDING.apply(level)
                with rec.tracer.start_as_current_span(level.name):
                    counter.add(1)
            spans = [s for s in rec.spans() if s.name == "Counter.add"]
    finally:
        SHEDDING.apply(Level.NORMAL)
    captured = [
        sorted(k for k in (s.attributes or {}) if k.startswith("execscope.") and "correlation" not in k)
        for s in spans
    ]
    assert captured == [
        ["execscope.args.k", "execscope.return", "execscope.state.diff"],
        ["execscope.args.k", "execscope.return"],
        [],
    ]
