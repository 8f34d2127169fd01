"""execscope's span pipeline against the SDK's default export path, each variant in a process of its own.

The issue's measurement: the SDK's defaults (``BatchSpanProcessor`` + ``OTLPSpanExporter`` into
rotel, 200k spans made in a tight loop) silently drop 29-41% of the spans, deliver about
9-11k spans/s and cost about 55 µs of CPU per span. This benchmark measures execscope's pipeline
against that path in the same run and on the same receiver set-up, for the same spans.

Every variant runs in a fresh Python process (``python -m bench.pipeline --child NAME``), so no
globals, threads or CPU accounting are shared, and makes ``--spans`` root spans (200,000 by
default) in a tight loop: five attributes and one event each, as ``bench/span_export.py`` makes
them. The spans go over OTLP/gRPC to the rotel collector (the ``rotel`` package of the test
extra), which forwards them to ``bench._otlp_receiver``, a process that counts what arrives;
without rotel the receiver takes the spans directly and the report says so. Each variant gets
a collector pair of its own, and its "delivered" count is read at the receiver once it has
settled (it reached what the exporter says it sent, or stopped moving), after the process has
shut its tracer provider down.

Variants (the exporter always ``OTLPSpanExporter(endpoint=..., insecure=True)``):

- ``sdk_no_export``: a ``TracerProvider`` with no span processor, what making the spans costs
  the application: the reference for what the others add.
- ``sdk_default``: ``BatchSpanProcessor`` with the SDK's defaults.
- ``execscope``: ``build_pipeline`` with default settings (its store and spool in a temporary
  folder) and the monitor started, as the distro sets it up.
- ``execscope_no_cpu_budget``: the same with ``governor_cpu_budget`` 0 (no CPU limit; the governor
  still sheds when the export queue fills): the pipeline's own efficiency.
- ``execscope_governed``: the same with ``governor_cpu_budget`` 0.05.
- ``execscope_autotrace``: the spans are calls of an auto-instrumented function (five arguments,
  ``autotrace_level`` full, default budget) recorded through the real import hook.

CPU is read with ``getrusage(RUSAGE_SELF)`` inside each process, from just before its tracer
provider is built until its shutdown returned (all threads: the application's, the export
worker's, gRPC's); the whole process's CPU, start-up and imports included, comes from ``wait4``.
On a machine with few cores the collector and the receiver compete with the measured process
for CPU: wall-clock figures suffer from that, CPU figures much less.

``python -m bench.pipeline [--spans N] [--variants a,b] [--no-rotel] [--json]`` runs every variant
once. ``python -m bench pipeline --rounds 1 --warmup 0`` runs it through the common harness (every
round starts fresh processes; ``EXECSCOPE_BENCH_PIPELINE_SPANS`` sets the spans).
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import importlib
import importlib.util
import json
import math
import os
import resource
import shlex
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import asdict, dataclass
from functools import partial
from pathlib import Path
from typing import IO, Any

from bench._harness import Benchmark, Result, Variant
from bench._otlp_receiver import Receiver
from bench._processes import stop
from bench._report import Environment, table
from bench._settings import isolated_settings

SPANS = 200_000
SPANS_ENV = "EXECSCOPE_BENCH_PIPELINE_SPANS"
VARIANTS: tuple[str, ...] = (
    "sdk_no_export",
    "sdk_default",
    "execscope",
    "execscope_no_cpu_budget",
    "execscope_governed",
    "execscope_autotrace",
)
BASELINE = "sdk_default"
#: Made in the same process as the spans, so its CPU per span is what the application pays anyway.
REFERENCE = "sdk_no_export"
GOVERNED_CPU_BUDGET = 0.05
#: ``governor_cpu_budget`` per execscope variant (absent: the setting's default); 0 is "no CPU limit".
CPU_BUDGETS: dict[str, float] = {"execscope_governed": GOVERNED_CPU_BUDGET, "execscope_no_cpu_budget": 0.0}
SERVICE = "execscope-bench"
SCOPE = "execscope.bench.pipeline"
#: Four fixed attributes; each span adds a fifth, its index (the shape of ``bench/span_export.py``).
ATTRIBUTES: dict[str, str | bool | float | int] = {
    "code.function.name": "handle_request",
    "bench.route": "/orders/{id}",
    "bench.retry": False,
    "bench.ratio": 0.25,
}
APP_MODULE = "execscope_bench_pipeline_app"
APP_SOURCE = '''\
"""The autotrace variant's application function: five arguments, as the others' five attributes."""


def handle_request(order_id, route, retry, ratio, index):
    return index
'''

#: Targets from the issue, compared with in the notes.
TARGET_PER_CPU_VS_SDK = 3.0
#: The issue's figures for the SDK path, quoted next to ours.
ISSUE_SDK_FIGURES = (
    "issue's SDK figures: 29-41% of spans dropped, 9-11k spans/s delivered, ~55 µs cpu per span"
)

_REPOSITORY = Path(__file__).resolve().parents[1]
_RESULT_PREFIX = "RESULT "
#: How long the receiver's count may stand still below what the exporter sent before it is read
#: as final (longer than rotel's first retry back-off, 5 s).
_QUIET_S = 8.0
_SETTLE_TIMEOUT_S = 60.0
_POLL_S = 0.05


# -- the collector: rotel forwarding to the counting receiver ---------------------------------


def find_rotel() -> Path | None:
    """The ``rotel-agent`` binary of the installed ``rotel`` package, or None."""
    try:
        spec = importlib.util.find_spec("rotel")
    except (ImportError, ValueError):
        return None
    locations = list(spec.submodule_search_locations or []) if spec is not None else []
    for location in locations:
        binary = Path(location) / "rotel-agent"
        if binary.is_file() and os.access(binary, os.X_OK):
            return binary
    return None


def rotel_version(binary: Path) -> str:
    try:
        completed = subprocess.run(
            [str(binary), "--version"], capture_output=True, text=True, timeout=10, check=False
        )
    except (OSError, subprocess.TimeoutExpired):
        return "rotel (version unknown)"
    return completed.stdout.strip() or "rotel (version unknown)"


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def _listening(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.2):
            return True
    except OSError:
        return False


class Collector:
    """The receiving end of one variant: rotel on a loopback port forwarding to a counting
    receiver process, or (``rotel`` None) the receiver alone."""

    def __init__(self, rotel: Path | None, folder: Path) -> None:
        self._rotel: subprocess.Popen[bytes] | None = None
        self._log: IO[bytes] | None = None
        self.receiver = Receiver(max_seconds=3600.0)
        try:
            if rotel is None:
                self.endpoint = self.receiver.endpoint
            else:
                self.endpoint = self._start_rotel(rotel, folder)
        except BaseException:
            self.close()
            raise

    def _start_rotel(self, binary: Path, folder: Path) -> str:
        self._log = (folder / "rotel.log").open("wb")
        for _attempt in range(3):  # a free port may be taken between probing and binding
            grpc_port, http_port = _free_port(), _free_port()
            command = [
                str(binary),
                "start",
                "--otlp-grpc-endpoint",
                f"127.0.0.1:{grpc_port}",
                "--otlp-http-endpoint",
                f"127.0.0.1:{http_port}",
                "--exporter",
                "otlp",
                "--otlp-exporter-endpoint",
                f"http://{self.receiver.endpoint}",
                "--otlp-exporter-compression",
                "none",
                # Requests to the receiver stay well under gRPC's default 4 MiB message limit.
                "--traces-batch-max-size",
                "4096",
                "--pid-file",
                str(folder / "rotel.pid"),
                "--log-file",
                str(folder / "rotel-agent.log"),
            ]
            process = subprocess.Popen(command, stdout=self._log, stderr=subprocess.STDOUT)
            self._rotel = process
            deadline = time.monotonic() + 15.0
            while process.poll() is None and time.monotonic() < deadline:
                if _listening(grpc_port):
                    return f"127.0.0.1:{grpc_port}"
                time.sleep(_POLL_S)
            self._stop_rotel()
        self._log.flush()
        text = (folder / "rotel.log").read_text(encoding="utf-8", errors="replace")
        raise RuntimeError(f"rotel did not start listening; its output:\n{text[-2000:]}")

    def spans_received(self) -> int:
        return self.receiver.spans_received()

    def settle(self, expected: int, timeout_s: float = _SETTLE_TIMEOUT_S) -> tuple[int, float]:
        """The receiver's count once it reached ``expected`` or stood still for ``_QUIET_S``
        (at most ``timeout_s``), and how long that took."""
        started = time.monotonic()
        count = self.spans_received()
        changed = started
        while count < expected:
            now = time.monotonic()
            if now - changed >= _QUIET_S or now - started >= timeout_s:
                break
            time.sleep(_POLL_S)
            latest = self.spans_received()
            if latest != count:
                count, changed = latest, time.monotonic()
        return count, time.monotonic() - started

    def _stop_rotel(self) -> None:
        process, self._rotel = self._rotel, None
        if process is not None:
            stop(process, timeout_s=10)

    def close(self) -> None:
        try:
            self._stop_rotel()
        finally:
            if self._log is not None:
                self._log.close()
            self.receiver.close()


# -- one variant's run, as the parent sees it --------------------------------------------------


@dataclass
class Run:
    """What one variant's process did, and what arrived at the receiver."""

    variant: str
    produced: int
    #: Spans counted at the receiver.
    delivered: int
    #: Spans the process's exporter reported as accepted by the collector.
    acknowledged: int
    #: Drops by reason as execscope counted them (None: the SDK counts none).
    dropped: dict[str, int] | None
    #: Spans execscope kept in its on-disk spool for the next start (not lost, not delivered yet).
    spooled_pending: int
    #: From the first span to the end of the provider's shutdown.
    wall_s: float
    #: The tight loop alone.
    produce_s: float
    #: Process CPU, all threads, from building the provider to the end of its shutdown.
    cpu_s: float
    #: CPU of the thread that made the spans, during the loop.
    app_thread_cpu_s: float
    #: CPU of the whole process from start to exit (``wait4``): start-up and imports included.
    process_cpu_s: float
    max_rss_mb: float
    #: CPU of execscope's own threads (export workers, the autotrace recorder).
    worker_cpu_s: float = 0.0
    internal_errors: int = 0
    #: What the governor did (execscope variants): budget, level changes, its readings.
    governor: dict[str, Any] | None = None
    settle_s: float = 0.0

    @property
    def lost(self) -> int:
        return self.produced - self.delivered

    @property
    def counted(self) -> int:
        """Spans execscope accounted for without delivering them: dropped by reason, or spooled."""
        return sum((self.dropped or {}).values()) + self.spooled_pending

    @property
    def unexplained(self) -> int | None:
        """Spans lost without a counted reason (None: the SDK counts no reasons)."""
        return None if self.dropped is None else self.lost - self.counted

    @property
    def delivered_per_s(self) -> float:
        return self.delivered / self.wall_s if self.wall_s > 0 else 0.0

    @property
    def cpu_us_per_delivered(self) -> float:
        return self.cpu_s * 1e6 / self.delivered if self.delivered else math.nan

    @property
    def delivered_per_cpu_s(self) -> float:
        return self.delivered / self.cpu_s if self.cpu_s > 0 else 0.0

    def metrics(self) -> dict[str, float]:
        """The headline figures, as the harness reports a variant's metrics."""
        figures = {
            "produced": self.produced,
            "delivered": self.delivered,
            "lost": self.lost,
            "wall_s": self.wall_s,
            "cpu_s": self.cpu_s,
            "delivered_per_s": self.delivered_per_s,
            "delivered_per_cpu_s": self.delivered_per_cpu_s,
        }
        if self.dropped is not None:
            figures["counted_drops"] = self.counted
            figures["unexplained"] = self.lost - self.counted
        return {key: float(value) for key, value in figures.items()}

    def document(self) -> dict[str, Any]:
        return {
            **asdict(self),
            "lost": self.lost,
            "counted": None if self.dropped is None else self.counted,
            "unexplained": self.unexplained,
            "delivered_per_s": self.delivered_per_s,
            "cpu_us_per_delivered": None
            if math.isnan(self.cpu_us_per_delivered)
            else self.cpu_us_per_delivered,
            "delivered_per_cpu_s": self.delivered_per_cpu_s,
        }


