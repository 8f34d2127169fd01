"""The embedded trace store keeps every part of a span and answers the CLI's questions."""

from __future__ import annotations

import os
import sqlite3
import time
from pathlib import Path

import pytest
from opentelemetry import trace
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.trace import Link, SpanKind, Status, StatusCode

from execscope.attributes import CODE_FUNCTION_NAME, CORRELATION_ID
from execscope.store import SpanFilter, StoreSpanExporter, TraceStore, enforce_retention
from execscope.store._schema import database_path


def provider_writing_to(store: Path, service: str = "shop") -> tuple[TracerProvider, StoreSpanExporter]:
    exporter = StoreSpanExporter(store, max_size_mb=64, max_age_s=3600)
    provider = TracerProvider(
        resource=Resource.create({"service.name": service, "deployment.environment": "test"})
    )
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    return provider, exporter


def record_checkout(provider: TracerProvider) -> str:
    tracer = provider.get_tracer("shop.checkout", "1.2.3")
    with tracer.start_as_current_span("POST /checkout", kind=SpanKind.SERVER) as root:
        root.set_attribute(CORRELATION_ID, "corr-1")
        with tracer.start_as_current_span("charge_card") as child:
            child.set_attribute(CODE_FUNCTION_NAME, "shop.payments.charge_card")
            child.set_attribute("amount", 12.5)
            child.add_event("retry", {"attempt": 2})
            child.set_status(Status(StatusCode.ERROR, "card declined"))
        other = trace.SpanContext(0xABC, 0xDEF, is_remote=True)
        with tracer.start_as_current_span("notify", links=[Link(other, {"why": "fan-out"})]):
            pass
    return trace.format_trace_id(root.get_span_context().trace_id)


def test_a_stored_trace_keeps_attributes_events_links_status_resource_and_scope(store: Path) -> None:
    provider, _ = provider_writing_to(store)
    trace_id = record_checkout(provider)

    with TraceStore(store) as reader:
        document = reader.trace(trace_id)

    assert document is not None
    assert document["root_name"] == "POST /checkout"
    assert document["service"] == "shop"
    assert document["span_count"] == 3
    assert document["error_count"] == 1
    spans = {span["name"]: span for span in document["spans"]}
    root, charge, notify = spans["POST /checkout"], spans["charge_card"], spans["notify"]
    assert root["parent_span_id"] is None
    assert root["kind"] == "SERVER"
    assert charge["parent_span_id"] == root["span_id"]
    assert charge["attributes"]["amount"] == 12.5
    assert charge["status"] == {"code": "ERROR", "message": "card declined"}
    assert charge["events"][0]["name"] == "retry"
    assert charge["events"][0]["attributes"] == {"attempt": 2}
    assert notify["links"] == [
        {"trace_id": f"{0xABC:032x}", "span_id": f"{0xDEF:016x}", "attributes": {"why": "fan-out"}}
    ]
    assert charge["resource"]["deployment.environment"] == "test"
    assert charge["scope"] == {"name": "shop.checkout", "version": "1.2.3"}
    assert root["correlation_id"] == "corr-1"
    assert root["end_ns"] >= charge["end_ns"] >= charge["start_ns"] >= root["start_ns"]


def test_queries_filter_by_service_name_function_correlation_status_and_duration(store: Path) -> None:
    provider, _ = provider_writing_to(store)
    trace_id = record_checkout(provider)
    other_provider, _ = provider_writing_to(store, service="mailer")
    other_provider.get_tracer("mailer").start_span("send").end()

    with TraceStore(store) as reader:
        names = lambda where: sorted(span["name"] for span in reader.query_spans(where))  # noqa: E731
        assert names(SpanFilter(service="mailer")) == ["send"]
        assert names(SpanFilter(name="charge_*")) == ["charge_card"]
        assert names(SpanFilter(function="shop.payments.charge_card")) == ["charge_card"]
        assert names(SpanFilter(correlation_id="corr-1")) == ["POST /checkout"]
        assert names(SpanFilter(errors_only=True)) == ["charge_card"]
        assert names(SpanFilter(trace_id=trace_id[:8])) == ["POST /checkout", "charge_card", "notify"]
        assert names(SpanFilter(min_duration_ns=10**12)) == []
        assert names(SpanFilter(since_ns=time.time_ns() + 10**9)) == []
        assert len(reader.query_spans(SpanFilter(limit=2))) == 2


