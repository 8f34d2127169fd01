"""Where a recorded call's time goes: the steps of execscope's hot path and of its export, each
timed on its own, next to the hand-written SDK span and its export.

``call/*`` variants call ``f`` (``return x``) of a rewritten module from its ``drive`` loop, as
the ``autotrace`` benchmark does, but the recorder has no thread and is emptied between rounds,
so they show the calling thread's work alone: ``inactive`` is the rewritten shape with nothing
recorded (the runtime not installed), ``unsampled`` runs under a dropped local root. ``step/*``
variants repeat one step of a recorded ``args`` call in a loop; ``export/*`` the steps after
the call (the recorder's conversion to a ``ReadableSpan``, the batch processor's hand-over, OTLP
protobuf encoding and serialisation) per span, for execscope's span (7 static ``code.*``
attributes, the argument and the return value) and for the hand-written span (2 attributes).
Steps are measured in isolation, so they do not add up exactly to the ``call/*`` figures: the
rest is the interpreter's own cost of calling into ``__enter__``/``__exit__``/``_finish``.
"""

from __future__ import annotations

import shutil
import sys
import tempfile
from collections.abc import Callable, Iterator, Sequence
from functools import partial
from pathlib import Path
from types import FrameType, ModuleType

from opentelemetry.context.context import Context
from opentelemetry.exporter.otlp.proto.common.trace_encoder import encode_spans
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.sdk.trace.sampling import ALWAYS_OFF, ALWAYS_ON, ParentBased
from opentelemetry.trace.propagation import _SPAN_KEY

from bench._harness import Benchmark, Variant
from bench.autotrace import ARGUMENT, BATCH_QUEUE, RESOURCE, SCOPE, SUBJECT, DiscardExporter, import_from_spec
from execscope.autotrace import _runtime
from execscope.autotrace._hook import RewritingFinder
from execscope.autotrace._install import limits_from, redactor_from, root_sampler
from execscope.autotrace._levels import ARGS
from execscope.autotrace._recorder import Recorder, to_readable_span
from execscope.autotrace._runtime import _CONTEXT, Call, Site
from execscope.autotrace._selection import Selection
from execscope.capture import SpanBudget, render
from execscope.settings import Settings

#: Operations per round; the test makes a smaller benchmark.
OPERATIONS = 5_000
#: Spans per encoded OTLP request, as the batch processor sends them.
BATCH = 512


class Subject:
    """A rewritten copy of the ``autotrace`` subject module whose recorder never exports."""

    def __init__(self, *, level: int = ARGS, active: bool = True, sampled: bool = True) -> None:
        self.folder = Path(tempfile.mkdtemp(prefix="execscope-bench-"))
        self.name = f"execscope_bench_breakdown_{id(self)}"
        try:
            self._load(level, active, sampled)
        except BaseException:
            self.close()
            raise

    def _load(self, level: int, active: bool, sampled: bool) -> None:
        (self.folder / f"{self.name}.py").write_text(SUBJECT, encoding="utf-8")
        # No thread, and a batch size never reached: calls only queue up; rounds empty it.
        self.recorder = Recorder(max_pending=sys.maxsize, batch=sys.maxsize)
        settings = Settings()
        previous = _runtime.current_config()
        _runtime.configure(
            _runtime.RuntimeConfig(
                limits=limits_from(settings),
                redactor=redactor_from(settings),
                root_sampled=root_sampler(ParentBased(ALWAYS_ON if sampled else ALWAYS_OFF)),
                recorder=self.recorder,
                active=active,
            )
        )
        try:
            selection = Selection(roots=(str(self.folder.resolve()),), default_level=level, never=())
            self.module: ModuleType = import_from_spec(
                self.name, RewritingFinder(selection).find_spec(self.name, [str(self.folder)])
            )
        finally:
            _runtime.configure(previous)
        sites = _runtime.sites_of(self.name)
        if sites is None:
            raise RuntimeError(f"{self.name} was not rewritten")
        self.sites: list[Site] = sites

    def site(self, qualname: str) -> Site:
        return next(site for site in self.sites if site.qualname == qualname)

    def calls(self, count: int) -> list[Call]:
        """``count`` finished calls of ``f`` (under the ``drive`` span), as the recorder holds them."""
        self.module.drive(self.module.f, count, ARGUMENT)
        calls = [call for call in self.recorder._queue if call.site.qualname == "f"]
        self.recorder._queue.clear()
        return calls

    def close(self) -> None:
        sys.modules.pop(self.name, None)
        shutil.rmtree(self.folder, ignore_errors=True)


