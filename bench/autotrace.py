"""What a call to a function the auto-instrumentor rewrote costs, next to a plain call, a
hand-written OpenTelemetry span and Logfire's auto-tracing.

Two functions are called: ``f`` (``return x``) shows the fixed cost per call, ``work`` (about
2 µs of pure Python) shows it against a function that does something. Each variant imports its
own copy of one generated module (execscope's variants through the real import hook, with a
``Recorder`` and ``TracerProvider`` of their own) and calls the function from the module's
``drive`` loop, so every recorded call is the child of a span, as most calls in a trace are.

Sampled variants export through a ``BatchSpanProcessor`` to an exporter that discards, so the
whole pipeline runs; the ``otlp/`` group exports over OTLP/gRPC to a receiver in another
process (its CPU is not ours): ``otlp/sdk_span`` through the SDK's ``BatchSpanProcessor`` and
``OTLPSpanExporter`` (the standard path), ``otlp/args`` through execscope's own span processor
as the distro builds it from default settings (its tail sampler, redaction and OTLP encoder),
``otlp/args_sdk_export`` through the SDK's path, to show what each half contributes.
Three clocks are read: wall and calling-thread CPU while the loop runs, and process CPU (all
threads) from the loop's start until ``settle`` has drained the recorder and flushed the span
processor, so work handed to background threads is charged to the variant that made it.

Not-sampled variants: ``*_unsampled`` call the function under a local root that execscope's
head sampling dropped (the sampler is ``ParentBased(ALWAYS_OFF)``); ``args_unsampled_otel``
under an SDK span the SDK's sampler dropped; ``*_below_min`` select the function with a
``min_duration_ms`` far above its duration. Logfire is an optional extra
(``pip install -e '.[bench]'``): without it its variants are left out and the report says so.
"""

from __future__ import annotations

import importlib
import importlib.util
import math
import shutil
import sys
import tempfile
from abc import abstractmethod
from collections.abc import Callable, Iterator, Sequence
from contextlib import AbstractContextManager, nullcontext
from functools import partial
from importlib.machinery import ModuleSpec, PathFinder
from pathlib import Path
from types import ModuleType
from typing import Any

from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import ReadableSpan, SpanProcessor, TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SpanExporter, SpanExportResult
from opentelemetry.sdk.trace.sampling import ALWAYS_OFF, ALWAYS_ON, ParentBased

from bench._harness import Benchmark, Result, Variant
from bench._otlp_receiver import Receiver
from bench._report import table
from bench._settings import isolated_settings
from execscope.autotrace import _runtime, is_rewritten
from execscope.autotrace._hook import RewritingFinder
from execscope.autotrace._install import limits_from, redactor_from, root_sampler
from execscope.autotrace._levels import level_number
from execscope.autotrace._recorder import Recorder
from execscope.autotrace._selection import Selection
from execscope.plan import Level, Plan, Target
from execscope.processors._build import build_pipeline
from execscope.settings import Settings

#: Calls per round for each function; the test makes smaller benchmarks with :func:`make_benchmark`.
CALLS: dict[str, int] = {"f": 4_000, "work": 1_500}
OTLP_CALLS = 2_000
ARGUMENT = 12_345
#: The batch processors' queue: more than the spans of any round, so none is dropped.
BATCH_QUEUE = 65_536
#: Far above either function's duration: every call stays below it.
MIN_DURATION_MS = 1.0
LEVELS: tuple[Level, ...] = ("timing", "args", "full")
SCOPE = "execscope.bench.autotrace"
RESOURCE = Resource.create({"service.name": "execscope-bench"})

#: Targets the product spec sets, compared with in the notes.
TARGET_UNSAMPLED_ADDED_NS = 300.0
TARGET_ARGS_VS_SDK_THREAD_CPU = 1 / 5
TARGET_OTLP_VS_SDK_CPU = 1 / 2

SUBJECT = '''\
"""Functions the autotrace benchmark calls; every variant imports its own copy."""

_tracer = None  # the hand-written-span variants set it


def f(x):
    return x


def work(x):
    total = 0
    for i in range(40):
        total += (x + i) * i % 7
    return total


def f_sdk(x):
    with _tracer.start_as_current_span("f", attributes={"code.function.name": "f", "bench.x": x}):
        return x


def work_sdk(x):
    with _tracer.start_as_current_span("work", attributes={"code.function.name": "work", "bench.x": x}):
        total = 0
        for i in range(40):
            total += (x + i) * i % 7
        return total


def drive(function, calls, x):
    for _ in range(calls):
        function(x)
    return calls
'''