def _clean_environment() -> dict[str, str]:
    """This environment without OTEL_* / EXECSCOPE_* settings: every variant runs on defaults."""
    return {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(("OTEL_", "EXECSCOPE_")) and key != "PYTHONPATH"
    }


def _wait_reaping(process: subprocess.Popen[bytes], timeout_s: float) -> tuple[int, resource.struct_rusage]:
    """Wait for ``process`` with ``wait4`` (for its resource usage); kill it after ``timeout_s``."""
    deadline = time.monotonic() + timeout_s
    killed = False
    try:
        while True:
            pid, status, usage = os.wait4(process.pid, os.WNOHANG)
            if pid:
                process.returncode = os.waitstatus_to_exitcode(status)  # reaped: Popen must not wait
                if killed:
                    raise TimeoutError(f"the variant's process did not finish within {timeout_s:.0f} s")
                return process.returncode, usage
            if not killed and time.monotonic() > deadline:
                process.kill()
                killed = True
            time.sleep(_POLL_S)
    except BaseException:
        if process.returncode is None:  # interrupted: never leave the process behind
            process.kill()
            process.wait()
        raise


def child_timeout_s(spans: int) -> float:
    """Generous: the slowest variant delivers about 10k spans/s and may wait 30 s at shutdown."""
    return 120.0 + spans / 1000


