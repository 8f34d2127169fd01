"""What turning a batch of finished spans into the bytes of an OTLP export request costs, per span.

Both variants encode the same 512 spans, made once by an SDK ``TracerProvider``: call spans shaped
like the auto-instrumentor's (``code.function.name``, ``code.file.path``, ``code.line.number``,
one to four ``execscope.args.*`` strings and ``execscope.return``, so 5 to 8 attributes) with one
event each, nested a few calls deep, from a handful of functions across a few files. ``official``
is the OpenTelemetry encoder the OTLP exporters use (message objects, then ``SerializeToString``);
``execscope`` writes the wire format directly (in C where it was compiled at install), and
``execscope_python`` is the same with its compiled parts off. Setup checks that they all give the
same request.
"""

from __future__ import annotations

import functools
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager

from opentelemetry import trace
from opentelemetry.exporter.otlp.proto.common.trace_encoder import encode_spans
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from bench._harness import Benchmark, Variant
from execscope.processors import _compact, _otlp_encoding
from execscope.processors._otlp_encoding import encode_request

SPANS = 512
SCOPE = "execscope.autotrace"
RESOURCE = Resource.create({"service.name": "execscope-bench", "service.version": "1.2.3"})
#: (module, qualname, file, line, parameters): the recorded functions, called in turn.
FUNCTIONS = [
    ("shop.orders", "create_order", "/srv/shop/orders.py", 41, ("customer_id", "items", "coupon")),
    ("shop.orders", "Order.total", "/srv/shop/orders.py", 88, ("self",)),
    ("shop.pricing", "apply_discount", "/srv/shop/pricing.py", 17, ("price", "coupon")),
    ("shop.pricing", "tax_for", "/srv/shop/pricing.py", 52, ("amount", "region")),
    ("shop.inventory", "reserve", "/srv/shop/inventory.py", 23, ("sku", "quantity")),
    ("shop.inventory", "Stock.available", "/srv/shop/inventory.py", 70, ("self", "sku")),
    ("shop.payments", "charge", "/srv/shop/payments.py", 35, ("card", "amount", "currency", "key")),
    ("shop.util", "slugify", "/srv/shop/util.py", 9, ("text",)),
]


@functools.cache
def make_spans(count: int = SPANS) -> tuple[ReadableSpan, ...]:
    """``count`` finished call spans, in trees of four nested calls."""
    exporter = InMemorySpanExporter()
    provider = TracerProvider(resource=RESOURCE)
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    tracer = provider.get_tracer(SCOPE, "0.1.0")
    for first in range(0, count, 4):
        with ExitStack() as calls:
            # Each call is made current, so the next one is its child.
            for index in range(first, min(first + 4, count)):
                _record_call(calls.enter_context(tracer.start_as_current_span("call")), index)
    provider.shutdown()
    return exporter.get_finished_spans()


def _record_call(span: trace.Span, index: int) -> None:
    module, qualname, path, line, params = FUNCTIONS[index % len(FUNCTIONS)]
    span.update_name(qualname)
    attributes: dict[str, str | int] = {
        "code.function.name": f"{module}.{qualname}",
        "code.file.path": path,
        "code.line.number": line,
    }
    for position, param in enumerate(params):
        attributes[f"execscope.args.{param}"] = repr(f"{param}-{index * 7 + position}")
    attributes["execscope.return"] = repr({"ok": True, "n": index})
    span.set_attributes(attributes)
    span.add_event("execscope.state", {"execscope.state.diff": f'{{"count": {index}}}'})


class Encoder(Variant):
    """Encodes the shared spans; one operation is one span."""

    def setup(self) -> None:
        self.spans = make_spans()
        if ExportTraceServiceRequest.FromString(encode_request(self.spans)) != encode_spans(self.spans):
            raise AssertionError("encode_request and the official encoder disagree on the bench spans")
        self.size = 0

    def encode(self) -> bytes:
        raise NotImplementedError

    def run_once(self) -> int:
        self.size = len(self.encode())
        return len(self.spans)

    def metrics(self) -> dict[str, float]:
        return {"bytes_per_span": self.size / len(self.spans)}


class Official(Encoder):
    def encode(self) -> bytes:
        data: bytes = encode_spans(self.spans).SerializeToString()
        return data


class Execscope(Encoder):
    def encode(self) -> bytes:
        return encode_request(self.spans)


@contextmanager
def python_only() -> Iterator[None]:
    """execscope's encoder with its compiled parts off, as where none was compiled at install."""
    saved = _compact._compiled_compact_span, _otlp_encoding._compiled_span_field
    _compact._compiled_compact_span = _otlp_encoding._compiled_span_field = None
    try:
        yield
    finally:
        _compact._compiled_compact_span, _otlp_encoding._compiled_span_field = saved


class ExecscopePython(Encoder):
    def encode(self) -> bytes:
        with python_only():
            return encode_request(self.spans)


BENCHMARK = Benchmark(
    name="otlp_encoding",
    description="encoding spans into an OTLP export request (512 call spans, 5-8 attributes, 1 event)",
    variants={"official": Official, "execscope": Execscope, "execscope_python": ExecscopePython},
    baseline="official",
    operation="span",
)
