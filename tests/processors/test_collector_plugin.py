"""execscope's processor inside the real rotel collector makes the in-process pipeline's decisions.

Each test starts the ``rotel-agent`` binary of the ``rotel`` wheel on free loopback ports, loading
``execscope/processors/collector_plugin.py``, and sends it spans with the OpenTelemetry SDK's OTLP
exporter; rotel forwards what the plugin leaves to a receiver in this process. In CI a collector
that cannot run fails these tests; elsewhere they are skipped with the reason.
"""

from __future__ import annotations

import random
import re
import subprocess
import sysconfig
from collections import Counter, OrderedDict
from collections.abc import Iterator, Sequence
from pathlib import Path
from types import SimpleNamespace

import grpc
import pytest
from collector_helpers import (
    PLUGIN,
    Receiver,
    Rotel,
    attributes_of,
    rotel_binary,
    rotel_environment,
    running_rotel,
    span_id_of,
    trace_id_of,
)
from opentelemetry import trace
from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter
from opentelemetry.proto.collector.trace.v1 import trace_service_pb2, trace_service_pb2_grpc
from opentelemetry.proto.common.v1 import common_pb2
from opentelemetry.proto.trace.v1 import trace_pb2
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor, SpanExportResult
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.sdk.trace.id_generator import IdGenerator
from opentelemetry.trace import NonRecordingSpan, SpanContext, Status, StatusCode, TraceFlags
from opentelemetry.util.types import AttributeValue

from execscope.attributes import CORRELATION_ID
from execscope.capture import REDACTED, default_redactor
from execscope.processors._compact import SPAN_ID, TRACE_ID, compact_span, is_local_root
from execscope.processors._decision import TailPolicy, rate_keeps
from execscope.processors._redaction import redact_attribute
from execscope.processors._stats import PipelineStats
from execscope.processors._tail import TailSampler
from execscope.settings import setting_specs

REPOSITORY = Path(__file__).resolve().parents[2]
BEARER = "Bearer abcdefghijk123"
CARD_TEXT = "paid with 4111 1111 1111 1111 today"
KEEP_RATE = 0.3
LATENCY_THRESHOLD_NS = 500_000_000
_HEX_ID = re.compile(r"[0-9a-f]{32}")


@pytest.fixture(scope="module")
def binary() -> Path:
    return rotel_binary()


@pytest.fixture(scope="module")
def keep_all(binary: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Rotel, Receiver]]:
    """rotel with execscope's defaults (keep rate 1): every span is forwarded, masked and correlated."""
    with (
        Receiver() as receiver,
        running_rotel(binary, tmp_path_factory.mktemp("rotel"), receiver.port) as rotel,
    ):
        yield rotel, receiver


class FixedIds(IdGenerator):
    """Trace and span ids from a seeded generator, so a run sends the same traces every time."""

    def __init__(self, seed: int) -> None:
        self._random = random.Random(seed)

    def generate_span_id(self) -> int:
        return self._random.getrandbits(64) or 1

    def generate_trace_id(self) -> int:
        return self._random.getrandbits(128) or 1


def _sending_provider(rotel: Rotel, seed: int) -> TracerProvider:
    """A provider exporting each span to rotel when it ends (so one trace spans several requests)."""
    provider = TracerProvider(id_generator=FixedIds(seed))
    provider.add_span_processor(SimpleSpanProcessor(OTLPSpanExporter(endpoint=rotel.endpoint, insecure=True)))
    return provider


def _spans_of(spans: Sequence[trace_pb2.Span], trace_id: int) -> dict[str, trace_pb2.Span]:
    return {span.name: span for span in spans if trace_id_of(span) == trace_id}


