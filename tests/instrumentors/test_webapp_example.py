"""The example web application on real servers: one request followed across four processes.

A real uvicorn serves ``examples/webapp`` under ``execscope run``, a real Celery worker runs its
jobs (RabbitMQ broker), a second process consumes its Redis pub/sub events, and real HTTP and
WebSocket clients talk to it. Every process exports over OTLP to one test receiver, and each
test waits there for the spans it expects (by correlation id), then checks parentage, links,
captured values and redaction.
"""

from __future__ import annotations

import json
import subprocess
import uuid
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import httpx
import psycopg
import pytest
from instrumentor_helpers import Output, child_environment
from opentelemetry.proto.trace.v1.trace_pb2 import Span
from otlp_receiver import Receiver, attributes_of, free_port
from websockets.sync.client import connect as websocket_connect

from conftest import BIN, REPO, require_service

WEBAPP = REPO / "examples" / "webapp"

pytestmark = pytest.mark.slow


@dataclass
class Webapp:
    receiver: Receiver
    url: str
    schema: str

    def spans_of(self, correlation_id: str, found: Callable[[list[Span]], bool]) -> list[Span]:
        def matching(spans: Sequence[Span]) -> list[Span]:
            return [
                span
                for span in spans
                if attributes_of(span).get("execscope.correlation_id") == correlation_id
            ]

        def complete(spans: Sequence[Span]) -> bool:
            # Spans arrive as each process exports them: wait until every span's parent is there
            # too, so that the ancestry a test walks has no gaps.
            mine = matching(spans)
            ids = {span.span_id for span in mine}
            return found(mine) and all(not span.parent_span_id or span.parent_span_id in ids for span in mine)

        return matching(self.receiver.wait_until(complete, timeout=60))

    def service_of(self, span: Span) -> str:
        with self.receiver._changed:
            index = next(i for i, seen in enumerate(self.receiver.spans) if seen.span_id == span.span_id)
            return str(self.receiver.resources[index]["service.name"].string_value)


def start(args: list[str], env: dict[str, str]) -> tuple[subprocess.Popen[str], Output]:
    process = subprocess.Popen(
        args, cwd=WEBAPP, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    )
    assert process.stdout is not None
    return process, Output(process.stdout)


@pytest.fixture(scope="module")
def webapp(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Webapp]:
    require_service("PostgreSQL", 5432)
    require_service("Redis", 6379)
    require_service("RabbitMQ", 5672)
    tmp_path = tmp_path_factory.mktemp("webapp")
    receiver = Receiver().start()
    run_id = uuid.uuid4().hex[:10]
    names = {
        "WEBAPP_SCHEMA": f"webapp_{run_id}",
        "WEBAPP_QUEUE": f"webapp-{run_id}",
        "WEBAPP_CHANNEL": f"webapp:{run_id}:events",
    }
    port = free_port()
    processes: list[subprocess.Popen[str]] = []

    def environment(service: str) -> dict[str, str]:
        return child_environment(receiver.endpoint, tmp_path, OTEL_SERVICE_NAME=service, **names)

    try:
        worker, worker_output = start(
            [str(BIN / "execscope"), "run", "--", str(BIN / "celery"), "-A", "tasks", "worker",
             "-Q", names["WEBAPP_QUEUE"], "--concurrency=1", "-l", "info",
             "--without-gossip", "--without-mingle", "--without-heartbeat"],
            environment("webapp-worker"),
        )  # fmt: skip
        processes.append(worker)
        subscriber, subscriber_output = start(
            [str(BIN / "execscope"), "run", "subscriber.py"], environment("webapp-subscriber")
        )
        processes.append(subscriber)
        server, server_output = start(
            [str(BIN / "execscope"), "run", "--", str(BIN / "uvicorn"), "app:app", "--port", str(port)],
            environment("webapp"),
        )
        processes.append(server)
        server_output.wait_for("Application startup complete")
        subscriber_output.wait_for("subscribed to")
        worker_output.wait_for("ready.")
        yield Webapp(receiver, f"http://127.0.0.1:{port}", names["WEBAPP_SCHEMA"])
    finally:
        for process in processes:
            process.terminate()
        for process in processes:
            try:
                process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                process.kill()
        receiver.stop()
        with psycopg.connect("host=127.0.0.1 port=5432 user=postgres dbname=test", autocommit=True) as db:
            db.execute(f"DROP SCHEMA IF EXISTS {names['WEBAPP_SCHEMA']} CASCADE")


def named(spans: list[Span], name: str) -> Span:
    found = [span for span in spans if span.name == name]
    assert len(found) == 1, f"one {name!r} expected among {sorted(span.name for span in spans)}"
    return found[0]


def is_descendant(span: Span, ancestor: Span, spans: list[Span]) -> bool:
    by_id = {candidate.span_id: candidate for candidate in spans}
    current: Span | None = span
    while current is not None and current.parent_span_id:
        if current.parent_span_id == ancestor.span_id:
            return True
        current = by_id.get(current.parent_span_id)
    return False


def values(span: Span) -> dict[str, Any]:
    return attributes_of(span)