def sdk_spans(count: int) -> list[ReadableSpan]:
    """``count`` hand-written spans with two attributes, children of one root, as exported."""
    provider = TracerProvider(resource=RESOURCE)
    exporter = InMemorySpanExporter()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    tracer = provider.get_tracer(SCOPE)
    attributes: dict[str, str | int] = {"code.function.name": "f", "bench.x": ARGUMENT}
    with tracer.start_as_current_span("drive"):
        for _ in range(count):
            with tracer.start_as_current_span("f", attributes=attributes):
                pass
    provider.shutdown()
    return [span for span in exporter.get_finished_spans() if span.name == "f"]


class Loop(Variant):
    """Runs ``step(operations)`` each round; ``prepare`` builds what the step needs."""

    def __init__(self, operations: int, prepare: Callable[[Loop], Callable[[int], None]]) -> None:
        self.operations = operations
        self.prepare = prepare
        self.subject: Subject | None = None
        #: The current span while the step runs (none: whatever is current, i.e. no span).
        self.parent: Call | None = None
        self.on_settle: Callable[[], object] | None = None
        self.on_teardown: Callable[[], object] | None = None

    def setup(self) -> None:
        try:
            self.step = self.prepare(self)
        except BaseException:
            self.teardown()  # the harness tears down only variants whose setup finished
            raise

    def run_once(self) -> int:
        if self.parent is None:
            self.step(self.operations)
            return self.operations
        outer = _CONTEXT.get()
        _CONTEXT.set(Context({**outer, _SPAN_KEY: self.parent}))
        try:
            self.step(self.operations)
        finally:
            _CONTEXT.set(outer)
        return self.operations

    def settle(self) -> None:
        if self.on_settle is not None:
            self.on_settle()

    def end_round(self) -> None:
        if self.subject is not None:
            self.subject.recorder._queue.clear()

    def teardown(self) -> None:
        if self.on_teardown is not None:
            self.on_teardown()
        if self.subject is not None:
            self.subject.close()


# -- the calling thread -------------------------------------------------------------------------


def _plain_f(x: int) -> int:
    return x


def plain_call(loop: Loop) -> Callable[[int], None]:
    # The same drive loop (rewritten, inactive: it costs once per round) calling a plain ``f``.
    subject = loop.subject = Subject(active=False)
    module = subject.module
    return lambda n: module.drive(_plain_f, n, ARGUMENT)


def rewritten_call(
    loop: Loop, *, active: bool, sampled: bool = True, level: int = ARGS
) -> Callable[[int], None]:
    subject = loop.subject = Subject(active=active, sampled=sampled, level=level)
    module = subject.module
    return lambda n: module.drive(module.f, n, ARGUMENT)


def _recorded_parent(loop: Loop) -> tuple[Subject, Site, Call]:
    """A subject, the site of ``f``, and a recorded ``drive`` call that is the current span
    while the step runs, as a child's parent is."""
    subject = loop.subject = Subject()
    parent = Call(subject.site("drive"), 1, 1, None)
    loop.parent = parent
    return subject, subject.site("f"), parent


def step_call_object(loop: Loop) -> Callable[[int], None]:
    _, site, parent = _recorded_parent(loop)

    def step(n: int) -> None:
        for _ in range(n):
            Call(site, parent.trace_id, parent.span_id, None)

    return step


def step_context(loop: Loop) -> Callable[[int], None]:
    _, site, parent = _recorded_parent(loop)
    call = Call(site, parent.trace_id, parent.span_id, None)
    get, put = _CONTEXT.get, _CONTEXT.set

    def step(n: int) -> None:
        for _ in range(n):
            current = get()
            put(Context({**current, _SPAN_KEY: call}))
            put(current)

    return step


def _frame_of_f(x: int) -> FrameType:
    """The frame of a call ``f(x)`` (as ``_capture_arguments`` gets it: locals ``x`` only)."""
    return sys._getframe()


def step_capture_arguments(loop: Loop) -> Callable[[int], None]:
    _, site, parent = _recorded_parent(loop)
    capture = site._capture_arguments
    frame = _frame_of_f(ARGUMENT)

    def step(n: int) -> None:
        for _ in range(n):
            capture(Call(site, parent.trace_id, parent.span_id, None), frame)

    return step


def step_render_return(loop: Loop) -> Callable[[int], None]:
    _, site, _ = _recorded_parent(loop)
    config = site.config

    def step(n: int) -> None:
        for _ in range(n):
            render(ARGUMENT, config.limits, SpanBudget(config.limits.span_budget), config.redactor)

    return step