def test_spans_arrive_masked_and_correlated(keep_all: tuple[Rotel, Receiver]) -> None:
    rotel, receiver = keep_all
    provider = _sending_provider(rotel, seed=1)
    tracer = provider.get_tracer("test")
    with tracer.start_as_current_span(
        "request",
        attributes={"http.request.header.authorization": BEARER, "gen_ai.usage.input_tokens": 1234},
    ) as request:
        with tracer.start_as_current_span("query", attributes={"db.password": "hunter2", "db.name": "shop"}):
            pass
        with tracer.start_as_current_span("charge", attributes={"message": CARD_TEXT}) as charge:
            charge.add_event("declined", {"exception.message": "card 4111-1111-1111-1111 declined"})
    # A trace whose first span to end carries an id from upstream: its other spans, exported
    # later in requests of their own, get that id from the plugin's memory.
    with (
        tracer.start_as_current_span("job") as job,
        tracer.start_as_current_span("step", attributes={CORRELATION_ID: "upstream-42"}),
    ):
        pass
    provider.shutdown()
    first, second = request.get_span_context().trace_id, job.get_span_context().trace_id
    spans = receiver.wait_for(
        lambda got: len(_spans_of(got, first)) == 3 and len(_spans_of(got, second)) == 2, "two traces"
    )

    request_spans = _spans_of(spans, first)
    ids = {attributes_of(span).get(CORRELATION_ID) for span in request_spans.values()}
    assert len(ids) == 1, ids
    (correlation_id,) = ids
    assert isinstance(correlation_id, str) and _HEX_ID.fullmatch(correlation_id)
    assert {attributes_of(span).get(CORRELATION_ID) for span in _spans_of(spans, second).values()} == {
        "upstream-42"
    }

    root = attributes_of(request_spans["request"])
    assert root["http.request.header.authorization"] == REDACTED
    assert root["gen_ai.usage.input_tokens"] == 1234  # a number, never masked
    query = attributes_of(request_spans["query"])
    assert query["db.password"] == REDACTED
    assert query["db.name"] == "shop"
    charge_attributes = attributes_of(request_spans["charge"])
    assert charge_attributes["message"] == "paid with [redacted] today"
    # The shared function is the one that masked it.
    assert charge_attributes["message"] == redact_attribute("message", CARD_TEXT, default_redactor())
    (event,) = request_spans["charge"].events
    assert attributes_of(event) == {"exception.message": "card [redacted] declined"}