def test_one_post_is_followed_from_the_request_to_the_worker_and_the_subscriber(webapp: Webapp) -> None:
    email = f"ada-{uuid.uuid4().hex[:8]}@example.org"
    response = httpx.post(
        f"{webapp.url}/users", json={"name": "Ada", "email": email, "password": "hunter2"}, timeout=30
    )
    assert response.status_code == 201, response.text
    correlation_id = response.headers["x-correlation-id"]

    wanted = {"POST /users", "create_user", "INSERT", "run/tasks.send_welcome", "UPDATE", "AuditLog.record"}
    spans = webapp.spans_of(correlation_id, lambda found: wanted <= {span.name for span in found})

    request = named(spans, "POST /users")
    handler = named(spans, "create_user")
    insert = named(spans, "INSERT")
    publish_task = next(span for span in spans if span.name.startswith("apply_async/"))
    run_task = named(spans, "run/tasks.send_welcome")
    update = named(spans, "UPDATE")
    receipt = next(span for span in spans if span.name.endswith(" receive"))
    audit = named(spans, "AuditLog.record")

    assert {span.trace_id for span in (request, handler, insert, publish_task, run_task, update)} == {
        request.trace_id
    }
    assert handler.parent_span_id == request.span_id
    assert is_descendant(insert, handler, spans)
    assert is_descendant(publish_task, handler, spans)
    assert run_task.parent_span_id == publish_task.span_id
    assert is_descendant(update, run_task, spans)
    assert [webapp.service_of(span) for span in (request, run_task, receipt)] == [
        "webapp",
        "webapp-worker",
        "webapp-subscriber",
    ]

    body = values(request)["execscope.http.request.body"]
    assert "'name': 'Ada'" in body and "'password': [redacted]" in body and "hunter2" not in body
    assert "password=[redacted]" in values(handler)["execscope.args.new_user"]
    assert values(request)["code.function.name"] == "app.create_user"
    assert values(run_task)["execscope.args.email"] == repr(email)
    assert "'welcomed': True" in values(run_task)["execscope.return"]

    publish_event = next(
        span for span in spans if span.name.endswith(" publish") and is_descendant(span, handler, spans)
    )
    assert [link.span_id for link in receipt.links] == [publish_event.span_id]
    assert is_descendant(audit, receipt, spans)


def test_a_websocket_session_records_each_message_with_the_counter_state(webapp: Webapp) -> None:
    with websocket_connect(webapp.url.replace("http", "ws") + "/ws/counter") as websocket:
        replies = []
        for command in ("inc", "inc", "dec"):
            websocket.send(command)
            replies.append(json.loads(websocket.recv(timeout=10)))
    assert replies == [{"count": 1}, {"count": 2}, {"count": 1}]

    def session_spans(spans: Sequence[Span]) -> list[Span]:
        return sorted(
            (span for span in spans if span.name == "/ws/counter receive"),
            key=lambda span: span.start_time_unix_nano,
        )[-3:]

    def arrived(spans: Sequence[Span]) -> bool:
        received = session_spans(spans)
        # The connection's span ends (and is exported) only once the connection closed.
        parents = {span.parent_span_id for span in received}
        return len(received) == 3 and any(span.span_id in parents for span in spans)

    spans = webapp.receiver.wait_until(arrived, timeout=60)
    received = session_spans(spans)
    assert [values(span)["execscope.message"] for span in received] == ["'inc'", "'inc'", "'dec'"]
    diffs = [json.loads(values(span)["execscope.state.diff"])["changed"]["count"] for span in received]
    assert diffs == [["0", "1"], ["1", "2"], ["2", "1"]]
    connection_ids = {span.parent_span_id for span in received}
    assert len(connection_ids) == 1
    (connection,) = [span for span in spans if span.span_id in connection_ids]
    assert {values(span)["execscope.correlation_id"] for span in received} == {
        values(connection)["execscope.correlation_id"]
    }


def test_an_unhandled_error_returns_its_correlation_id_and_is_recorded_where_it_was_raised(
    webapp: Webapp,
) -> None:
    response = httpx.get(f"{webapp.url}/boom", timeout=30)
    assert response.status_code == 500
    correlation_id = response.headers["x-correlation-id"]
    spans = webapp.spans_of(correlation_id, lambda found: any(span.name == "GET /boom" for span in found))
    request = named(spans, "GET /boom")
    assert request.status.code == request.status.STATUS_CODE_ERROR
    frame = values(request)["execscope.error.frame"]
    assert frame.startswith(str(WEBAPP / "app.py") + ":") and frame.endswith(" in boom")
    assert [event.name for event in request.events] == ["exception"]


def test_a_missing_user_is_a_client_error_not_a_server_error(webapp: Webapp) -> None:
    response = httpx.get(f"{webapp.url}/users/987654321", timeout=30)
    assert response.status_code == 404
    wanted = {"GET /users/{user_id}", "get_user", "SELECT"}
    spans = webapp.spans_of(
        response.headers["x-correlation-id"], lambda found: wanted <= {span.name for span in found}
    )
    request = named(spans, "GET /users/{user_id}")
    assert request.status.code != request.status.STATUS_CODE_ERROR
    assert values(request)["execscope.http.path.user_id"] == "'987654321'"
    assert "execscope.error.frame" not in values(request)
    assert is_descendant(named(spans, "SELECT"), request, spans)
