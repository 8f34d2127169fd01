"""execscope reports on itself: OpenTelemetry metrics, and `execscope status` for running processes."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from pipeline_helpers import in_memory

from execscope.processors._self_metrics import register_self_metrics


def test_the_pipeline_publishes_its_counts_and_drops_as_metrics(tmp_path: Path) -> None:
    reader = InMemoryMetricReader()
    with in_memory(tmp_path, tail_keep_rate=0.0, tail_latency_threshold="off") as (pipe, _):
        register_self_metrics(pipe.monitor, MeterProvider(metric_readers=[reader]))
        for _ in range(3):
            with pipe.tracer.start_as_current_span("dropped by sampling"):
                pass
        pipe.flush()
        data = reader.get_metrics_data()
    points = {
        (metric.name, tuple(sorted(point.attributes.items()))): point.value
        for resource in data.resource_metrics
        for scope in resource.scope_metrics
        for metric in scope.metrics
        for point in metric.data.data_points
    }
    assert points[("execscope.spans", (("execscope.outcome", "recorded"),))] == 3
    assert points[("execscope.spans.dropped", (("execscope.drop.reason", "sampling"),))] == 3
    assert points[("execscope.governor.level", ())] == 0


PROGRAM = """
import sys
from opentelemetry.sdk.trace import TracerProvider
from execscope.processors._build import build_pipeline
from execscope.settings import load_settings

processor, monitor = build_pipeline(load_settings({"store": sys.argv[1]}).settings, [], service="status-demo")
provider = TracerProvider()
provider.add_span_processor(processor)
for _ in range(5):
    with provider.get_tracer("demo").start_as_current_span("work"):
        pass
monitor.start()
print("ready", flush=True)
sys.stdin.readline()
provider.shutdown()
"""


def test_execscope_status_shows_running_and_exited_processes(tmp_path: Path) -> None:
    env = {**os.environ, "TMPDIR": str(tmp_path)}
    script = tmp_path / "program.py"
    script.write_text(textwrap.dedent(PROGRAM))
    cli = [str(Path(sys.executable).with_name("execscope")), "status"]
    program = subprocess.Popen(
        [sys.executable, str(script), str(tmp_path / "store")],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
        env=env,
    )
    assert program.stdout is not None and program.stdin is not None
    try:
        assert program.stdout.readline().strip() == "ready"
        running = subprocess.run([*cli, "--json"], capture_output=True, text=True, env=env, check=True)
        (status,) = json.loads(running.stdout)
        assert (status["pid"], status["service"], status["running"]) == (program.pid, "status-demo", True)
        assert status["spans"]["ended"] == 5
        assert status["level"] == "normal"
        human = subprocess.run(cli, capture_output=True, text=True, env=env, check=True).stdout
        assert f"{program.pid}  status-demo  running  level normal" in human
    finally:
        program.stdin.close()
        program.wait(timeout=30)
    after = subprocess.run([*cli, "--all", "--json"], capture_output=True, text=True, env=env, check=True)
    (exited,) = json.loads(after.stdout)
    assert exited["running"] is False and exited["exited"] is True
    assert (
        "no traced process is running"
        in subprocess.run(cli, capture_output=True, text=True, env=env, check=True).stdout
    )
