"""Web requests of a Flask application, recorded beyond contrib's server span.

The application runs in process under Flask's test client, with contrib's Flask
instrumentation and execscope's, as the distro loads them; one test serves it from a real
server process under ``execscope run``.
"""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import flask
import pytest
from flask.views import MethodView
from instrumentor_helpers import (
    Traced,
    assert_a_served_note_is_recorded,
    child_environment,
    correlated_responses,
    correlation_of,
    served,
    server_span,
    traced,
)
from opentelemetry.instrumentation.flask import FlaskInstrumentor as ContribFlaskInstrumentor
from opentelemetry.trace import StatusCode
from otlp_receiver import Receiver, free_port
from werkzeug.exceptions import Conflict

from conftest import BIN
from execscope.attributes import ERROR_FRAME, HTTP_PATH_PREFIX, HTTP_QUERY_PREFIX, HTTP_REQUEST_BODY
from execscope.instrumentors import _failsafe
from execscope.instrumentors.flask import FlaskInstrumentor
from execscope.instrumentors.flask._request import RequestCapture

HANDLER_FILE = __file__


class Item(MethodView):
    def get(self, item: str) -> dict[str, str]:
        return {"item": item}


def build_app() -> flask.Flask:
    # Looked up at call time: contrib's instrumentation replaces the class in its module.
    app = flask.Flask(__name__)

    @app.post("/teams/<int:team>/members")
    def add_member(team: int) -> dict[str, Any]:
        signup = flask.request.get_json()
        return {"team": team, "name": signup["name"], "role": flask.request.args.get("role", "member")}

    @app.post("/form")
    def form_echo() -> dict[str, int]:
        return {"fields": len(flask.request.form)}

    @app.post("/raw")
    def raw_echo() -> dict[str, int]:
        return {"size": len(flask.request.stream.read())}

    @app.get("/fail")
    def fail() -> None:
        raise RuntimeError("the handler broke")

    @app.get("/taken")
    def taken() -> None:
        raise Conflict("already taken")

    @app.get("/handled")
    def handled() -> None:
        raise KeyError("missing")

    @app.errorhandler(KeyError)
    def missing(error: KeyError) -> tuple[str, int]:
        return "handled", 500

    app.add_url_rule("/items/<item>", view_func=Item.as_view("item"))
    return app


