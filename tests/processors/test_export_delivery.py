"""Export loses nothing: a receiver that goes away gets every span once it is back.

These tests export real OTLP/gRPC through the official exporter to a real gRPC receiver on
loopback, which they stop, restart and stall. Spans are counted by id at the receiver.
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter
from otlp_receiver import Receiver, attributes_of
from pipeline_helpers import HeldExporter, Pipeline, pipeline

from execscope.attributes import CORRELATION_ID
from execscope.processors._delivery import OtlpSink


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    running = Receiver().start()
    yield running
    running.stop()


def otlp(receiver: Receiver) -> OTLPSpanExporter:
    return OTLPSpanExporter(endpoint=receiver.endpoint, insecure=True, timeout=2)


def make_spans(pipe: Pipeline, count: int, name: str = "work") -> list[int]:
    ids = []
    for index in range(count):
        with pipe.tracer.start_as_current_span(f"{name} {index}") as span:
            span.set_attribute("index", index)
        ids.append(span.get_span_context().span_id)
    return ids


def sink_of(pipe: Pipeline) -> OtlpSink:
    (sink,) = pipe.processor.sinks
    assert isinstance(sink, OtlpSink)
    return sink


def test_spans_reach_a_real_receiver_with_their_correlation_ids(tmp_path: Path, receiver: Receiver) -> None:
    with pipeline(tmp_path, [otlp(receiver)]) as pipe:
        sent = make_spans(pipe, 1_000)
        pipe.flush()
        assert receiver.wait_for(1_000)
    assert sorted(receiver.span_ids()) == sorted(sent)
    assert all(len(attributes_of(span)[CORRELATION_ID]) == 32 for span in receiver.spans)
    assert pipe.stats.snapshot()["exported"] == 1_000


def test_a_receiver_killed_and_restarted_mid_stream_loses_no_span(tmp_path: Path, receiver: Receiver) -> None:
    with pipeline(tmp_path, [otlp(receiver)], spool_dir=tmp_path / "spool") as pipe:
        sent = make_spans(pipe, 500, "before")
        pipe.flush()
        receiver.stop()
        sent += make_spans(pipe, 1_500, "while down")
        pipe.flush()
        assert sink_of(pipe).breaker.open
        assert sink_of(pipe).spool is not None and sink_of(pipe).spool.pending_spans == 1_500  # type: ignore[union-attr]
        receiver.start()
        sent += make_spans(pipe, 500, "after")
        pipe.flush()
        assert receiver.wait_for(len(sent), timeout=30)
    stats = pipe.stats.snapshot()  # after shutdown: the worker has counted its last delivery
    assert set(receiver.span_ids()) == set(sent)
    assert stats["unspooled"] == stats["spooled"] >= 1_500
    assert sum(stats["dropped"].values()) == 0  # type: ignore[attr-defined]


def test_spooled_spans_are_delivered_in_the_order_they_were_made(tmp_path: Path, receiver: Receiver) -> None:
    receiver.stop()
    with pipeline(tmp_path, [otlp(receiver)], spool_dir=tmp_path / "spool") as pipe:
        sent = []
        for _ in range(5):
            sent += make_spans(pipe, 100)
            pipe.flush()
        receiver.start()
        assert receiver.wait_for(len(sent), timeout=30)
    assert receiver.span_ids()[: len(sent)] == sent


SCRIPT = """
import sys
from pathlib import Path
from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk.trace import TracerProvider
from execscope.processors._build import build_pipeline
from execscope.settings import load_settings

endpoint, spool, name, count = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
settings = load_settings({"spool_dir": Path(spool), "export_flush_deadline": 1.0}).settings
exporter = OTLPSpanExporter(endpoint=endpoint, insecure=True, timeout=1)
processor, monitor = build_pipeline(settings, [exporter], service="spool-test")
provider = TracerProvider()
provider.add_span_processor(processor)
tracer = provider.get_tracer("spool-test")
for index in range(count):
    with tracer.start_as_current_span(f"{name} {index}"):
        pass