def run_variant(variant: str, spans: int, *, rotel: Path | None) -> Run:
    """Run ``variant`` in a fresh process against a fresh collector: what it did and what arrived."""
    if variant not in VARIANTS:
        raise ValueError(f"no variant {variant!r}; the variants are {', '.join(VARIANTS)}")
    folder = Path(tempfile.mkdtemp(prefix=f"execscope-bench-{variant}-"))
    try:
        collector = Collector(rotel, folder)
        try:
            stdout_path, stderr_path = folder / "stdout.txt", folder / "stderr.txt"
            command = [sys.executable, "-m", "bench.pipeline", "--child", variant, "--spans", str(spans)]
            command += ["--endpoint", collector.endpoint, "--workdir", str(folder)]
            with stdout_path.open("wb") as stdout, stderr_path.open("wb") as stderr:
                process = subprocess.Popen(
                    command, cwd=_REPOSITORY, env=_clean_environment(), stdout=stdout, stderr=stderr
                )
                code, usage = _wait_reaping(process, child_timeout_s(spans))
            output = stdout_path.read_text(encoding="utf-8", errors="replace")
            lines = [line for line in output.splitlines() if line.startswith(_RESULT_PREFIX)]
            if code != 0 or not lines:
                errors = stderr_path.read_text(encoding="utf-8", errors="replace")
                raise RuntimeError(
                    f"variant {variant} exited with {code}; its output:\n{output[-2000:]}\n{errors[-4000:]}"
                )
            report: dict[str, Any] = json.loads(lines[-1][len(_RESULT_PREFIX) :])
            delivered, settle_s = collector.settle(report["acknowledged"])
        finally:
            collector.close()
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    return Run(
        variant=variant,
        delivered=delivered,
        process_cpu_s=usage.ru_utime + usage.ru_stime,
        settle_s=settle_s,
        **report,
    )