@pytest.fixture
def recorded(tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[Traced]:
    settings = getattr(request, "param", {})
    with traced(tmp_path, **settings) as active:
        ContribFlaskInstrumentor().instrument(tracer_provider=active.provider)
        FlaskInstrumentor().instrument(tracer_provider=active.provider)
        try:
            with correlated_responses():
                yield active
        finally:
            FlaskInstrumentor().uninstrument()
            ContribFlaskInstrumentor().uninstrument()


def attributes_after(recorded: Traced) -> dict[str, Any]:
    return dict(server_span(recorded.spans()).attributes or {})


def test_a_request_records_handler_location_parameters_body_and_response_size(recorded: Traced) -> None:
    client = build_app().test_client()
    response = client.post(
        "/teams/7/members?role=admin&api_key=s3cr3t", json={"name": "ada", "password": "hunter2"}
    )
    assert response.status_code == 200
    assert response.json == {"team": 7, "name": "ada", "role": "admin"}
    attributes = attributes_after(recorded)
    assert attributes["http.route"] == "/teams/<int:team>/members"
    assert attributes["code.function.name"].endswith("build_app.<locals>.add_member")
    assert attributes["code.file.path"] == HANDLER_FILE
    assert attributes[HTTP_PATH_PREFIX + "team"] == "7"
    assert attributes[HTTP_QUERY_PREFIX + "role"] == "'admin'"
    assert attributes[HTTP_QUERY_PREFIX + "api_key"] == "[redacted]"
    assert attributes[HTTP_REQUEST_BODY] == "{'name': 'ada', 'password': [redacted]}"
    assert attributes["http.response.body.size"] == len(response.data)


def test_a_class_based_view_is_located_at_its_class(recorded: Traced) -> None:
    assert build_app().test_client().get("/items/pen").json == {"item": "pen"}
    attributes = attributes_after(recorded)
    assert attributes["code.function.name"] == f"{__name__}.Item"
    assert attributes["code.file.path"] == HANDLER_FILE
    assert attributes[HTTP_PATH_PREFIX + "item"] == "'pen'"


def test_the_response_carries_the_request_correlation_id(recorded: Traced) -> None:
    response = build_app().test_client().post("/teams/1/members", json={"name": "x", "password": "y"})
    assert response.headers["x-correlation-id"] == correlation_of(server_span(recorded.spans()))


def test_a_form_body_is_captured_and_redacted(recorded: Traced) -> None:
    response = build_app().test_client().post("/form", data={"user": "ada", "password": "hunter2"})
    assert response.json == {"fields": 2}
    assert attributes_after(recorded)[HTTP_REQUEST_BODY] == "{'user': 'ada', 'password': [redacted]}"


def test_a_body_the_application_reads_as_a_stream_is_left_whole_and_not_captured(recorded: Traced) -> None:
    body = b'{"name": "ada", "password": "hunter2"}'
    response = build_app().test_client().post("/raw", data=body, content_type="application/json")
    assert response.json == {"size": len(body)}
    assert HTTP_REQUEST_BODY not in attributes_after(recorded)


@pytest.mark.parametrize("recorded", [{"http_capture_body": 16}], indirect=True)
def test_a_body_over_the_limit_is_described_not_captured(recorded: Traced) -> None:
    build_app().test_client().post("/teams/1/members", json={"name": "a" * 40, "password": "hunter2"})
    body = str(attributes_after(recorded)[HTTP_REQUEST_BODY])
    assert "over the 16-byte capture limit" in body
    assert "hunter2" not in body


@pytest.mark.parametrize("recorded", [{"http_capture_body": 0}], indirect=True)
def test_bodies_are_not_captured_when_switched_off(recorded: Traced) -> None:
    build_app().test_client().post("/teams/1/members", json={"name": "ada", "password": "hunter2"})
    assert HTTP_REQUEST_BODY not in attributes_after(recorded)


def test_an_unhandled_error_is_recorded_with_the_handler_frame_and_the_id_still_returned(
    recorded: Traced,
) -> None:
    response = build_app().test_client().get("/fail")
    assert response.status_code == 500
    span = server_span(recorded.spans())
    assert span.status.status_code == StatusCode.ERROR
    assert response.headers["x-correlation-id"] == correlation_of(span)
    frame = str(dict(span.attributes or {})[ERROR_FRAME])
    assert frame.startswith(f"{HANDLER_FILE}:") and frame.endswith("in build_app.<locals>.fail")


def test_an_error_an_error_handler_answers_still_names_its_frame(recorded: Traced) -> None:
    response = build_app().test_client().get("/handled")
    assert response.status_code == 500
    frame = str(attributes_after(recorded)[ERROR_FRAME])
    assert frame.endswith("in build_app.<locals>.handled")


def test_an_http_exception_is_the_application_answering_not_an_error_frame(recorded: Traced) -> None:
    response = build_app().test_client().get("/taken")
    assert response.status_code == 409
    assert ERROR_FRAME not in attributes_after(recorded)


def test_the_application_behaves_the_same_uninstrumented(recorded: Traced) -> None:
    FlaskInstrumentor().uninstrument()
    response = (
        build_app().test_client().post("/teams/3/members?role=x", json={"name": "ada", "password": "p"})
    )
    assert response.json == {"team": 3, "name": "ada", "role": "x"}
    attributes = attributes_after(recorded)
    assert not [key for key in attributes if key.startswith("execscope.http")]
    assert "code.function.name" not in attributes


def test_without_contribs_server_span_nothing_is_recorded_and_the_application_answers(
    recorded: Traced,
) -> None:
    ContribFlaskInstrumentor().uninstrument()
    client = build_app().test_client()
    assert client.post("/teams/3/members", json={"name": "ada", "password": "p"}).status_code == 200
    assert client.get("/fail").status_code == 500
    assert recorded.spans() == []


@pytest.mark.parametrize("broken", ["request_of", "view_of", "body_of", "answers"])
def test_a_capture_that_fails_leaves_the_request_as_it_was(
    recorded: Traced, monkeypatch: pytest.MonkeyPatch, broken: str
) -> None:
    def fails(*args: object) -> object:
        raise RuntimeError("capture broke")

    monkeypatch.setattr(_failsafe, "RAISE_INTERNAL_ERRORS", False)
    monkeypatch.setattr(RequestCapture, broken, fails)
    client = build_app().test_client()
    response = client.post("/teams/7/members", json={"name": "ada", "password": "p"})
    assert response.json == {"team": 7, "name": "ada", "role": "member"}
    assert client.get("/fail").status_code == 500
    assert client.get("/taken").status_code == 409


SERVED_APP = """
import flask

app = flask.Flask(__name__)


@app.post("/users/<int:user>/notes")
def add_note(user):
    note = flask.request.get_json()
    return {"user": user, "words": len(note["text"].split())}
"""


def test_a_real_server_under_execscope_run_records_the_request(tmp_path: Path) -> None:
    (tmp_path / "notes_app.py").write_text(SERVED_APP)
    receiver = Receiver().start()
    port = free_port()
    command = [str(BIN / "execscope"), "run", "--", sys.executable, "-m", "flask", "--app", "notes_app",
               "run", "--port", str(port), "--no-reload"]  # fmt: skip
    environment = child_environment(receiver.endpoint, tmp_path, OTEL_SERVICE_NAME="notes")
    try:
        with served(command, environment, tmp_path, ready="Running on"):
            assert_a_served_note_is_recorded(receiver, port, "/users/<int:user>/notes", "notes_app.add_note")
    finally:
        receiver.stop()