provider.shutdown()
print(processor.stats.snapshot())
"""


def run_program(tmp_path: Path, receiver: Receiver, name: str, count: int, source: str = SCRIPT) -> str:
    """Run ``source`` (SCRIPT, or another with its arguments) to its end; what it printed."""
    script = tmp_path / "program.py"
    script.write_text(textwrap.dedent(source))
    result = subprocess.run(
        [sys.executable, str(script), receiver.endpoint, str(tmp_path / "spool"), name, str(count)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    return result.stdout


def test_spans_of_a_program_that_exits_while_the_collector_is_down_arrive_at_the_next_start(
    tmp_path: Path, receiver: Receiver
) -> None:
    receiver.stop()
    first = run_program(tmp_path, receiver, "first run", 300)
    assert "'spooled': 300" in first
    receiver.start()
    run_program(tmp_path, receiver, "second run", 200)
    assert receiver.wait_for(500)
    names = [span.name for span in receiver.spans]
    assert names[:300] == [f"first run {index}" for index in range(300)]  # the older spans first
    assert sorted(names[300:]) == sorted(f"second run {index}" for index in range(200))


def test_a_forked_worker_has_a_working_pipeline_of_its_own(tmp_path: Path, receiver: Receiver) -> None:
    with pipeline(tmp_path, [otlp(receiver)]) as pipe:
        make_spans(pipe, 10, "parent")
        pid = os.fork()
        if pid == 0:
            try:
                make_spans(pipe, 50, "child")
                pipe.provider.shutdown()
            finally:
                os._exit(0)
        _, status = os.waitpid(pid, 0)
        assert status == 0
        pipe.flush()
        assert receiver.wait_for(60)
    names = {span.name.split()[0] for span in receiver.spans}
    assert names == {"parent", "child"}


def test_a_stalled_collector_never_blocks_the_application_and_every_drop_is_counted(
    tmp_path: Path, receiver: Receiver
) -> None:
    receiver.stall.set()
    with pipeline(
        tmp_path,
        [otlp(receiver)],
        export_queue_size=1_000,
        export_flush_deadline=1.0,
        spool_dir=tmp_path / "s",
    ) as pipe:
        make_spans(pipe, 5_000)  # would hang here if ending a span waited for the exporter
        began = time.monotonic()
        pipe.provider.shutdown()
        shutdown_s = time.monotonic() - began
        stats = pipe.stats.snapshot()
    dropped: dict[str, int] = stats["dropped"]  # type: ignore[assignment]
    # Every span is accounted for: spooled for the next start, or dropped for a named reason.
    assert stats["spooled"] + dropped["queue_full"] >= 5_000  # type: ignore[operator]
    assert dropped["queue_full"] > 0
    assert shutdown_s < 1.0 + 2.0  # the flush deadline, plus the in-flight request's own timeout


def test_the_spool_stays_within_its_size_limit_and_counts_what_it_discards(tmp_path: Path) -> None:
    down = Receiver()  # never started
    with pipeline(tmp_path, [otlp(down)], spool_dir=tmp_path / "spool", spool_max_mb=1) as pipe:
        for _ in range(20):
            make_spans(pipe, 500)
            pipe.flush()
        spool = sink_of(pipe).spool
        assert spool is not None
        assert spool.size_bytes <= 1024 * 1024
        pending = spool.pending_spans
        stats = pipe.stats.snapshot()
    dropped: dict[str, int] = stats["dropped"]  # type: ignore[assignment]
    assert dropped["spool_full"] > 0
    assert pending + dropped["spool_full"] == 10_000


def test_a_real_collector_killed_and_restarted_mid_stream_loses_no_span(tmp_path: Path) -> None:
    from collector_helpers import Receiver as Sink
    from collector_helpers import free_port, rotel_binary, running_rotel, span_id_of

    binary, port = rotel_binary(), free_port()
    with Sink() as downstream:
        exporter = OTLPSpanExporter(endpoint=f"127.0.0.1:{port}", insecure=True, timeout=2)
        with pipeline(tmp_path, [exporter], spool_dir=tmp_path / "spool") as pipe:
            with running_rotel(binary, tmp_path / "rotel-1", downstream.port, port=port) as rotel:
                sent = make_spans(pipe, 400, "before")
                pipe.flush()
                downstream.wait_for_span_ids(set(sent))  # what rotel acknowledged has left it
                rotel.process.kill()
                rotel.process.wait()
            sent += make_spans(pipe, 800, "while down")
            pipe.flush()
            with running_rotel(binary, tmp_path / "rotel-2", downstream.port, port=port):
                sent += make_spans(pipe, 400, "after")
                pipe.flush()
                arrived = downstream.wait_for_span_ids(set(sent), timeout=30)
        stats = pipe.stats.snapshot()
    assert {span_id_of(span) for span in arrived} == set(sent)
    assert sum(stats["dropped"].values()) == 0  # type: ignore[attr-defined]


def test_a_flush_right_after_another_thread_queued_the_first_span_waits_for_its_delivery(
    tmp_path: Path, receiver: Receiver, monkeypatch: pytest.MonkeyPatch
) -> None:
    with pipeline(tmp_path, [otlp(receiver)]) as pipe:
        sink = sink_of(pipe)
        # The window of a concurrent first `offer`: the span is queued, and the thread that
        # queued it has not started the worker yet.
        monkeypatch.setattr(sink, "_start_worker", lambda: None)
        make_spans(pipe, 1)
        monkeypatch.undo()
        assert sink._worker is None and sink.queue_depth == 1
        assert pipe.processor.force_flush(10_000)
        assert receiver.wait_for(1)


def test_a_flush_waits_for_the_batch_being_sent_not_just_for_an_empty_queue(tmp_path: Path) -> None:
    exporter = HeldExporter()
    with pipeline(tmp_path, [exporter]) as pipe:
        with pipe.tracer.start_as_current_span("in flight"):
            pass
        flushed: list[bool] = []
        flushing = threading.Thread(target=lambda: flushed.append(pipe.processor.force_flush(10_000)))
        flushing.start()
        assert exporter.exporting.wait(10)  # the batch has left the queue and is being sent
        (sink,) = pipe.processor.sinks
        assert sink.queue_depth == 0
        flushing.join(0.3)
        assert flushing.is_alive() and not flushed  # still waiting for the send
        exporter.release.set()
        flushing.join(10)
        assert flushed == [True]
        assert [span.name for span in exporter.get_finished_spans()] == ["in flight"]


@pytest.fixture
def stalled(receiver: Receiver, monkeypatch: pytest.MonkeyPatch) -> OTLPSpanExporter:
    """An exporter to a receiver that holds every request until released, in batches of 100
    spans, with a timeout longer than the tests wait."""
    monkeypatch.setenv("OTEL_BSP_MAX_EXPORT_BATCH_SIZE", "100")
    receiver.stall.set()
    return OTLPSpanExporter(endpoint=receiver.endpoint, insecure=True, timeout=30)


def test_several_batches_are_on_their_way_at_once_and_a_flush_waits_for_every_answer(
    tmp_path: Path, receiver: Receiver, stalled: OTLPSpanExporter
) -> None:
    with pipeline(tmp_path, [stalled]) as pipe:
        sink = sink_of(pipe)
        sent = make_spans(pipe, 600)
        flushed: list[bool] = []
        flushing = threading.Thread(target=lambda: flushed.append(pipe.processor.force_flush(30_000)))
        flushing.start()
        # The worker sends the next batches while the receiver sits on the first ones...
        assert receiver.wait_held(sink.transport.concurrency)
        flushing.join(0.3)
        assert flushing.is_alive() and not flushed  # ...and a flush waits for their answers
        assert receiver.spans == []
        receiver.stall.clear()
        receiver.release()
        flushing.join(30)
        assert flushed == [True]
        assert pipe.stats.snapshot()["exported"] == 600
    assert receiver.most_held == sink.transport.concurrency  # never more on their way than that
    assert sorted(receiver.span_ids()) == sorted(sent)


def test_at_the_deadline_the_batches_on_their_way_and_the_one_waiting_for_room_are_spooled(
    tmp_path: Path, receiver: Receiver, stalled: OTLPSpanExporter, monkeypatch: pytest.MonkeyPatch
) -> None:
    with pipeline(tmp_path, [stalled], export_flush_deadline=0.5, spool_dir=tmp_path / "spool") as pipe:
        sink = sink_of(pipe)
        with monkeypatch.context() as queued_first:  # every span queued before the worker starts:
            queued_first.setattr(sink, "_start_worker", lambda: None)  # it takes full batches
            make_spans(pipe, 600)
        sink._start_worker()
        assert receiver.wait_held(sink.transport.concurrency)
        deadline = time.monotonic() + 10
        while sink.queue_depth > 100 and time.monotonic() < deadline:  # a fifth batch waits for room
            time.sleep(0.01)
        assert sink.queue_depth == 100
        # The channel stays open at shutdown (a collector that is slow, not gone): the worker is
        # still waiting for an answer when the deadline has to account for everything.
        monkeypatch.setattr(sink.transport, "close", lambda: None)
        began = time.monotonic()
        pipe.provider.shutdown()
        assert time.monotonic() - began < 0.5 + 1.0
        stats = pipe.stats.snapshot()
        receiver.release()
        stalled.shutdown()
    assert stats["spooled"] == 600
    assert sum(stats["dropped"].values()) == 0  # type: ignore[attr-defined]


def test_a_request_waits_for_its_answer_as_long_as_the_exporters_own_timeout(
    tmp_path: Path, receiver: Receiver
) -> None:
    receiver.stall.set()
    exporter = OTLPSpanExporter(endpoint=receiver.endpoint, insecure=True, timeout=1)
    with pipeline(tmp_path, [exporter], spool_dir=tmp_path / "spool") as pipe:
        make_spans(pipe, 1)
        began = time.monotonic()
        assert pipe.processor.force_flush(8_000)  # answered "deadline exceeded" after 1 s, not 10
        assert time.monotonic() - began < 5
        assert pipe.stats.snapshot()["spooled"] == 1
        receiver.release()


EXIT_SCRIPT = """
import sys
from pathlib import Path
from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter
from execscope.processors._build import build_pipeline
from execscope.settings import load_settings
from execscope.tracing import ExecscopeTracerProvider