# -- inside the variant's process -------------------------------------------------------------


def _cpu_s() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def make_spans(tracer: Any, count: int) -> None:
    """The spans of ``bench/span_export.py``: a root span, five attributes, one event."""
    for index in range(count):
        with tracer.start_as_current_span("bench.operation", attributes=ATTRIBUTES) as span:
            span.set_attribute("bench.index", index)
            span.add_event("bench.checkpoint", {"bench.index": index})


@dataclass
class _Timing:
    """The clocks of one variant's process, read around its phases."""

    cpu_start: float = 0.0
    wall_start: float = 0.0
    produce_s: float = 0.0
    app_thread_cpu_s: float = 0.0

    def begin(self) -> None:
        self.cpu_start = _cpu_s()
        self.wall_start = time.perf_counter()

    @contextlib.contextmanager
    def producing(self) -> Iterator[None]:
        self.wall_start = time.perf_counter()
        thread_start = time.thread_time()
        yield
        self.app_thread_cpu_s = time.thread_time() - thread_start
        self.produce_s = time.perf_counter() - self.wall_start

    def end(self) -> dict[str, Any]:
        return {
            "wall_s": time.perf_counter() - self.wall_start,
            "produce_s": self.produce_s,
            "cpu_s": _cpu_s() - self.cpu_start,
            "app_thread_cpu_s": self.app_thread_cpu_s,
            "max_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        }


def _child_sdk(spans: int, endpoint: str, export: bool) -> dict[str, Any]:
    from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor, SpanExportResult

    class CountingExporter(OTLPSpanExporter):
        """The SDK's OTLP exporter, counting the spans the collector accepted (one addition per batch)."""

        acknowledged = 0

        def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
            result = super().export(spans)
            if result is SpanExportResult.SUCCESS:
                self.acknowledged += len(spans)
            return result

    timing = _Timing()
    timing.begin()
    provider = TracerProvider(resource=Resource.create({"service.name": SERVICE}))
    exporter = None
    if export:
        exporter = CountingExporter(endpoint=endpoint, insecure=True)
        provider.add_span_processor(BatchSpanProcessor(exporter))
    with timing.producing():
        make_spans(provider.get_tracer(SCOPE), spans)
    provider.shutdown()
    result = timing.end()
    result.update(
        produced=spans,
        acknowledged=exporter.acknowledged if exporter is not None else 0,
        dropped=None,
        spooled_pending=0,
    )
    return result


def _settings_for(variant: str, folder: Path) -> Any:
    budget = CPU_BUDGETS.get(variant)
    return isolated_settings(folder, {"governor_cpu_budget": budget} if budget is not None else None)


class _GovernorLog:
    """Records each of the monitor's once-a-second readings with the process's CPU and the spans
    made over the same interval (not the last reading, which ``stop()`` takes at shutdown over
    whatever the shutdown flushed in a fraction of a second)."""

    def __init__(self, monitor: Any, timing: _Timing, made: Callable[[], int]) -> None:
        self.monitor = monitor
        self.ticks: list[dict[str, Any]] = []
        self._last = (time.perf_counter(), _cpu_s(), made())
        tick = monitor.tick
        governor = monitor.governor

        def recording_tick(*args: Any, **kwargs: Any) -> Any:
            reading = tick(*args, **kwargs)
            if threading.current_thread().name == "execscope-governor":
                now, cpu, count = time.perf_counter(), _cpu_s(), made()
                then, previous_cpu, previous_count = self._last
                self._last = (now, cpu, count)
                self.ticks.append(
                    {
                        "t": round(now - timing.wall_start, 2),
                        "level": governor.level.name.lower(),
                        "cpu_share": reading.cpu_share,
                        "queue_fill": reading.queue_fill,
                        "elapsed_s": now - then,
                        "process_cpu_s": cpu - previous_cpu,
                        "made": count - previous_count,
                    }
                )
            return reading

        monitor.tick = recording_tick

    def restart(self, made: int) -> None:
        """The intervals are counted from now (the monitor is about to start)."""
        self._last = (time.perf_counter(), _cpu_s(), made)

    def summary(self) -> dict[str, Any]:
        governor = self.monitor.governor
        steps = ["normal"]
        for tick in self.ticks:
            if tick["level"] != steps[-1].partition("@")[0]:
                steps.append(f"{tick['level']}@{tick['t']:.1f}s")
        return {
            "budget": governor.budgets.cpu_share,
            # What the governor last measured on_start + on_end to cost per span.
            "hot_path_estimate_us": self.monitor.processor.clock.per_span_s * 1e6,
            "changes": {name: count for name, count in governor.changes.items() if count},
            "timeline": ", ".join(steps),
            "ticks": self.ticks,
        }


def _autotraced_function(settings: Any, provider: Any, monitor: Any, folder: Path) -> Callable[..., object]:
    """Install the auto-instrumentor as the distro does and import the application's function."""
    from execscope._setup import _monitor_autotrace
    from execscope.autotrace import install

    app_folder = folder / "app"
    app_folder.mkdir()
    (app_folder / f"{APP_MODULE}.py").write_text(APP_SOURCE, encoding="utf-8")
    _monitor_autotrace(monitor)
    install(settings, provider, roots=(str(app_folder.resolve()),))
    sys.path.insert(0, str(app_folder))
    function: Callable[..., object] = importlib.import_module(APP_MODULE).handle_request
    return function


def _child_execscope(variant: str, spans: int, endpoint: str, folder: Path) -> dict[str, Any]:
    from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter
    from opentelemetry.sdk.resources import Resource

    from execscope.autotrace._recorder import RECORDER
    from execscope.autotrace._runtime import not_recorded
    from execscope.processors._build import build_pipeline
    from execscope.processors._delivery import OtlpSink
    from execscope.tracing import ExecscopeTracerProvider

    autotrace = variant == "execscope_autotrace"
    settings = _settings_for(variant, folder)
    timing = _Timing()
    timing.begin()
    # The provider the distro installs.
    provider = ExecscopeTracerProvider(resource=Resource.create({"service.name": SERVICE}))
    processor, monitor = build_pipeline(
        settings, [OTLPSpanExporter(endpoint=endpoint, insecure=True)], service=SERVICE
    )
    # Not published to the user's `execscope status` folder: a benchmark is not a service.
    monitor.status_dir = None
    stats, recorded = processor.stats, RECORDER.stats

    def made() -> int:
        if autotrace:  # every call: recorded, dropped at the recorder's queue, or left without a span
            return recorded.submitted + recorded.dropped_queue_full + sum(not_recorded().values())
        return stats.started

    log = _GovernorLog(monitor, timing, made)
    provider.add_span_processor(processor)
    function = _autotraced_function(settings, provider, monitor, folder) if autotrace else None
    log.restart(made())
    monitor.start()
    with timing.producing():
        if function is not None:
            for index in range(spans):
                function(12_345, "/orders/{id}", False, 0.25, index)
        else:
            make_spans(provider.get_tracer(SCOPE), spans)
    if autotrace:
        RECORDER.shutdown()  # at exit it runs before the provider's shutdown: here too
    provider.shutdown()
    result = timing.end()

    dropped = {reason: count for reason, count in stats.dropped.items() if count}
    worker_cpu_s = sum(sink.export_cpu_s for sink in processor.sinks)
    if autotrace:
        for reason, count in (
            ("recorder_queue_full", recorded.dropped_queue_full),
            ("recorder_no_sink", recorded.dropped_no_sink),
            ("recorder_conversion_error", recorded.conversion_errors),
            # Calls that left no span by a rule, counted on the hot path (at the governor's
            # emergency level, "errors only", a call that returns is one of them).
            *((f"call_{reason}", count) for reason, count in not_recorded().items()),
        ):
            if count:
                dropped[reason] = count
        worker_cpu_s += RECORDER.cpu_s
    result.update(
        produced=spans,
        acknowledged=stats.exported,
        dropped=dropped,
        spooled_pending=sum(
            sink.spool.pending_spans
            for sink in processor.sinks
            if isinstance(sink, OtlpSink) and sink.spool is not None
        ),
        worker_cpu_s=worker_cpu_s,
        internal_errors=stats.internal_errors + recorded.internal_errors,
        governor=log.summary(),
    )
    return result


def child_main(variant: str, spans: int, endpoint: str, folder: Path) -> int:
    if variant in ("sdk_no_export", "sdk_default"):
        report = _child_sdk(spans, endpoint, export=variant == "sdk_default")
    else:
        report = _child_execscope(variant, spans, endpoint, folder)
    print(_RESULT_PREFIX + json.dumps(report), flush=True)
    return 0


# -- the report ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Reference:
    """What the application's own spans cost per span without any export."""

    cpu_s: float
    thread_cpu_s: float
    label: str


def _reference(run: Run, runs: dict[str, Run]) -> _Reference | None:
    if run.variant == "execscope_autotrace":
        # Its spans are calls of a plain function, which cost about 0.1 µs uninstrumented.
        return _Reference(0.0, 0.0, "a plain call, taken as 0")
    reference = runs.get(REFERENCE)
    if reference is None or not reference.produced:
        return None
    count = reference.produced
    return _Reference(reference.cpu_s / count, reference.app_thread_cpu_s / count, REFERENCE)


def _added_share(run: Run, reference: _Reference | None) -> float:
    """CPU execscope added per wall second over the run: its CPU minus what making its spans costs."""
    if reference is None or run.wall_s <= 0:
        return math.nan
    return (run.cpu_s - run.produced * reference.cpu_s) / run.wall_s


def _tick_shares(run: Run, reference: _Reference | None) -> list[float]:
    """The same, per governor tick, from the second tick on (the first is before it could act)."""
    if reference is None or not run.governor:
        return []
    return [
        (tick["process_cpu_s"] - tick["made"] * reference.cpu_s) / tick["elapsed_s"]
        for tick in run.governor["ticks"][1:]
        if tick["elapsed_s"] > 0
    ]


def _number(value: float, digits: int = 1) -> str:
    return "-" if math.isnan(value) else f"{value:,.{digits}f}"


def _verdict(ok: bool) -> str:
    return "met" if ok else "MISSED"


def report_lines(runs: Sequence[Run], *, receiver: str, spans: int) -> list[str]:
    """The comparison table, each variant's details and the targets."""
    by_name = {run.variant: run for run in runs}
    baseline = by_name.get(BASELINE)
    lines = [
        f"{spans:,} root spans per variant (5 attributes, 1 event) made in a tight loop, each variant in a "
        "fresh process",
        f"receiver: {receiver}",
        "cpu: the variant's process, all threads, from building its provider to the end of its shutdown; "
        "delivered: counted at the receiver; counted drops: execscope's drops by reason + spooled",
        "",
    ]
    header = ["variant", "produced", "delivered", "lost", "counted drops", "all counted", "wall s"]
    header += ["delivered/s", "cpu s", "cpu µs/delivered", "delivered/cpu-s", f"vs {BASELINE}"]
    rows = [header]
    for run in runs:
        ratio = math.nan
        if baseline is not None and baseline.delivered_per_cpu_s > 0 and run.delivered:
            ratio = run.delivered_per_cpu_s / baseline.delivered_per_cpu_s
        counted, accounted = "not counted", "-"
        if run.unexplained is not None:
            counted = f"{run.counted:,}"
            accounted = "yes" if run.unexplained == 0 else f"NO ({run.unexplained:+,})"
        rows.append(
            [
                run.variant,
                f"{run.produced:,}",
                f"{run.delivered:,}",
                f"{run.lost:,} ({run.lost / run.produced:.1%})",
                counted,
                accounted,
                _number(run.wall_s, 2),
                _number(run.delivered_per_s, 0),
                _number(run.cpu_s, 2),
                _number(run.cpu_us_per_delivered),
                _number(run.delivered_per_cpu_s, 0),
                "-" if math.isnan(ratio) else f"{ratio:.2f}x",
            ]
        )
    lines.extend(table(rows))
    lines.append("")
    for run in runs:
        lines.extend(_details(run, _reference(run, by_name)))
    lines.append("")
    lines.extend(_targets(runs, by_name))
    return lines


def _details(run: Run, reference: _Reference | None) -> list[str]:
    produced = max(run.produced, 1)
    parts = [
        f"made {run.produced / run.produce_s:,.0f} spans/s" if run.produce_s > 0 else "",
        f"app thread {run.app_thread_cpu_s * 1e6 / produced:.1f} µs/span",
        f"whole process {run.process_cpu_s:.2f} s cpu (with start-up and imports)",
        f"max rss {run.max_rss_mb:.0f} MB",
        f"receiver settled in {run.settle_s:.2f} s",
    ]
    if run.variant == REFERENCE:
        parts.insert(0, "no span processor: what making the spans costs")
    elif run.dropped is None:
        parts.insert(
            0,
            f"exporter acknowledged {run.acknowledged:,}, {run.produced - run.acknowledged:,} never sent "
            "(dropped by the batch queue, uncounted)",
        )
    lines = [f"{run.variant}: " + ", ".join(part for part in parts if part)]
    if run.dropped is not None:
        reasons = ", ".join(f"{reason} {count:,}" for reason, count in sorted(run.dropped.items()))
        lines.append(
            f"  exported {run.acknowledged:,}; dropped by reason: {reasons or 'none'}; spooled for the next "
            f"start {run.spooled_pending:,}; internal errors {run.internal_errors}"
        )
    if run.acknowledged != run.delivered and run.variant != REFERENCE:
        lines.append(
            f"  the exporter counted {run.acknowledged:,} spans accepted, the receiver {run.delivered:,}"
        )
    governor = run.governor
    if governor:
        lines.extend(_governor_details(run, governor, reference))
    return lines


def _governor_details(run: Run, governor: dict[str, Any], reference: _Reference | None) -> list[str]:
    budget = float(governor["budget"])
    ticks = governor["ticks"]
    shares = [tick["cpu_share"] for tick in ticks]
    changes = ", ".join(f"{level} x{count}" for level, count in governor["changes"].items()) or "none"
    budget_text = f"{budget:.2f} core" if budget > 0 else "none"
    over = sum(share > budget for share in shares) if budget > 0 else 0
    lines = [
        f"  governor (cpu budget {budget_text}): {len(ticks)} ticks, levels {governor['timeline']}; "
        f"level changes: {changes}",
        f"    its cpu readings: max {max(shares, default=0.0):.3f}, mean "
        f"{sum(shares) / len(shares) if shares else 0.0:.3f} core, {over} over budget; export queue fill max "
        f"{max((tick['queue_fill'] for tick in ticks), default=0.0):.2f}",
    ]
    produced = max(run.produced, 1)
    hot_path = math.nan
    if reference is not None:
        hot_path = (run.app_thread_cpu_s / produced - reference.thread_cpu_s) * 1e6
    per_tick = _tick_shares(run, reference)
    tick_text = (
        f"per second from the 2nd tick: mean {sum(per_tick) / len(per_tick):.3f}, max {max(per_tick):.3f}"
        if per_tick
        else "per second: fewer than 2 ticks"
    )
    lines.append(
        f"    measured added cpu (process cpu minus {reference.label if reference else REFERENCE}'s per "
        f"span): {_number(_added_share(run, reference), 3)} core over the run, {tick_text}; execscope's "
        f"threads {run.worker_cpu_s / run.wall_s if run.wall_s > 0 else 0.0:.3f} core; app thread "
        f"+{_number(hot_path)} µs/span (on_start + on_end as the governor measured them: "
        f"{governor['hot_path_estimate_us']:.1f})"
    )
    return lines


def _targets(runs: Sequence[Run], by_name: dict[str, Run]) -> list[str]:
    baseline = by_name.get(BASELINE)
    lines = ["targets (the issue's):"]
    for run in runs:
        if run.unexplained is None:
            continue
        lines.append(
            f"  no span lost without a counted reason: {run.variant} lost {run.lost:,}, counted "
            f"{run.counted:,}: {_verdict(run.unexplained == 0)}"
        )
    for run in runs:
        if run.dropped is None or baseline is None or baseline.delivered_per_cpu_s <= 0:
            continue
        ratio = run.delivered_per_cpu_s / baseline.delivered_per_cpu_s
        lines.append(
            f"  >= {TARGET_PER_CPU_VS_SDK:.0f}x {BASELINE}'s delivered spans per cpu-second: {run.variant} "
            f"{run.delivered_per_cpu_s:,.0f} vs {baseline.delivered_per_cpu_s:,.0f} = {ratio:.2f}x: "
            f"{_verdict(ratio >= TARGET_PER_CPU_VS_SDK)}"
        )
    for run in runs:
        budget = float(run.governor["budget"]) if run.governor else 0.0
        if budget <= 0:
            continue
        reference = _reference(run, by_name)
        per_tick = _tick_shares(run, reference)
        prefix = f"  governor holds added cpu under its budget ({budget:.2f} core): {run.variant}"
        if reference is None:
            lines.append(f"{prefix}: not measured ({REFERENCE} was not run)")
        elif not per_tick:
            lines.append(f"{prefix}: not measured (the run was shorter than two governor ticks)")
        else:
            mean = sum(per_tick) / len(per_tick)
            lines.append(
                f"{prefix} {mean:.3f} core per second after its first tick "
                f"({_added_share(run, reference):.3f} over the run): {_verdict(mean <= budget)}"
            )
    lines.append(f"  ({ISSUE_SDK_FIGURES})")
    return lines


# -- running the variants: standalone and through the harness ---------------------------------


def receiver_description(rotel: Path | None) -> str:
    if rotel is None:
        return "bench._otlp_receiver directly (rotel not found: install the test extra)"
    return f"{rotel_version(rotel)} (rotel-agent, OTLP/gRPC, 127.0.0.1) forwarding to bench._otlp_receiver"


def run_all(
    spans: int, variants: Sequence[str] = VARIANTS, *, use_rotel: bool = True
) -> tuple[list[Run], str]:
    """Run ``variants`` one after the other; their runs and the receiver set-up they used."""
    rotel = find_rotel() if use_rotel else None
    if use_rotel and rotel is None:
        print("rotel not found: the variants export straight to bench._otlp_receiver", file=sys.stderr)
    runs = []
    for variant in variants:
        print(f"running {variant} ({spans:,} spans)...", file=sys.stderr, flush=True)
        runs.append(run_variant(variant, spans, rotel=rotel))
    return runs, receiver_description(rotel)


def spans_from_environment() -> int:
    raw = os.environ.get(SPANS_ENV, "").strip()
    return int(raw) if raw else SPANS


class PipelineVariant(Variant):
    """One variant for ``python -m bench pipeline``: each round runs it in a fresh process."""

    def __init__(self, name: str, spans: int, runs: dict[str, Run]) -> None:
        self.name = name
        self.spans = spans
        #: Shared with the benchmark's notes: the last round of each variant.
        self.runs = runs

    def setup(self) -> None:
        self._rotel = find_rotel()

    def run_once(self) -> int:
        self.runs[self.name] = run_variant(self.name, self.spans, rotel=self._rotel)
        return self.spans

    def metrics(self) -> dict[str, float]:
        run = self.runs.get(self.name)
        return {} if run is None else run.metrics()


def notes(result: Result, *, spans: int, runs: dict[str, Run]) -> list[str]:
    ordered = [runs[variant.name] for variant in result.variants if variant.name in runs]
    lines = [
        "",
        "the harness's times above include starting the processes and the collector; each variant's "
        "own figures (its last round):",
        "",
    ]
    return lines + report_lines(ordered, receiver=receiver_description(find_rotel()), spans=spans)


def make_benchmark(spans: int | None = None, variants: Sequence[str] = VARIANTS) -> Benchmark:
    count = spans_from_environment() if spans is None else spans
    runs: dict[str, Run] = {}
    return Benchmark(
        name="pipeline",
        description="execscope's span pipeline vs the SDK's BatchSpanProcessor + OTLP exporter, each in a "
        "fresh process (run with --rounds 1 --warmup 0)",
        variants={name: partial(PipelineVariant, name, count, runs) for name in variants},
        baseline=BASELINE if BASELINE in variants else variants[0],
        operation="span",
        notes=partial(notes, spans=count, runs=runs),
    )


BENCHMARK = make_benchmark()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m bench.pipeline",
        description="Run each variant once, in a fresh process, and compare what reached the receiver.",
    )
    parser.add_argument(
        "--spans", type=int, default=None, help=f"spans per variant (default {SPANS:,}, or ${SPANS_ENV})"
    )
    parser.add_argument("--variants", default=",".join(VARIANTS), help="comma-separated (default: all)")
    parser.add_argument("--no-rotel", action="store_true", help="export straight to the counting receiver")
    parser.add_argument("--json", action="store_true", help="print the figures as JSON")
    parser.add_argument("--child", metavar="VARIANT", help=argparse.SUPPRESS)
    parser.add_argument("--endpoint", help=argparse.SUPPRESS)
    parser.add_argument("--workdir", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    spans = spans_from_environment() if args.spans is None else args.spans
    if spans < 1:
        parser.error("--spans must be at least 1")
    if args.child:
        if args.child not in VARIANTS or not args.endpoint or not args.workdir:
            parser.error("--child needs a variant, --endpoint and --workdir")
        return child_main(args.child, spans, args.endpoint, Path(args.workdir))
    variants = [name.strip() for name in args.variants.split(",") if name.strip()]
    unknown = sorted(set(variants) - set(VARIANTS))
    if unknown or not variants:
        parser.error(f"unknown variants {unknown}; the variants are {', '.join(VARIANTS)}")
    runs, receiver = run_all(spans, variants, use_rotel=not args.no_rotel)
    command = shlex.join(["python", "-m", "bench.pipeline", *(sys.argv[1:] if argv is None else argv)])
    environment = dataclasses.replace(Environment.current(argv), command=command)
    if args.json:
        document = {
            "command": environment.command,
            "python": environment.python,
            "machine": environment.machine,
            "spans": spans,
            "receiver": receiver,
            "variants": [run.document() for run in runs],
        }
        print(json.dumps(document, indent=2))
    else:
        description = make_benchmark(spans, variants).description
        print(
            "\n".join(
                [
                    environment.header(),
                    f"pipeline: {description}",
                    *report_lines(runs, receiver=receiver, spans=spans),
                ]
            )
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