def logfire_available() -> bool:
    return importlib.util.find_spec("logfire") is not None


class DiscardExporter(SpanExporter):
    def __init__(self) -> None:
        self.spans_exported = 0

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        self.spans_exported += len(spans)
        return SpanExportResult.SUCCESS


def import_from_spec(name: str, spec: ModuleSpec | None) -> ModuleType:
    """Import a module from a spec a finder gave, as ``import`` would (registered in ``sys.modules``)."""
    if spec is None or spec.loader is None:
        raise ImportError(f"cannot find the benchmark's subject module {name}")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


class CallVariant(Variant):
    """Writes the subject module to a folder of its own, imports it, and calls one function of
    it from ``drive`` ``calls`` times per round."""

    def __init__(self, label: str, function: str, calls: int) -> None:
        self.function = function
        self.calls = calls
        self.calls_made = 0
        self.module_name = "execscope_bench_" + label.replace("/", "_")

    @abstractmethod
    def load(self, folder: Path) -> ModuleType:
        """Import ``self.module_name`` from ``folder`` as this variant does."""

    def target(self, module: ModuleType) -> Callable[[int], object]:
        function: Callable[[int], object] = getattr(module, self.function)
        return function

    def around(self) -> AbstractContextManager[object]:
        """What the ``drive`` loop runs inside (a root span, for the hand-written spans)."""
        return nullcontext()

    def setup(self) -> None:
        self._folder = Path(tempfile.mkdtemp(prefix="execscope-bench-"))
        (self._folder / f"{self.module_name}.py").write_text(SUBJECT, encoding="utf-8")
        try:
            module = self.load(self._folder)
        except BaseException:
            # The harness tears down only variants whose setup finished.
            CallVariant.teardown(self)
            raise
        self._drive: Callable[[Callable[[int], object], int, int], int] = module.drive
        self._target = self.target(module)

    def run_once(self) -> int:
        with self.around():
            self._drive(self._target, self.calls, ARGUMENT)
        self.calls_made += self.calls
        return self.calls

    def teardown(self) -> None:
        sys.modules.pop(self.module_name, None)
        shutil.rmtree(self._folder, ignore_errors=True)


class Plain(CallVariant):
    def load(self, folder: Path) -> ModuleType:
        return import_from_spec(self.module_name, PathFinder.find_spec(self.module_name, [str(folder)]))


class Exported(CallVariant):
    """A variant whose spans go through a ``BatchSpanProcessor`` of its own: to an exporter that
    discards them, or over OTLP/gRPC to a receiver process."""

    def __init__(
        self, label: str, function: str, calls: int, *, otlp: bool = False, pipeline: bool = False
    ) -> None:
        super().__init__(label, function, calls)
        self.otlp = otlp
        self.pipeline = pipeline
        self._receiver: Receiver | None = None
        self._discard: DiscardExporter | None = None
        self._pipeline_folder: Path | None = None

    def exporter(self) -> SpanExporter:
        if self.otlp:
            self._receiver = Receiver()
            return OTLPSpanExporter(endpoint=self._receiver.endpoint, insecure=True)
        self._discard = DiscardExporter()
        return self._discard

    def processor(self) -> SpanProcessor:
        if self.pipeline:
            return self._execscope_pipeline()
        # The SDK's batch processor with its defaults but a queue no round can fill: with the
        # default 2,048, execscope's recorder (which hands over up to its whole backlog at
        # once) overflows it and the dropped spans would not be exported, flattering its CPU.
        return BatchSpanProcessor(self.exporter(), max_queue_size=BATCH_QUEUE)

    def _execscope_pipeline(self) -> SpanProcessor:
        """execscope's own span processor, as the distro builds it from default settings (its
        store and spool in a folder of its own, its status published nowhere)."""
        self._pipeline_folder = Path(tempfile.mkdtemp(prefix="execscope-bench-pipeline-"))
        settings = isolated_settings(self._pipeline_folder, {"export_queue_size": BATCH_QUEUE})
        processor, monitor = build_pipeline(settings, [self.exporter()], service="execscope-bench")
        monitor.status_dir = None
        return processor

    def spans_exported(self) -> int:
        if self._receiver is not None:
            return self._receiver.spans_received()
        return self._discard.spans_exported if self._discard is not None else 0

    def metrics(self) -> dict[str, float]:
        # Over all rounds, warm-up included. About 1 for recorded calls (the drive loop's own
        # span adds one per round), 0 for calls that are not sampled: a check that the variant
        # did what its name says and that nothing was dropped.
        spans = self.spans_exported()
        return {"spans_per_call": spans / self.calls_made if self.calls_made else 0.0}

    def teardown(self) -> None:
        try:
            super().teardown()
        finally:
            if self._receiver is not None:
                self._receiver.close()
            if self._pipeline_folder is not None:
                shutil.rmtree(self._pipeline_folder, ignore_errors=True)


