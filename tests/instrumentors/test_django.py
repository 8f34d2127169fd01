"""Web requests of a Django application, recorded beyond contrib's server span.

The application runs in process under Django's test client, with contrib's Django
instrumentation and execscope's, as the distro loads them; one test serves it from a real
server process under ``execscope run``.
"""

from __future__ import annotations

import asyncio
import json
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import django
import pytest
from django.conf import settings
from django.http import Http404, HttpRequest, HttpResponse, JsonResponse
from django.test import AsyncClient, Client
from django.urls import path, re_path
from django.views import View
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
from opentelemetry.instrumentation.django import DjangoInstrumentor as ContribDjangoInstrumentor
from opentelemetry.trace import StatusCode
from otlp_receiver import Receiver, free_port

from conftest import BIN
from execscope.attributes import ERROR_FRAME, HTTP_PATH_PREFIX, HTTP_QUERY_PREFIX, HTTP_REQUEST_BODY
from execscope.instrumentors.django import DjangoInstrumentor

HANDLER_FILE = __file__
JSON_TYPE = "application/json"
FORM_TYPE = "application/x-www-form-urlencoded"

if not settings.configured:
    settings.configure(
        DEBUG=False,
        ALLOWED_HOSTS=["testserver"],
        ROOT_URLCONF=__name__,
        MIDDLEWARE=[],
        SECRET_KEY="execscope-tests",
        USE_TZ=True,
    )
    django.setup()


def add_member(request: HttpRequest, team: int) -> JsonResponse:
    signup = json.loads(request.body)
    return JsonResponse({"team": team, "name": signup["name"], "role": request.GET.get("role", "member")})


def form_echo(request: HttpRequest) -> JsonResponse:
    return JsonResponse({"fields": len(request.POST)})


def raw_echo(request: HttpRequest) -> JsonResponse:
    return JsonResponse({"size": len(request.read())})


def fail(request: HttpRequest) -> HttpResponse:
    raise RuntimeError("the view broke")


def missing(request: HttpRequest) -> HttpResponse:
    raise Http404("no such member")


def by_position(request: HttpRequest, year: str) -> JsonResponse:
    return JsonResponse({"year": year})


class Item(View):
    def get(self, request: HttpRequest, item: str) -> JsonResponse:
        return JsonResponse({"item": item})


urlpatterns = [
    path("teams/<int:team>/members", add_member),
    path("form", form_echo),
    path("raw", raw_echo),
    path("fail", fail),
    path("missing", missing),
    path("items/<str:item>", Item.as_view()),
    re_path(r"^archive/([0-9]{4})$", by_position),
]