def _generate_traces(provider: TracerProvider, rng: random.Random, count: int) -> list[int]:
    """``count`` traces of a few spans with explicit times: some failed, some slow, some late spans.

    Children end before their parent, as in real programs; every tenth trace continues a remote
    caller (its root has a remote parent); every seventh has a span that ends after its root.
    """
    tracer = provider.get_tracer("decisions")
    base = 1_700_000_000 * 10**9
    late_traces = []
    for index in range(count):
        start = base + index * 10**10
        slow = rng.random() < 0.15
        duration = rng.randint(500_000_000, 2_000_000_000) if slow else rng.randint(1_000_000, 499_999_999)
        if rng.random() < 0.03:
            duration = LATENCY_THRESHOLD_NS  # exactly at the threshold: kept by both
        failing = rng.random() < 0.12
        context = None
        if index % 10 == 0:
            caller = SpanContext(
                trace_id=rng.getrandbits(128) or 1,
                span_id=rng.getrandbits(64) or 1,
                is_remote=True,
                trace_flags=TraceFlags(TraceFlags.SAMPLED),
            )
            context = trace.set_span_in_context(NonRecordingSpan(caller))
        root = tracer.start_span("root", context=context, start_time=start)
        root_context = trace.set_span_in_context(root)
        children = rng.randint(1, 4)
        failing_child = rng.randrange(children + 1) if failing else -1
        late = index % 7 == 3
        for number in range(children):
            child_start = start + rng.randint(0, duration // 2)
            child = tracer.start_span(f"child-{number}", context=root_context, start_time=child_start)
            if number == failing_child:
                child.set_status(Status(StatusCode.ERROR, "failed"))
            if rng.random() < 0.3:
                grandchild = tracer.start_span(
                    "grandchild", context=trace.set_span_in_context(child), start_time=child_start + 1
                )
                grandchild.end(end_time=child_start + 2)
            if late and number == 0:
                late_span = child
                continue
            child.end(end_time=child_start + rng.randint(1, duration // 2))
        if failing_child == children:
            root.set_status(Status(StatusCode.ERROR, "failed"))
        root.end(end_time=start + duration)
        if late:
            # Ends after its root, with an error of its own: it follows the decision made at the root.
            late_span.set_status(Status(StatusCode.ERROR, "late failure"))
            late_span.end(end_time=start + duration + 10**9)
            late_traces.append(root.get_span_context().trace_id)
    return late_traces


def _requests(finished: Sequence[ReadableSpan]) -> list[list[ReadableSpan]]:
    """Spans grouped as exported: a trace up to its local root in one request, later spans alone."""
    requests: list[list[ReadableSpan]] = []
    open_traces: dict[int, list[ReadableSpan]] = {}
    decided: set[int] = set()
    for span in finished:
        trace_id = span.context.trace_id
        if trace_id in decided:
            requests.append([span])
            continue
        open_traces.setdefault(trace_id, []).append(span)
        if is_local_root(compact_span(span)):
            requests.append(open_traces.pop(trace_id))
            decided.add(trace_id)
    assert not open_traces
    return requests


def test_same_decisions_as_the_in_process_tail_sampler(binary: Path, tmp_path: Path) -> None:
    # The spans, made once and kept: the in-process sampler and rotel see the very same ones.
    memory = InMemorySpanExporter()
    provider = TracerProvider(id_generator=FixedIds(seed=2))
    provider.add_span_processor(SimpleSpanProcessor(memory))
    late_traces = _generate_traces(provider, random.Random(3), count=200)
    finished = memory.get_finished_spans()

    # What execscope decides in-process: spans offered as they end, whole traces released at the root.
    sampler = TailSampler(
        TailPolicy(keep_rate=KEEP_RATE, latency_threshold_ns=LATENCY_THRESHOLD_NS),
        PipelineStats(),
        max_bytes=1 << 40,
        max_hold_s=1e9,
    )
    released = [kept for span in finished for kept in sampler.offer(compact_span(span))]
    assert sampler.flush() == []
    expected = {span[SPAN_ID] for span in released}

    # The test must cover every reason: traces kept by error or latency alone, by rate, and dropped.
    trace_ids = {span.context.trace_id for span in finished}
    kept_traces = {span[TRACE_ID] for span in released}
    by_rate = {trace_id for trace_id in trace_ids if rate_keeps(trace_id, KEEP_RATE)}
    assert kept_traces - by_rate, "no trace kept by error or latency alone"
    assert kept_traces & by_rate, "no trace kept by the rate"
    assert trace_ids - kept_traces, "no trace dropped"
    assert set(late_traces) - kept_traces, "no late span dropped with its trace"

    env = {"EXECSCOPE_TAIL_KEEP_RATE": str(KEEP_RATE), "EXECSCOPE_TAIL_LATENCY_THRESHOLD": "500ms"}
    with Receiver() as receiver, running_rotel(binary, tmp_path, receiver.port, env=env) as rotel:
        exporter = OTLPSpanExporter(endpoint=rotel.endpoint, insecure=True)
        for request in _requests(finished):
            assert exporter.export(request) is SpanExportResult.SUCCESS
        # A last trace that is always kept: once it is through, every earlier request is too.
        sentinel_provider = TracerProvider(id_generator=FixedIds(seed=4))
        sentinel_provider.add_span_processor(SimpleSpanProcessor(exporter))
        with sentinel_provider.get_tracer("sentinel").start_as_current_span("sentinel") as sentinel:
            sentinel.set_status(Status(StatusCode.ERROR))
        sentinel_id = sentinel.get_span_context().span_id
        received = receiver.wait_for_span_ids(expected | {sentinel_id})
        rotel.assert_running()
        sentinel_provider.shutdown()

    forwarded = [span for span in received if span_id_of(span) != sentinel_id]
    assert len(forwarded) == len({span_id_of(span) for span in forwarded}), "a span was forwarded twice"
    assert {span_id_of(span) for span in forwarded} == expected
    # Every forwarded trace has one correlation id, late spans included.
    ids_by_trace: dict[int, set[object]] = {}
    for span in forwarded:
        ids_by_trace.setdefault(trace_id_of(span), set()).add(attributes_of(span).get(CORRELATION_ID))
    assert all(len(ids) == 1 and None not in ids for ids in ids_by_trace.values())


def test_parts_sent_before_their_root_are_decided_on_what_is_known(binary: Path, tmp_path: Path) -> None:
    """The documented limit of a processor that cannot hold spans: parts ahead of the root go out at once.

    With a keep rate of 0 only failed or slow traces are kept. Spans are exported one by one as
    they end, children before their root, as the SDK's simple processor does.
    """
    env = {"EXECSCOPE_TAIL_KEEP_RATE": "0", "EXECSCOPE_TAIL_LATENCY_THRESHOLD": "1s"}
    with Receiver() as receiver, running_rotel(binary, tmp_path, receiver.port, env=env) as rotel:
        provider = _sending_provider(rotel, seed=7)
        tracer = provider.get_tracer("test")
        roots = {}
        start = 1_700_000_000 * 10**9

        # A failed child ahead of an ordinary root: kept at once; the root, decided on everything
        # seen of the trace, is kept with it (as in-process).
        root = roots["failed-child"] = tracer.start_span("root", start_time=start)
        child = tracer.start_span("child", context=trace.set_span_in_context(root), start_time=start)
        child.set_status(Status(StatusCode.ERROR))
        child.end(end_time=start + 1000)
        root.end(end_time=start + 2000)

        # An ordinary child ahead of a slow root: dropped at once, then the root is kept without
        # it. In-process both would be kept: this is the limitation.
        root = roots["slow-root"] = tracer.start_span("root", start_time=start)
        child = tracer.start_span("child", context=trace.set_span_in_context(root), start_time=start)
        child.end(end_time=start + 1000)
        root.end(end_time=start + 2 * 10**9)

        # An ordinary root, then a late failed child: the late span follows the root's verdict
        # (as in-process), whatever it shows.
        root = roots["late-failure"] = tracer.start_span("root", start_time=start)
        child = tracer.start_span("child", context=trace.set_span_in_context(root), start_time=start)
        root.end(end_time=start + 2000)
        child.set_status(Status(StatusCode.ERROR))
        child.end(end_time=start + 3000)

        # A sentinel that is always kept, exported last.
        with tracer.start_as_current_span("sentinel") as sentinel:
            sentinel.set_status(Status(StatusCode.ERROR))
        provider.shutdown()
        sentinel_id = sentinel.get_span_context().span_id
        spans = receiver.wait_for_span_ids({sentinel_id})

    def names(case: str) -> list[str]:
        return sorted(_spans_of(spans, roots[case].get_span_context().trace_id))

    assert names("failed-child") == ["child", "root"]
    assert names("slow-root") == ["root"]
    assert names("late-failure") == []


def test_unusual_attribute_values_pass_through(keep_all: tuple[Rotel, Receiver]) -> None:
    rotel, receiver = keep_all
    provider = _sending_provider(rotel, seed=5)
    tracer = provider.get_tracer("test")
    attributes: dict[str, AttributeValue] = {
        "raw": b"\x00\xff\x10",
        "api_key": b"\x01\x02",
        "flag": False,
        "ratio": 0.25,
        "count": -7,
        "big": 2**62,
        "empty": "",
        "unicode": "héllo ✓ 日本",
        "long": "x" * 100_000,
        "ints": [1, 2, 3],
        "words": ["ok", BEARER],
        "secrets.token": ["a", "b"],
    }
    with tracer.start_as_current_span("linked") as linked:
        pass
    with tracer.start_as_current_span(
        "unusual", attributes=attributes, links=[trace.Link(linked.get_span_context(), {"link.note": BEARER})]
    ) as span:
        span.add_event("bare")
        span.set_status(Status(StatusCode.ERROR, BEARER))
    provider.shutdown()
    trace_id = span.get_span_context().trace_id
    spans = receiver.wait_for(lambda got: "unusual" in _spans_of(got, trace_id), "the unusual span")
    received = _spans_of(spans, trace_id)["unusual"]
    got = attributes_of(received)
    for key in ("raw", "flag", "ratio", "count", "big", "empty", "unicode", "long"):
        assert got[key] == attributes[key], key
    assert got["api_key"] == REDACTED  # a sensitive name's bytes, as in-process
    # rotel 0.0.1a15 writes array values back reversed once a processor has read a span's
    # attributes (its conversion pops them); the values themselves are what matters here.
    assert got["ints"] in ([1, 2, 3], [3, 2, 1])
    assert got["words"] in (["ok", "Bearer [redacted]"], ["Bearer [redacted]", "ok"])
    assert got["secrets.token"] == [REDACTED, REDACTED]
    assert [event.name for event in received.events] == ["bare"]
    assert received.status.code == trace_pb2.Status.STATUS_CODE_ERROR
    assert received.status.message == BEARER  # the status message is not an attribute: left as sent
    (link,) = received.links
    assert attributes_of(link) == {"link.note": BEARER}  # links are not masked, as in-process
    assert isinstance(got[CORRELATION_ID], str)


def _value(**kind: object) -> common_pb2.AnyValue:
    return common_pb2.AnyValue(**kind)  # type: ignore[arg-type]


def test_malformed_spans_pass_through(keep_all: tuple[Rotel, Receiver]) -> None:
    """Spans no SDK would send (odd ids, empty or nested values) still reach the backend.

    (A key sent with no value message at all is the one input rotel 0.0.1a15 itself cannot
    survive once a processor reads it; see the plugin's documentation.)
    """
    rotel, receiver = keep_all
    spans = [
        trace_pb2.Span(
            trace_id=b"\x07" * 16,
            span_id=b"\x01" * 8,
            parent_span_id=b"\x00" * 8,  # all zeros: a root
            name="nested",
            attributes=[
                common_pb2.KeyValue(key="nothing", value=common_pb2.AnyValue()),
                common_pb2.KeyValue(
                    key="map",
                    value=_value(
                        kvlist_value=common_pb2.KeyValueList(
                            values=[common_pb2.KeyValue(key="password", value=_value(string_value="x"))]
                        )
                    ),
                ),
                common_pb2.KeyValue(
                    key="matrix",
                    value=_value(
                        array_value=common_pb2.ArrayValue(
                            values=[_value(array_value=common_pb2.ArrayValue(values=[_value(int_value=1)]))]
                        )
                    ),
                ),
                common_pb2.KeyValue(key="mixed", value=_value(array_value=common_pb2.ArrayValue(values=[]))),
            ],
        ),
        trace_pb2.Span(trace_id=b"\x08" * 3, span_id=b"\x02" * 8, name="short-ids"),
        trace_pb2.Span(trace_id=b"", span_id=b"\x03" * 8, parent_span_id=b"\x09" * 8, name="no-trace-id"),
    ]
    request = trace_service_pb2.ExportTraceServiceRequest(
        resource_spans=[trace_pb2.ResourceSpans(scope_spans=[trace_pb2.ScopeSpans(spans=spans)])]
    )
    with grpc.insecure_channel(f"127.0.0.1:{rotel.port}") as channel:
        stub = trace_service_pb2_grpc.TraceServiceStub(channel)  # type: ignore[no-untyped-call]
        stub.Export(request, timeout=10)
    names = {"nested", "short-ids", "no-trace-id"}
    received = receiver.wait_for(lambda got: names <= {span.name for span in got}, "the malformed spans")
    nested = next(span for span in received if span.name == "nested")
    got = attributes_of(nested)
    assert got["nothing"] is None
    assert got["map"] == {"password": "x"}  # maps are not masked, as in-process (no SDK sends them)
    assert got["matrix"] == [[1]]
    assert got["mixed"] == []
    rotel.assert_running()


_FAILING_PLUGIN = """
import importlib.util

_spec = importlib.util.spec_from_file_location("execscope_plugin_under_test", {plugin!r})
plugin = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(plugin)


class ExplodingRedactor(type(plugin._REDACTOR)):
    def is_sensitive_name(self, name):
        if name == "explode":
            raise RuntimeError("injected failure")
        return super().is_sensitive_name(name)


plugin._REDACTOR = ExplodingRedactor()
process_spans = plugin.process_spans
"""


def test_a_failing_plugin_lets_batches_through_and_reports_once(binary: Path, tmp_path: Path) -> None:
    """An exception escaping a processor stops rotel 0.0.1a15: the plugin must contain its failures."""
    wrapper = tmp_path / "failing_plugin.py"
    wrapper.write_text(_FAILING_PLUGIN.format(plugin=str(PLUGIN)))
    with (
        Receiver() as receiver,
        running_rotel(binary, tmp_path / "rotel", receiver.port, plugin=wrapper) as rotel,
    ):
        provider = _sending_provider(rotel, seed=6)
        tracer = provider.get_tracer("test")
        with tracer.start_as_current_span("boom-1", attributes={"explode": "x", "db.password": "hunter2"}):
            pass
        with tracer.start_as_current_span("boom-2", attributes={"explode": "y"}):
            pass
        with tracer.start_as_current_span("fine", attributes={"db.password": "hunter2"}):
            pass
        provider.shutdown()
        names = {"boom-1", "boom-2", "fine"}
        spans = receiver.wait_for(lambda got: names <= {span.name for span in got}, "all three spans")
        rotel.assert_running()
        output = rotel.output()

    by_name = {span.name: attributes_of(span) for span in spans}
    # The failing batches pass exactly as they came: nothing masked, no id added.
    assert by_name["boom-1"] == {"explode": "x", "db.password": "hunter2"}
    assert by_name["boom-2"] == {"explode": "y"}
    # The plugin goes on working after a failure.
    assert by_name["fine"]["db.password"] == REDACTED
    assert CORRELATION_ID in by_name["fine"]
    assert output.count("a batch passed unprocessed") == 1, output
    assert "RuntimeError: injected failure" in output


def test_rotel_stops_at_start_when_execscope_cannot_be_imported(binary: Path, tmp_path: Path) -> None:
    """Without PYTHONPATH the collector does not run half-configured: it stops and says why."""
    copy = tmp_path / "collector_plugin.py"  # outside any installed package: no execscope next to it
    copy.write_bytes(PLUGIN.read_bytes())
    env = rotel_environment({})
    del env["PYTHONPATH"]
    args = [str(binary), "start", "--exporter", "blackhole", "--otlp-with-trace-processor", str(copy)]
    args += ["--otlp-grpc-endpoint", "127.0.0.1:0", "--otlp-http-endpoint", "127.0.0.1:0"]
    args += ["--pid-file", str(tmp_path / "rotel.pid"), "--log-file", str(tmp_path / "rotel.log")]
    result = subprocess.run(args, env=env, capture_output=True, text=True, timeout=30, check=False)
    assert "cannot import execscope; set PYTHONPATH" in result.stdout + result.stderr


def test_site_packages_alone_is_enough_on_pythonpath(binary: Path, tmp_path: Path) -> None:
    """The documented set-up: PYTHONPATH names site-packages only (here an editable install's)."""
    copy = tmp_path / "collector_plugin.py"  # outside any package: execscope comes from site-packages
    copy.write_bytes(PLUGIN.read_bytes())
    env = {"PYTHONPATH": sysconfig.get_paths()["purelib"]}
    with (
        Receiver() as receiver,
        running_rotel(binary, tmp_path / "rotel", receiver.port, plugin=copy, env=env) as rotel,
    ):
        provider = _sending_provider(rotel, seed=8)
        with provider.get_tracer("test").start_as_current_span("one", attributes={"db.password": "x"}):
            pass
        provider.shutdown()
        (span,) = receiver.wait_for(lambda got: len(got) == 1, "one span")
    assert attributes_of(span)["db.password"] == REDACTED
    assert CORRELATION_ID in attributes_of(span)


def test_rotel_env_names_real_options_and_settings(binary: Path) -> None:
    """collector-config/rotel.env only sets variables rotel or the plugin reads (typos are silent)."""
    help_text = subprocess.run(
        [str(binary), "start", "--help"], capture_output=True, text=True, timeout=30, check=True
    ).stdout
    rotel_options = set(re.findall(r"\[env: (ROTEL_[A-Z0-9_]+)=", help_text))
    settings = {spec.env for spec in setting_specs()}
    names = [
        line.partition("=")[0].lstrip("# ")
        for line in (REPOSITORY / "collector-config" / "rotel.env").read_text().splitlines()
        if re.match(r"#? ?[A-Z][A-Z0-9_]*=", line)
    ]
    assert "ROTEL_OTLP_WITH_TRACE_PROCESSOR" in names
    for name in names:
        assert name in rotel_options or name in settings or name == "PYTHONPATH", name


def test_settings_use_the_table_parsers(caplog: pytest.LogCaptureFixture) -> None:
    from execscope.processors import collector_plugin

    values = collector_plugin.read_settings(
        {
            "EXECSCOPE_TAIL_KEEP_RATE": "1.5",
            "EXECSCOPE_TAIL_LATENCY_THRESHOLD": "500ms",
            "EXECSCOPE_REDACT_NAMES": "ssn, iban",
        }
    )
    assert values == {
        "tail_keep_rate": 1.0,  # not valid: the default, reported
        "tail_latency_threshold": 0.5,
        "redact": True,
        "redact_names": ("ssn", "iban"),
    }
    assert "EXECSCOPE_TAIL_KEEP_RATE='1.5' is not valid" in caplog.text
    assert (
        collector_plugin.read_settings({"EXECSCOPE_TAIL_LATENCY_THRESHOLD": "off"})["tail_latency_threshold"]
        == 0
    )


@pytest.mark.parametrize(
    ("parent", "flags", "root"),
    [
        (b"", 0x100, True),
        (b"\x00" * 8, 0, True),
        (b"\x01" * 8, 0x300, True),  # the sender says: the parent is remote
        (b"\x01" * 8, 0x100, False),  # the sender says: the parent is local
        (b"\x01" * 8, 0x200, False),  # remoteness not known: not taken for a root
        (b"\x01" * 8, 0, False),
    ],
)
def test_local_root(parent: bytes, flags: int, root: bool) -> None:
    from execscope.processors.collector_plugin import is_local_root

    assert is_local_root(parent, flags) is root


def test_counters_are_reported_at_most_once_a_minute(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    from execscope.processors import collector_plugin

    caplog.set_level("INFO", logger="execscope.collector_plugin")
    monkeypatch.setattr(collector_plugin, "_last_report", 1000.0)
    for now in (1030.0, 1061.0, 1100.0, 1122.0):
        collector_plugin._report(now)
    assert [record.getMessage().startswith("spans kept") for record in caplog.records] == [True, True]


class _AnyValue:
    """rotel's AnyValue as the plugin uses it: ``value`` to read, ``string_value`` to write."""

    def __init__(self, value: object) -> None:
        self.value = value

    def _set_string(self, text: str) -> None:
        self.value = text

    string_value = property(None, _set_string)


class _KeyValue:
    def __init__(self, key: str, value: object) -> None:
        self.key = key
        self.value = _AnyValue(value)

    @staticmethod
    def new_string_value(key: str, value: str) -> _KeyValue:
        return _KeyValue(key, value)


class _Span:
    def __init__(self, trace_id: int, span_id: int, parent: int = 0, *, error: bool = False) -> None:
        self.trace_id = trace_id.to_bytes(16, "big")
        self.span_id = span_id.to_bytes(8, "big")
        self.parent_span_id = parent.to_bytes(8, "big") if parent else b""
        self.flags = 0x100
        self.start_time_unix_nano, self.end_time_unix_nano = 0, 1000
        self.status = SimpleNamespace(code=2 if error else 0)
        self.attributes = [_KeyValue("db.password", "hunter2")]
        self.events: list[object] = []


def test_spans_are_counted_by_verdict(monkeypatch: pytest.MonkeyPatch) -> None:
    """The counters, on stand-ins for rotel's objects (rotel's own run cannot be read from here)."""
    from execscope.processors import collector_plugin

    for name, value in {
        "_POLICY": TailPolicy(keep_rate=0.0),
        "_DECIDED": OrderedDict(),
        "_PENDING": OrderedDict(),
        "SPANS_KEPT": Counter(),
        "SPANS_DROPPED": Counter(),
        "_key_value_type": _KeyValue,
    }.items():
        monkeypatch.setattr(collector_plugin, name, value)
    failed = _Span(1, 11, error=True), _Span(1, 12, parent=11)
    ordinary = _Span(2, 21), _Span(2, 22, parent=21)
    scope = SimpleNamespace(spans=[failed[1], ordinary[1], failed[0], ordinary[0]])
    batch = SimpleNamespace(scope_spans=[scope])

    collector_plugin.process_spans(batch)

    assert collector_plugin.SPANS_KEPT == {"error": 2}
    assert collector_plugin.SPANS_DROPPED == {"sampled_out": 2}
    assert scope.spans == [failed[1], failed[0]]
    values = [{kv.key: kv.value.value for kv in span.attributes} for span in failed]
    assert values[0]["db.password"] == REDACTED
    assert values[0][CORRELATION_ID] == values[1][CORRELATION_ID]