class SdkSpan(Exported):
    """The function instrumented by hand: ``start_as_current_span`` with two attributes."""

    def load(self, folder: Path) -> ModuleType:
        self._provider = TracerProvider(resource=RESOURCE)
        self._provider.add_span_processor(self.processor())
        self._tracer = self._provider.get_tracer(SCOPE)
        module = import_from_spec(self.module_name, PathFinder.find_spec(self.module_name, [str(folder)]))
        setattr(module, "_tracer", self._tracer)  # noqa: B010 - the subject module has no type
        return module

    def target(self, module: ModuleType) -> Callable[[int], object]:
        function: Callable[[int], object] = getattr(module, f"{self.function}_sdk")
        return function

    def around(self) -> AbstractContextManager[object]:
        return self._tracer.start_as_current_span("drive")

    def settle(self) -> None:
        self._provider.force_flush()

    def teardown(self) -> None:
        try:
            self._provider.shutdown()
        finally:
            super().teardown()


class Execscope(Exported):
    """The module rewritten by execscope's import hook at ``level``, recording into a
    ``Recorder`` and ``TracerProvider`` of its own."""

    def __init__(
        self,
        label: str,
        function: str,
        calls: int,
        *,
        level: Level,
        sampled: bool = True,
        min_duration_ms: float = 0.0,
        otel_root: bool = False,
        otlp: bool = False,
        pipeline: bool = False,
        bytecode: bool = True,
    ) -> None:
        super().__init__(label, function, calls, otlp=otlp, pipeline=pipeline)
        self.level = level
        self.bytecode = bytecode
        self.sampled = sampled
        self.min_duration_ms = min_duration_ms
        self.otel_root = otel_root

    def load(self, folder: Path) -> ModuleType:
        # The SDK's sampler decides execscope's local roots, as ``install`` wires it.
        sampler = ParentBased(ALWAYS_ON if self.sampled else ALWAYS_OFF)
        self._provider = TracerProvider(resource=RESOURCE, sampler=sampler)
        self._provider.add_span_processor(self.processor())
        self._tracer = self._provider.get_tracer(SCOPE)
        self._recorder = Recorder()
        settings = Settings()
        plan = None
        if self.min_duration_ms:
            plan = Plan(
                targets=tuple(
                    Target(
                        f"{self.module_name}:{name}", level=self.level, min_duration_ms=self.min_duration_ms
                    )
                    for name in ("f", "work")
                )
            )
        selection = Selection(
            roots=(str(folder.resolve()),), plan=plan, default_level=level_number(self.level), never=()
        )
        previous = _runtime.current_config()
        _runtime.configure(
            _runtime.RuntimeConfig(
                limits=limits_from(settings),
                redactor=redactor_from(settings),
                root_sampled=root_sampler(sampler),
                recorder=self._recorder,
                active=True,
            )
        )
        try:
            module = import_from_spec(
                self.module_name,
                RewritingFinder(selection, bytecode=self.bytecode).find_spec(self.module_name, [str(folder)]),
            )
        finally:
            _runtime.configure(previous)
        if not is_rewritten(module):
            raise RuntimeError(f"{self.module_name} was not rewritten")
        self._recorder.start(self._provider._active_span_processor.on_end, self._provider.resource)
        return module

    def around(self) -> AbstractContextManager[object]:
        if self.otel_root:
            return self._tracer.start_as_current_span("root")
        return nullcontext()

    def settle(self) -> None:
        self._recorder.flush()
        self._provider.force_flush()

    def metrics(self) -> dict[str, float]:
        figures = super().metrics()
        stats = self._recorder.stats
        figures["recorder_dropped"] = (
            stats.dropped_queue_full + stats.dropped_no_sink + stats.conversion_errors
        )
        figures["internal_errors"] = stats.internal_errors
        return figures

    def teardown(self) -> None:
        try:
            self._recorder.shutdown()
            self._provider.shutdown()
        finally:
            super().teardown()


