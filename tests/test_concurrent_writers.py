"""Several processes of one application write to one store at once, while it is being read."""

from __future__ import annotations

import subprocess
import textwrap
from pathlib import Path

from conftest import BIN, execscope, execscope_json

WRITERS = 4
TRACES_PER_WRITER = 150
SPANS_PER_TRACE = 5

WORKER = textwrap.dedent(
    f"""
    import sys
    from opentelemetry import trace
    tracer = trace.get_tracer("worker")
    worker = sys.argv[1]
    for number in range({TRACES_PER_WRITER}):
        with tracer.start_as_current_span(f"job-{{worker}}-{{number}}"):
            for step in range({SPANS_PER_TRACE - 1}):
                with tracer.start_as_current_span("step") as span:
                    span.set_attribute("worker", worker)
    """
)


def test_concurrent_processes_lose_no_span_and_readers_work_meanwhile(
    env: dict[str, str], tmp_path: Path
) -> None:
    (tmp_path / "worker.py").write_text(WORKER)
    # Small batches and a short delay make the writers' transactions interleave.
    writer_env = {**env, "OTEL_BSP_MAX_EXPORT_BATCH_SIZE": "50", "OTEL_BSP_SCHEDULE_DELAY": "5"}
    writers = [
        subprocess.Popen(
            [str(BIN / "execscope"), "run", "worker.py", str(number)],
            env=writer_env,
            cwd=tmp_path,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for number in range(WRITERS)
    ]
    readings = []
    while any(writer.poll() is None for writer in writers):
        reading = execscope("traces", "--json", "--limit", "5", env=env, cwd=tmp_path)
        if reading.returncode == 0:  # the store may not exist yet in the first moments
            readings.append(reading)
    outcomes = [writer.communicate(timeout=60) for writer in writers]

    assert [writer.returncode for writer in writers] == [0] * WRITERS, outcomes
    assert all(stderr == "" for _, stderr in outcomes), outcomes
    listed = execscope_json("traces", "--limit", "100000", env=env, cwd=tmp_path)
    spans = sum(trace["span_count"] for trace in listed)
    assert (len(listed), spans) == (
        WRITERS * TRACES_PER_WRITER,
        WRITERS * TRACES_PER_WRITER * SPANS_PER_TRACE,
    )
    assert {trace["root_name"].split("-")[1] for trace in listed} == {
        str(number) for number in range(WRITERS)
    }
    assert all(reading.stdout.startswith("[") for reading in readings)