@pytest.fixture
def recorded(tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[Traced]:
    values = getattr(request, "param", {})
    with traced(tmp_path, **values) as active:
        ContribDjangoInstrumentor().instrument(tracer_provider=active.provider)
        DjangoInstrumentor().instrument(tracer_provider=active.provider)
        try:
            with correlated_responses():
                yield active
        finally:
            DjangoInstrumentor().uninstrument()
            ContribDjangoInstrumentor().uninstrument()


def client() -> Client:
    # A client's handler loads the middleware at its first request: made after instrumenting.
    return Client(raise_request_exception=False)


def attributes_after(recorded: Traced) -> dict[str, Any]:
    return dict(server_span(recorded.spans()).attributes or {})


def test_a_request_records_view_location_parameters_body_and_response_size(recorded: Traced) -> None:
    response = client().post(
        "/teams/7/members?role=admin&api_key=s3cr3t",
        data={"name": "ada", "password": "hunter2"},
        content_type="application/json",
    )
    assert response.status_code == 200
    assert response.json() == {"team": 7, "name": "ada", "role": "admin"}
    attributes = attributes_after(recorded)
    assert attributes["http.route"] == "teams/<int:team>/members"
    assert attributes["code.function.name"] == f"{__name__}.add_member"
    assert attributes["code.file.path"] == HANDLER_FILE
    assert attributes[HTTP_PATH_PREFIX + "team"] == "7"
    assert attributes[HTTP_QUERY_PREFIX + "role"] == "'admin'"
    assert attributes[HTTP_QUERY_PREFIX + "api_key"] == "[redacted]"
    assert attributes[HTTP_REQUEST_BODY] == "{'name': 'ada', 'password': [redacted]}"
    assert attributes["http.response.body.size"] == len(response.content)


def test_a_class_based_view_is_located_at_its_class_and_positional_groups_by_index(
    recorded: Traced,
) -> None:
    assert client().get("/items/pen").json() == {"item": "pen"}
    attributes = attributes_after(recorded)
    assert attributes["code.function.name"] == f"{__name__}.Item"
    assert attributes[HTTP_PATH_PREFIX + "item"] == "'pen'"
    recorded.exporter.spans.clear()
    assert client().get("/archive/2024").json() == {"year": "2024"}
    assert attributes_after(recorded)[HTTP_PATH_PREFIX + "0"] == "'2024'"


def test_an_asynchronous_request_is_captured_too(recorded: Traced) -> None:
    async def request() -> Any:
        return await AsyncClient().get("/items/cup?colour=red")

    response = asyncio.run(request())
    assert response.json() == {"item": "cup"}
    attributes = attributes_after(recorded)
    assert attributes["code.function.name"] == f"{__name__}.Item"
    assert attributes[HTTP_PATH_PREFIX + "item"] == "'cup'"
    assert attributes[HTTP_QUERY_PREFIX + "colour"] == "'red'"


def test_the_response_carries_the_request_correlation_id(recorded: Traced) -> None:
    response = client().post("/teams/1/members", data={"name": "x"}, content_type="application/json")
    assert response.headers["x-correlation-id"] == correlation_of(server_span(recorded.spans()))


def test_a_form_body_is_captured_and_redacted(recorded: Traced) -> None:
    response = client().post(
        "/form", data=urlencode({"user": "ada", "password": "hunter2"}), content_type=FORM_TYPE
    )
    assert response.json() == {"fields": 2}
    assert attributes_after(recorded)[HTTP_REQUEST_BODY] == "{'user': 'ada', 'password': [redacted]}"


def test_a_body_the_application_reads_as_a_file_is_left_whole_and_not_captured(recorded: Traced) -> None:
    body = b'{"name": "ada", "password": "hunter2"}'
    response = client().post("/raw", data=body, content_type="application/json")
    assert response.json() == {"size": len(body)}
    assert HTTP_REQUEST_BODY not in attributes_after(recorded)


@pytest.mark.parametrize("recorded", [{"http_capture_body": 16}], indirect=True)
def test_a_body_over_the_limit_is_described_not_captured(recorded: Traced) -> None:
    client().post(
        "/teams/1/members", data={"name": "a" * 40, "password": "p"}, content_type="application/json"
    )
    body = str(attributes_after(recorded)[HTTP_REQUEST_BODY])
    assert "over the 16-byte capture limit" in body


def test_an_unhandled_error_is_recorded_with_the_view_frame_and_the_id_still_returned(
    recorded: Traced,
) -> None:
    response = client().get("/fail")
    assert response.status_code == 500
    span = server_span(recorded.spans())
    assert span.status.status_code == StatusCode.ERROR
    assert response.headers["x-correlation-id"] == correlation_of(span)
    frame = str(dict(span.attributes or {})[ERROR_FRAME])
    assert frame.startswith(f"{HANDLER_FILE}:") and frame.endswith("in fail")


def test_a_404_raised_by_a_view_is_django_answering_not_an_error_frame(recorded: Traced) -> None:
    assert client().get("/missing").status_code == 404
    assert ERROR_FRAME not in attributes_after(recorded)


def test_without_contribs_server_span_nothing_is_recorded_and_the_application_answers(
    recorded: Traced,
) -> None:
    ContribDjangoInstrumentor().uninstrument()
    assert client().post(
        "/teams/3/members", data={"name": "ada"}, content_type="application/json"
    ).json() == {
        "team": 3,
        "name": "ada",
        "role": "member",
    }
    assert client().get("/fail").status_code == 500
    assert recorded.spans() == []


SETTINGS = """
SECRET_KEY = "execscope-tests"
DEBUG = False
ALLOWED_HOSTS = ["127.0.0.1"]
ROOT_URLCONF = "notes_urls"
MIDDLEWARE = []
USE_TZ = True
"""

URLS = """
import json

from django.http import JsonResponse
from django.urls import path


def add_note(request, user):
    note = json.loads(request.body)
    return JsonResponse({"user": user, "words": len(note["text"].split())})


urlpatterns = [path("users/<int:user>/notes", add_note)]
"""


def test_a_real_server_under_execscope_run_records_the_request(tmp_path: Path) -> None:
    (tmp_path / "notes_settings.py").write_text(SETTINGS)
    (tmp_path / "notes_urls.py").write_text(URLS)
    receiver = Receiver().start()
    port = free_port()
    command = [str(BIN / "execscope"), "run", "--", sys.executable, "-m", "django", "runserver",
               f"127.0.0.1:{port}", "--noreload"]  # fmt: skip
    environment = child_environment(
        receiver.endpoint, tmp_path, OTEL_SERVICE_NAME="notes", DJANGO_SETTINGS_MODULE="notes_settings"
    )
    environment["PYTHONPATH"] = str(tmp_path)
    try:
        with served(command, environment, tmp_path, ready="Starting development server"):
            assert_a_served_note_is_recorded(receiver, port, "users/<int:user>/notes", "notes_urls.add_note")
    finally:
        receiver.stop()
