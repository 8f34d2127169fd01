"""Web requests and WebSocket messages of a FastAPI application, recorded beyond contrib's spans.

The application runs in process under Starlette's test client, with contrib's FastAPI
instrumentation (as the distro loads it: no per-ASGI-event spans) and execscope's.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import fastapi
import pytest
from fastapi import FastAPI, WebSocket
from fastapi.testclient import TestClient
from instrumentor_helpers import Traced, correlated_responses, correlation_of, server_span, traced
from opentelemetry import trace
from opentelemetry.instrumentation.fastapi import FastAPIInstrumentor
from opentelemetry.trace import StatusCode
from pydantic import BaseModel
from starlette.endpoints import WebSocketEndpoint
from starlette.requests import Request

from execscope.attributes import (
    ERROR_FRAME,
    HTTP_PATH_PREFIX,
    HTTP_QUERY_PREFIX,
    HTTP_REQUEST_BODY,
    MESSAGE,
    STATE_DIFF,
)
from execscope.instrumentors.starlette import StarletteInstrumentor

HANDLER_FILE = __file__


class Signup(BaseModel):
    name: str
    password: str


class Counter(WebSocketEndpoint):
    encoding = "text"
    tracer: trace.Tracer = trace.get_tracer("tests")

    async def on_connect(self, websocket: WebSocket) -> None:  # type: ignore[override]
        self.count = 0
        await websocket.accept()

    async def on_receive(self, websocket: WebSocket, data: str) -> None:  # type: ignore[override]
        with self.tracer.start_as_current_span("handle " + data):
            self.count += 1 if data == "inc" else -1
        await websocket.send_text(json.dumps({"count": self.count}))


def build_app() -> FastAPI:
    # Looked up at call time: contrib's instrumentation replaces the class in its module.
    app = fastapi.FastAPI()

    @app.post("/teams/{team}/members")
    async def add_member(team: int, signup: Signup, role: str = "member") -> dict[str, Any]:
        return {"team": team, "name": signup.name, "role": role}

    @app.post("/form")
    async def form_echo(request: Request) -> dict[str, int]:
        return {"size": len(await request.body())}

    @app.get("/fail")
    async def fail() -> None:
        raise RuntimeError("the handler broke")

    app.router.add_websocket_route("/ws/counter", Counter)
    return app


@pytest.fixture
def recorded(tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[Traced]:
    settings = getattr(request, "param", {})
    with traced(tmp_path, **settings) as active:
        FastAPIInstrumentor().instrument(tracer_provider=active.provider, exclude_spans=["receive", "send"])
        StarletteInstrumentor().instrument(tracer_provider=active.provider)
        Counter.tracer = active.provider.get_tracer("tests")
        try:
            with correlated_responses():
                yield active
        finally:
            StarletteInstrumentor().uninstrument()
            FastAPIInstrumentor().uninstrument()


def test_a_request_records_handler_location_parameters_body_and_response_size(recorded: Traced) -> None:
    with TestClient(build_app()) as client:
        response = client.post(
            "/teams/7/members?role=admin&api_key=s3cr3t", json={"name": "ada", "password": "hunter2"}
        )
    assert response.status_code == 200
    span = server_span(recorded.spans())
    attributes = dict(span.attributes or {})
    assert attributes["http.route"] == "/teams/{team}/members"
    assert attributes["code.function.name"].endswith("build_app.<locals>.add_member")
    assert attributes["code.file.path"] == HANDLER_FILE
    assert attributes[HTTP_PATH_PREFIX + "team"] == "'7'"
    assert attributes[HTTP_QUERY_PREFIX + "role"] == "'admin'"
    assert attributes[HTTP_QUERY_PREFIX + "api_key"] == "[redacted]"
    assert attributes[HTTP_REQUEST_BODY] == "{'name': 'ada', 'password': [redacted]}"
    assert attributes["http.response.body.size"] == len(response.content)


def test_the_response_carries_the_request_correlation_id(recorded: Traced) -> None:
    with TestClient(build_app()) as client:
        response = client.post("/teams/1/members", json={"name": "x", "password": "y"})
    span = server_span(recorded.spans())
    assert response.headers["x-correlation-id"] == correlation_of(span)
    assert "x-correlation-id" in response.headers["access-control-expose-headers"]


def test_an_incoming_correlation_id_is_kept_and_returned(recorded: Traced) -> None:
    with TestClient(build_app()) as client:
        response = client.post(
            "/teams/1/members", json={"name": "x", "password": "y"}, headers={"x-correlation-id": "order-42"}
        )
    assert response.headers["x-correlation-id"] == "order-42"


def test_a_form_body_is_captured_and_redacted(recorded: Traced) -> None:
    with TestClient(build_app()) as client:
        client.post("/form", data={"user": "ada", "password": "hunter2"})
    attributes = dict(server_span(recorded.spans()).attributes or {})
    assert attributes[HTTP_REQUEST_BODY] == "{'user': 'ada', 'password': [redacted]}"


@pytest.mark.parametrize("recorded", [{"http_capture_body": 16}], indirect=True)
def test_a_body_over_the_limit_is_described_not_captured(recorded: Traced) -> None:
    with TestClient(build_app()) as client:
        client.post("/teams/1/members", json={"name": "a" * 40, "password": "hunter2"})
    body = dict(server_span(recorded.spans()).attributes or {})[HTTP_REQUEST_BODY]
    assert "over the 16-byte capture limit" in str(body)
    assert "hunter2" not in str(body)


@pytest.mark.parametrize("recorded", [{"http_capture_body": 0}], indirect=True)
def test_bodies_are_not_captured_when_switched_off(recorded: Traced) -> None:
    with TestClient(build_app()) as client:
        client.post("/teams/1/members", json={"name": "ada", "password": "hunter2"})
    assert HTTP_REQUEST_BODY not in dict(server_span(recorded.spans()).attributes or {})


def test_an_unhandled_error_is_recorded_with_the_handler_frame_and_the_id_still_returned(
    recorded: Traced,
) -> None:
    with TestClient(build_app(), raise_server_exceptions=False) as client:
        response = client.get("/fail")
    assert response.status_code == 500
    span = server_span(recorded.spans())
    assert span.status.status_code == StatusCode.ERROR
    assert response.headers["x-correlation-id"] == correlation_of(span)
    frame = dict(span.attributes or {})[ERROR_FRAME]
    assert str(frame).startswith(f"{HANDLER_FILE}:") and str(frame).endswith("in build_app.<locals>.fail")
    assert [event.attributes["exception.type"] for event in span.events if event.attributes] == [
        "RuntimeError"
    ]


def test_the_application_behaves_the_same_uninstrumented(recorded: Traced) -> None:
    StarletteInstrumentor().uninstrument()
    with TestClient(build_app()) as client:
        response = client.post("/teams/3/members?role=x", json={"name": "ada", "password": "p"})
    assert response.json() == {"team": 3, "name": "ada", "role": "x"}
    attributes = dict(server_span(recorded.spans()).attributes or {})
    assert not [key for key in attributes if key.startswith("execscope.http")]
    assert "code.function.name" not in attributes


def test_each_websocket_message_is_one_span_with_its_preview_and_the_handler_state_diff(
    recorded: Traced,
) -> None:
    with TestClient(build_app()) as client, client.websocket_connect("/ws/counter") as websocket:
        for command in ("inc", "inc", "dec"):
            websocket.send_text(command)
            websocket.receive_text()
    spans = recorded.spans()
    connection = server_span(spans)
    received = sorted(
        (span for span in spans if span.name == "/ws/counter receive"), key=lambda span: span.start_time or 0
    )
    sent = [span for span in spans if span.name == "/ws/counter send"]
    assert len(received) == 3 and len(sent) == 3
    assert [dict(span.attributes or {})[MESSAGE] for span in received] == ["'inc'", "'inc'", "'dec'"]
    diffs = [json.loads(str(dict(span.attributes or {})[STATE_DIFF])) for span in received]
    assert [diff["changed"]["count"] for diff in diffs] == [["0", "1"], ["1", "2"], ["2", "1"]]
    for span in received:
        assert span.parent is not None and span.parent.span_id == connection.context.span_id
        assert correlation_of(span) == correlation_of(connection)
    by_id = {span.context.span_id: span for span in spans}
    for span in sent:
        assert span.parent is not None and by_id[span.parent.span_id].name == "/ws/counter receive"
        assert dict(span.attributes or {})[MESSAGE].startswith('\'{"count"')
    handled = [span for span in spans if span.name.startswith("handle ")]
    assert {by_id[span.parent.span_id].name for span in handled if span.parent} == {"/ws/counter receive"}


def test_no_span_is_made_per_low_level_asgi_event(recorded: Traced) -> None:
    with TestClient(build_app()) as client, client.websocket_connect("/ws/counter") as websocket:
        websocket.send_text("inc")
        websocket.receive_text()
    names = {span.name for span in recorded.spans()}
    assert not [name for name in names if name.endswith(("websocket receive", "websocket send", "http send"))]
