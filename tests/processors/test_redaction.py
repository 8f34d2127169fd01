"""Sensitive values are masked before spans leave the process: by key, and by what they look like."""

from __future__ import annotations

from pathlib import Path

from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.trace import SpanContext
from pipeline_helpers import in_memory

from execscope.capture import REDACTED, NoopRedactor, Redactor
from execscope.processors._compact import ATTRIBUTES, compact_span
from execscope.processors._redact_span import redact_span
from execscope.processors._redaction import SpanMasking, redact_attribute, redact_attributes

REDACTOR = Redactor()
CARD = "4111 1111 1111 1111"


def test_string_values_of_sensitive_keys_are_masked_whole() -> None:
    masked = redact_attributes(
        {
            "http.request.header.authorization": ("Bearer abcdefghijk123",),
            "db.password": "hunter2",
            "execscope.args.api_key": "'k-123'",
            "http.request.header.cookie": b"session=1",
            "http.route": "/users/{id}",
        },
        REDACTOR,
    )
    assert masked == {
        "http.request.header.authorization": (REDACTED,),
        "db.password": REDACTED,
        "execscope.args.api_key": REDACTED,
        "http.request.header.cookie": REDACTED,
        "http.route": "/users/{id}",
    }


def test_numbers_and_booleans_are_never_credentials() -> None:
    assert redact_attributes({"gen_ai.usage.input_tokens": 42, "session.active": True}, REDACTOR) is None


def test_credential_looking_text_is_masked_wherever_it_appears() -> None:
    assert (
        redact_attribute("exception.message", f"card {CARD} declined", REDACTOR)
        == f"card {REDACTED} declined"
    )
    assert redact_attribute("db.statement", "SELECT 1 -- Bearer abcdefghijklmnop", REDACTOR) == (
        f"SELECT 1 -- Bearer {REDACTED}"
    )
    assert redact_attribute("tags", ("fine", f"pay {CARD}"), REDACTOR) == ("fine", f"pay {REDACTED}")


def test_user_patterns_add_to_the_defaults() -> None:
    redactor = Redactor(extra_name_patterns=["ssn"])
    assert redact_attribute("user.ssn", "123-45-6789", redactor) == REDACTED
    assert redact_attribute("user.password", "x", redactor) == REDACTED


CONTEXT = SpanContext(1, 2, is_remote=False)


def test_a_span_without_anything_sensitive_is_not_copied() -> None:
    span = compact_span(ReadableSpan("plain", context=CONTEXT, attributes={"http.route": "/"}))
    assert redact_span(span, REDACTOR) is span
    secret = compact_span(ReadableSpan("secret", context=CONTEXT, attributes={"token": "t"}))
    assert redact_span(secret, NoopRedactor())[ATTRIBUTES] == (("token", "t"),)


def test_the_pipeline_masks_span_and_event_attributes_before_export(tmp_path: Path) -> None:
    with in_memory(tmp_path, redact_names=("ssn",)) as (pipe, exporter):
        with pipe.tracer.start_as_current_span("checkout") as span:
            span.set_attribute("user.ssn", "123-45-6789")
            span.set_attribute("http.route", "/pay")
            span.add_event("declined", {"reason": f"card {CARD}"})
        pipe.flush()
        (exported,) = exporter.get_finished_spans()
    assert exported.attributes["user.ssn"] == REDACTED
    assert exported.attributes["http.route"] == "/pay"
    assert exported.events[0].attributes == {"reason": f"card {REDACTED}"}


def test_redaction_can_be_turned_off(tmp_path: Path) -> None:
    with in_memory(tmp_path, redact=False) as (pipe, exporter):
        with pipe.tracer.start_as_current_span("login") as span:
            span.set_attribute("db.password", "hunter2")
        pipe.flush()
        (exported,) = exporter.get_finished_spans()
    assert exported.attributes["db.password"] == "hunter2"


def test_sensitive_query_parameters_are_masked_in_urls_and_the_rest_is_kept() -> None:
    masked = redact_attributes(
        {
            "http.url": "http://shop/api/orders?page=2&api_key=k-123&sort=asc",
            "http.target": "/api/orders?access_token=abc#top",
            "url.query": "q=shoes&password=hunter2",
            "url.full": "http://shop/search?q=token",
        },
        REDACTOR,
    )
    assert masked == {
        "http.url": f"http://shop/api/orders?page=2&api_key={REDACTED}&sort=asc",
        "http.target": f"/api/orders?access_token={REDACTED}#top",
        "url.query": f"q=shoes&password={REDACTED}",
        "url.full": "http://shop/search?q=token",
    }


def test_a_url_without_sensitive_parameters_is_left_as_it_is() -> None:
    url = "http://shop/api/orders?page=2"
    assert redact_attribute("url.full", url, REDACTOR) is url


def test_strings_seen_clean_before_are_skipped_and_credentials_are_masked_every_time() -> None:
    masking = SpanMasking(Redactor(), sanitize_sql=False)
    clean = {"code.function.name": "shop.checkout", "execscope.args.note": "gift wrap"}
    secret = {"execscope.args.note": "Bearer abcdefghijklmnop", "execscope.args.password": "gift wrap"}

    for _ in range(3):
        assert redact_attributes(clean, masking) is None
        assert redact_attributes(secret, masking) == {
            "execscope.args.note": f"Bearer {REDACTED}",
            "execscope.args.password": REDACTED,
        }

    # Only pairs that needed no masking are remembered: no credential is kept for later.
    assert masking.clean == {("code.function.name", "shop.checkout"), ("execscope.args.note", "gift wrap")}