def test_recent_traces_are_listed_newest_first_and_found_by_unique_prefix(store: Path) -> None:
    provider, _ = provider_writing_to(store)
    first = record_checkout(provider)
    second = record_checkout(provider)

    with TraceStore(store) as reader:
        listed = [summary["trace_id"] for summary in reader.recent_traces()]
        assert listed == [second, first]
        assert reader.latest_trace_id() == second
        assert reader.trace(second[:12]) is not None
        assert reader.trace("0" * 32) is None


def test_a_trace_split_across_batches_is_summarised_by_its_true_root(store: Path) -> None:
    provider, _ = provider_writing_to(store)
    tracer = provider.get_tracer("t")
    with tracer.start_as_current_span("root") as root:
        tracer.start_span("child-ends-first").end()  # written before its root, in its own batch
    with TraceStore(store) as reader:
        summary = reader.recent_traces()[0]
    assert summary["trace_id"] == trace.format_trace_id(root.get_span_context().trace_id)
    assert summary["root_name"] == "root"
    assert summary["span_count"] == 2


def test_retention_deletes_whole_traces_past_the_age_limit_and_counts_them(store: Path) -> None:
    provider, _ = provider_writing_to(store)
    record_checkout(provider)
    connection = sqlite3.connect(database_path(store))
    connection.isolation_level = None

    assert enforce_retention(connection, max_size_bytes=10**9, max_age_ns=10**15) == 0
    assert enforce_retention(connection, max_size_bytes=10**9, max_age_ns=1) == 1

    with TraceStore(store) as reader:
        assert reader.recent_traces() == []
        assert reader.query_spans(SpanFilter()) == []
        assert reader.counters()["traces_deleted_age"] == 1


def test_retention_deletes_oldest_traces_to_stay_under_the_size_limit(store: Path) -> None:
    provider, _ = provider_writing_to(store)
    tracer = provider.get_tracer("bulk")
    for number in range(300):
        with tracer.start_as_current_span(f"trace-{number}") as span:
            span.set_attribute("payload", "x" * 2000)
    connection = sqlite3.connect(database_path(store))
    connection.isolation_level = None
    limit = 200 * 1024

    deleted = enforce_retention(connection, max_size_bytes=limit, max_age_ns=10**15)

    assert deleted > 0
    with TraceStore(store) as reader:
        remaining = reader.recent_traces(limit=1000)
        assert remaining[-1]["root_name"] != "trace-0"  # the oldest went first
        assert remaining[0]["root_name"] == "trace-299"  # the newest stayed
        assert reader.counters()["traces_deleted_size"] == deleted


def test_a_store_that_cannot_be_written_fails_the_batch_and_counts_the_lost_spans(tmp_path: Path) -> None:
    blocker = tmp_path / "not-a-folder"
    blocker.write_text("a file where the store folder should be")
    provider, exporter = provider_writing_to(blocker / "store")

    provider.get_tracer("t").start_span("lost").end()  # must not raise into the application

    assert exporter.spans_failed == 1
    assert exporter.spans_written == 0


def test_reading_a_missing_store_says_so(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="no trace store"):
        TraceStore(tmp_path / "nothing-here")


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs fork")
def test_a_forked_child_writes_through_its_own_connection(store: Path) -> None:
    provider, _ = provider_writing_to(store)
    provider.get_tracer("t").start_span("parent-before-fork").end()
    pid = os.fork()
    if pid == 0:  # child: must not reuse the parent's SQLite connection
        try:
            provider.get_tracer("t").start_span("child").end()
        finally:
            os._exit(0)
    os.waitpid(pid, 0)
    provider.get_tracer("t").start_span("parent-after-fork").end()

    with TraceStore(store) as reader:
        names = sorted(span["name"] for span in reader.query_spans(SpanFilter()))
    assert names == ["child", "parent-after-fork", "parent-before-fork"]