def step_submit(loop: Loop) -> Callable[[int], None]:
    subject, _, _ = _recorded_parent(loop)
    call = subject.calls(1)[0]
    submit = subject.recorder.submit

    def step(n: int) -> None:
        for _ in range(n):
            submit(call)

    return step


def sdk_span_calling_thread(loop: Loop) -> Callable[[int], None]:
    provider = TracerProvider(resource=RESOURCE)
    provider.add_span_processor(BatchSpanProcessor(DiscardExporter(), max_queue_size=BATCH_QUEUE))
    tracer = provider.get_tracer(SCOPE)
    attributes: dict[str, str | int] = {"code.function.name": "f", "bench.x": ARGUMENT}
    loop.on_settle = provider.force_flush
    loop.on_teardown = provider.shutdown

    def step(n: int) -> None:
        with tracer.start_as_current_span("drive"):
            for _ in range(n):
                with tracer.start_as_current_span("f", attributes=attributes):
                    pass

    return step


# -- after the call -----------------------------------------------------------------------------


def export_to_readable_span(loop: Loop) -> Callable[[int], None]:
    subject = loop.subject = Subject()
    calls = subject.calls(loop.operations)

    def step(n: int) -> None:
        for call in calls[:n]:
            to_readable_span(call, RESOURCE)

    return step


def export_batch_processor(loop: Loop) -> Callable[[int], None]:
    """``on_end`` on the calling thread, then (in ``settle``) the worker's and the flush's export
    to a discarding exporter: the processor's whole cost per span, in process CPU."""
    subject = loop.subject = Subject()
    spans = [to_readable_span(call, RESOURCE) for call in subject.calls(loop.operations)]
    processor = BatchSpanProcessor(DiscardExporter(), max_queue_size=BATCH_QUEUE)
    loop.on_settle = processor.force_flush
    loop.on_teardown = processor.shutdown

    def step(n: int) -> None:
        on_end = processor.on_end
        for span in spans[:n]:
            on_end(span)

    return step


def _requests(spans: Sequence[ReadableSpan], n: int) -> Iterator[Sequence[ReadableSpan]]:
    for start in range(0, n, BATCH):
        yield spans[start : min(start + BATCH, n)]


def export_encode(loop: Loop, *, execscope: bool, serialise_only: bool = False) -> Callable[[int], None]:
    if execscope:
        subject = loop.subject = Subject()
        spans = [to_readable_span(call, RESOURCE) for call in subject.calls(loop.operations)]
    else:
        spans = sdk_spans(loop.operations)
    if serialise_only:
        encoded = [encode_spans(batch) for batch in _requests(spans, len(spans))]

        def serialise(n: int) -> None:
            for request in encoded:
                request.SerializeToString()

        return serialise

    def encode(n: int) -> None:
        for batch in _requests(spans, n):
            encode_spans(batch)

    return encode


def make_benchmark(operations: int = OPERATIONS) -> Benchmark:
    steps: dict[str, Callable[[Loop], Callable[[int], None]]] = {
        "call/plain": plain_call,
        "call/inactive": partial(rewritten_call, active=False),
        "call/unsampled": partial(rewritten_call, active=True, sampled=False),
        "call/timing": partial(rewritten_call, active=True, level=1),
        "call/args": partial(rewritten_call, active=True),
        "call/sdk_span": sdk_span_calling_thread,
        "step/Call()": step_call_object,
        "step/context_set_and_reset": step_context,
        "step/capture_arguments+Call()": step_capture_arguments,
        "step/render_return": step_render_return,
        "step/recorder_submit": step_submit,
        "export/to_readable_span": export_to_readable_span,
        "export/batch_processor": export_batch_processor,
        "export/otlp_encode_execscope": partial(export_encode, execscope=True),
        "export/otlp_encode_sdk_span": partial(export_encode, execscope=False),
        "export/otlp_serialise_execscope": partial(export_encode, execscope=True, serialise_only=True),
        "export/otlp_serialise_sdk_span": partial(export_encode, execscope=False, serialise_only=True),
    }
    return Benchmark(
        name="autotrace_breakdown",
        description="the steps of a recorded call and of its export, each timed on its own",
        variants={name: partial(Loop, operations, prepare) for name, prepare in steps.items()},
        baseline="call/plain",
        operation="op",
        measure_cpu=True,
    )


BENCHMARK = make_benchmark()