endpoint, spool, name, count = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
settings = load_settings({"spool_dir": Path(spool), "export_flush_deadline": 1.0}).settings
exporter = OTLPSpanExporter(endpoint=endpoint, insecure=True, timeout=60)
processor, monitor = build_pipeline(settings, [exporter], service="exit-test")
provider = ExecscopeTracerProvider()  # shuts its processors down at exit, as the distro's does
provider.add_span_processor(processor)
tracer = provider.get_tracer("exit-test")
for index in range(count):
    with tracer.start_as_current_span(f"{name} {index}"):
        pass
processor.force_flush(500)
"""


def test_a_program_exits_on_time_while_a_collector_sits_on_its_requests_and_loses_nothing(
    tmp_path: Path, receiver: Receiver
) -> None:
    receiver.stall.set()
    began = time.monotonic()
    run_program(tmp_path, receiver, "held", 2_000, EXIT_SCRIPT)
    took = time.monotonic() - began
    assert receiver.most_held >= 1  # requests were on their way when the program exited
    # Not the exporter's 60 s per request: the flush deadline at exit, plus start-up.
    assert took < 20
    receiver.stall.clear()
    receiver.release()
    run_program(tmp_path, receiver, "next", 1, EXIT_SCRIPT)  # the next start delivers what was spooled
    assert receiver.wait_for(2_001)
    names = {span.name for span in receiver.spans}
    assert names >= {f"held {index}" for index in range(2_000)}


def test_the_cpu_of_the_threads_that_send_is_counted_as_export_cost(
    tmp_path: Path, receiver: Receiver
) -> None:
    with pipeline(tmp_path, [otlp(receiver)]) as pipe:
        sink = sink_of(pipe)
        make_spans(pipe, 2_000)
        pipe.flush()
        assert receiver.wait_for(2_000)
        # gRPC does a call's work on the thread that makes it: a sender thread, not the worker.
        assert sink.transport.cpu_s > 0
        assert sink.export_cpu_s == sink.worker_cpu_s + sink.transport.cpu_s
        reading = pipe.monitor.tick(observe=False)
    assert reading.cpu_share > 0