class Logfire(Exported):
    """Logfire's auto-tracing (``install_auto_tracing(modules=[...], min_duration=0)``) on the
    same module, with a local Logfire configuration that sends nowhere but our exporter."""

    def load(self, folder: Path) -> ModuleType:
        logfire: Any = importlib.import_module("logfire")
        # service_version is given so Logfire does not look for one in version control.
        self._logfire = logfire.configure(
            local=True,
            send_to_logfire=False,
            console=False,
            metrics=False,
            service_name="execscope-bench",
            service_version="bench",
            additional_span_processors=[self.processor()],
        )
        before = list(sys.meta_path)
        self._logfire.install_auto_tracing(
            modules=[self.module_name], min_duration=0, check_imported_modules="ignore"
        )
        sys.path.insert(0, str(folder))
        try:
            return importlib.import_module(self.module_name)
        finally:
            sys.path.remove(str(folder))
            # Logfire's finder would stay first on sys.meta_path for the rest of the process.
            sys.meta_path[:] = [finder for finder in sys.meta_path if finder in before]

    def settle(self) -> None:
        self._logfire.force_flush()

    def teardown(self) -> None:
        try:
            self._logfire.shutdown()
        finally:
            super().teardown()


def _variants(calls: dict[str, int], otlp_calls: int, logfire: bool) -> dict[str, Callable[[], Variant]]:
    variants: dict[str, Callable[[], Variant]] = {}
    for function, count in calls.items():

        def add(kind: str, factory: Callable[..., Variant], **options: Any) -> None:
            label = f"{function}/{kind}"  # noqa: B023 - called at once, inside this iteration
            variants[label] = partial(factory, label, function, count, **options)  # noqa: B023

        add("plain", Plain)
        add("sdk_span", SdkSpan)
        if logfire:
            add("logfire", Logfire)
        for level in LEVELS:
            add(level, Execscope, level=level)
        for level in LEVELS:
            add(f"{level}_unsampled", Execscope, level=level, sampled=False)
        add("args_unsampled_otel", Execscope, level="args", otel_root=True, sampled=False)
        for level in LEVELS:
            add(f"{level}_below_min", Execscope, level=level, min_duration_ms=MIN_DURATION_MS)
        # The same at level args through the ast rewrite (where the bytecode rewrite is not
        # available), which adds the same calls as Python code: beside the default for comparison.
        add("ast_args", Execscope, level="args", bytecode=False)
        add("ast_args_unsampled", Execscope, level="args", sampled=False, bytecode=False)
        add("ast_args_below_min", Execscope, level="args", min_duration_ms=MIN_DURATION_MS, bytecode=False)
    variants["otlp/sdk_span"] = partial(SdkSpan, "otlp/sdk_span", "f", otlp_calls, otlp=True)
    variants["otlp/args"] = partial(
        Execscope, "otlp/args", "f", otlp_calls, level="args", otlp=True, pipeline=True
    )
    variants["otlp/args_sdk_export"] = partial(
        Execscope, "otlp/args_sdk_export", "f", otlp_calls, level="args", otlp=True
    )
    return variants


def _added(result: Result, name: str, base: str, clock: str) -> float:
    """Median of ``name`` minus median of ``base`` on one clock, ns per call."""
    variant, baseline = result.variant(name), result.variant(base)
    if clock == "wall":
        return variant.median_ns - baseline.median_ns
    figures = variant.cpu if clock == "cpu" else variant.thread_cpu
    base_figures = baseline.cpu if clock == "cpu" else baseline.thread_cpu
    if figures is None or base_figures is None:
        return math.nan
    return figures.median_ns - base_figures.median_ns


def _verdict(ok: bool) -> str:
    return "met" if ok else "MISSED"


def _groups(result: Result) -> Iterator[str]:
    seen: list[str] = []
    for variant in result.variants:
        group = variant.name.partition("/")[0]
        if group not in seen and f"{group}/plain" in {v.name for v in result.variants}:
            seen.append(group)
            yield group


