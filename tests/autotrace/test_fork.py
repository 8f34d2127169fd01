"""A process forked inside a recorded call: the call is recorded once, by the parent."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import pytest
from autotrace_helpers import import_source, recording

SOURCE = """
import os

def child_work(x):
    return x * 2

def forking(report_fd):
    pid = os.fork()
    if pid == 0:
        child_work(1)
        return pid
    os.waitpid(pid, 0)
    child_work(2)
    return pid
"""


@pytest.mark.skipif(not hasattr(os, "fork"), reason="os.fork is POSIX-only")
def test_a_call_in_flight_at_fork_is_recorded_by_the_parent_only(tmp_path: Path) -> None:
    read_end, write_end = os.pipe()
    with recording() as rec:
        module = import_source(tmp_path, SOURCE)
        pid = module.forking(write_end)
        if pid == 0:  # the child: report what it recorded, then leave without running pytest's exit
            spans = rec.spans()
            report = [(s.name, s.parent.span_id if s.parent else None) for s in spans]
            os.write(write_end, json.dumps(report).encode())
            os._exit(0)
        os.close(write_end)
        with os.fdopen(read_end) as pipe:
            child_report = json.loads(pipe.read())
        parent_spans = {s.name: s for s in rec.spans()}

    sys.stdout.flush()
    forking = parent_spans["forking"]
    # The child recorded only its own call, as a child of the span it inherited.
    assert child_report == [["child_work", forking.context.span_id]]
    assert sorted(parent_spans) == ["child_work", "forking"]
    assert parent_spans["child_work"].attributes["execscope.return"] == "4"