def notes(result: Result, *, logfire: bool) -> list[str]:
    lines: list[str] = []
    names = {variant.name for variant in result.variants}
    if not logfire:
        lines += [
            "logfire: not installed (pip install -e '.[bench]'), so its variants were skipped",
            "",
        ]
    lines.append("added per call: variant median minus plain median, ns (wall / process cpu / thread cpu);")
    lines.append("x sdk: the added calling-thread cpu as a fraction of the hand-written span's")
    for group in _groups(result):
        plain = f"{group}/plain"
        sdk_thread = _added(result, f"{group}/sdk_span", plain, "thread")
        rows = [("variant", "wall", "cpu", "thread cpu", "x sdk")]
        for variant in result.variants:
            if not variant.name.startswith(f"{group}/") or variant.name == plain:
                continue
            wall, cpu, thread = (
                _added(result, variant.name, plain, clock) for clock in ("wall", "cpu", "thread")
            )
            rows.append(
                (variant.name, f"{wall:+.0f}", f"{cpu:+.0f}", f"{thread:+.0f}", f"{thread / sdk_thread:.2f}")
            )
        lines.append("")
        lines.extend(table(rows, indent="  "))

    lines += [
        "",
        "targets (product spec; one on added time is met only if both wall and thread cpu are within it):",
    ]
    for group in _groups(result):
        plain = f"{group}/plain"
        for kind in (
            [f"{level}_unsampled" for level in LEVELS]
            + ["args_unsampled_otel"]
            + [f"{level}_below_min" for level in LEVELS]
        ):
            name = f"{group}/{kind}"
            if name not in names:
                continue
            wall, thread = _added(result, name, plain, "wall"), _added(result, name, plain, "thread")
            ok = max(wall, thread) <= TARGET_UNSAMPLED_ADDED_NS
            lines.append(
                f"  not sampled / below min_duration <= {TARGET_UNSAMPLED_ADDED_NS:.0f} ns added: "
                f"{name} {wall:+.0f} ns wall, {thread:+.0f} ns thread cpu: {_verdict(ok)}"
            )
    for group in _groups(result):
        plain = f"{group}/plain"
        if f"{group}/args" not in names or f"{group}/sdk_span" not in names:
            continue
        args = _added(result, f"{group}/args", plain, "thread")
        sdk = _added(result, f"{group}/sdk_span", plain, "thread")
        ratio = args / sdk
        lines.append(
            f"  args recorded <= 1/5 of a hand-written span, calling-thread cpu added: {group} "
            f"{args:.0f} ns vs {sdk:.0f} ns = {ratio:.2f}: {_verdict(ratio <= TARGET_ARGS_VS_SDK_THREAD_CPU)}"
        )
    if {"otlp/args", "otlp/sdk_span"} <= names:
        ours, theirs = result.variant("otlp/args"), result.variant("otlp/sdk_span")
        if ours.cpu is not None and theirs.cpu is not None:
            ratio = ours.cpu.median_ns / theirs.cpu.median_ns
            lines.append(
                "  total process cpu per recorded call incl. OTLP export <= 1/2 of the SDK path: "
                f"{ours.cpu.median_ns / 1000:.2f} µs vs {theirs.cpu.median_ns / 1000:.2f} µs = {ratio:.2f}: "
                f"{_verdict(ratio <= TARGET_OTLP_VS_SDK_CPU)}"
            )
        if ours.thread_cpu is not None and theirs.thread_cpu is not None:
            ratio = ours.thread_cpu.median_ns / theirs.thread_cpu.median_ns
            lines.append(
                "  (calling-thread cpu per call, same variants: "
                f"{ours.thread_cpu.median_ns / 1000:.2f} µs vs {theirs.thread_cpu.median_ns / 1000:.2f} µs "
                f"= {ratio:.2f})"
            )
    return lines


def make_benchmark(
    calls: dict[str, int] | None = None, otlp_calls: int = OTLP_CALLS, *, logfire: bool | None = None
) -> Benchmark:
    """The benchmark with ``calls`` calls per round of each function (the test makes a tiny one)."""
    with_logfire = logfire_available() if logfire is None else logfire
    variants = _variants(calls or CALLS, otlp_calls, with_logfire)
    # Each function's variants are compared with its plain call, the OTLP pair with the SDK path.
    baselines = {
        name: "otlp/sdk_span" if name.startswith("otlp/") else f"{name.partition('/')[0]}/plain"
        for name in variants
    }
    return Benchmark(
        name="autotrace",
        description="a call to a rewritten function: plain, execscope per level, hand-written span, Logfire",
        variants=variants,
        baseline=next(iter(variants)),
        operation="call",
        baselines=baselines,
        measure_cpu=True,
        notes=partial(notes, logfire=with_logfire),
    )


BENCHMARK = make_benchmark()
