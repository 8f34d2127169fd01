"""Sensitive values are redacted by the name they are bound to and by what they look like."""

from __future__ import annotations

from typing import NamedTuple

import pytest
from capture_helpers import raise_internal_errors  # noqa: F401

from execscope.capture import (
    REDACTED,
    NoopRedactor,
    Redactor,
    default_redactor,
    render,
    render_arguments,
    snapshot,
)

JWT = "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxMjM0NTY3ODkwIn0.dozjgNryP4J3jVmNHl0w5N_XgL0n3I9PlFUP0THsR8U"
CARD = "4111 1111 1111 1111"  # a Visa test number: passes the Luhn check


# --------------------------------------------------------------------------- by name


def test_arguments_with_sensitive_names_are_redacted_without_being_rendered() -> None:
    class Exploding:
        __slots__ = ()

    rendered = render_arguments(
        [("user", "bob"), ("Password", "hunter2"), ("api_key", Exploding()), ("X-Auth-Token", 1)]
    )
    assert rendered == {"user": "'bob'", "Password": REDACTED, "api_key": REDACTED, "X-Auth-Token": REDACTED}


@pytest.mark.parametrize(
    "name",
    [
        "password",
        "db_passwd",
        "client_secret",
        "access_token",
        "API_KEY",
        "apikey",
        "Authorization",
        "auth",
        "cookie",
        "Set-Cookie",
        "session_id",
        "credentials",
        "private_key",
    ],
)
def test_default_sensitive_names(name: str) -> None:
    assert default_redactor().is_sensitive_name(name)


@pytest.mark.parametrize("name", ["user", "count", "items", "key", "value"])
def test_ordinary_names_are_kept(name: str) -> None:
    assert not default_redactor().is_sensitive_name(name)


def test_dict_keys_redact_their_values_str_and_bytes() -> None:
    headers = {"Authorization": "Basic abc", b"Cookie": b"id=1", "accept": "*/*"}
    assert render(headers) == "{'Authorization': [redacted], b'Cookie': [redacted], 'accept': '*/*'}"


def test_nested_values_under_a_sensitive_key_are_redacted_whole() -> None:
    assert render({"config": {"secrets": {"db": "x", "other": [1]}}}) == "{'config': {'secrets': [redacted]}}"


class Login:
    def __init__(self) -> None:
        self.user = "bob"
        self.password = "hunter2"


class SlottedLogin:
    __slots__ = ("token", "user")

    def __init__(self) -> None:
        self.user = "bob"
        self.token = "t"


class Pair(NamedTuple):
    user: str
    secret: str


def test_object_fields_slots_and_namedtuple_fields_are_redacted() -> None:
    assert render(Login()) == "Login(user='bob', password=[redacted])"
    assert render(SlottedLogin()) == "SlottedLogin(token=[redacted], user='bob')"
    assert render(Pair("bob", "s")) == "Pair(user='bob', secret=[redacted])"


def test_snapshots_redact_fields() -> None:
    assert snapshot(Login()) == {"user": "'bob'", "password": REDACTED}


def test_extra_and_replaced_name_patterns() -> None:
    extra = Redactor(extra_name_patterns=["^ssn$", r"card_?number"])
    assert render({"ssn": 1, "ssn_count": 2, "CardNumber": 3, "password": 4}, redactor=extra) == (
        "{'ssn': [redacted], 'ssn_count': 2, 'CardNumber': [redacted], 'password': [redacted]}"
    )
    only = Redactor(name_patterns=["pin"])
    assert render({"pin": 1, "password": 2}, redactor=only) == "{'pin': [redacted], 'password': 2}"


# --------------------------------------------------------------------------- by value


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("Authorization: Bearer abcdEFGH1234.-_~+/=", "Authorization: Bearer [redacted]"),
        ("Basic dXNlcjpwYXNzd29yZA==", "Basic [redacted]"),
        (f"token={JWT};", "token=[redacted];"),
        (f"card {CARD} ok", "card [redacted] ok"),
        ("4111-1111-1111-1111", "[redacted]"),
        ("4111111111111111", "[redacted]"),
        ("4222222222222", "[redacted]"),  # 13 digits
    ],
)
def test_credential_looking_text_is_masked(text: str, expected: str) -> None:
    assert default_redactor().redact_text(text) == expected


@pytest.mark.parametrize(
    "text",
    [
        "4111111111111112",  # 16 digits failing the Luhn check
        "order 1234567890123456 shipped",  # fails Luhn too
        "411111111111",  # 12 digits: too short for a card
        "41111111111111111111",  # 20 digits: too long, and not a part of it either
        "app.models.User",
        "version 1.2.3",
        "Bearer of bad news",
        "www.example.com",
    ],
)
def test_ordinary_text_is_kept(text: str) -> None:
    assert default_redactor().redact_text(text) == text


def test_strings_are_masked_wherever_they_are_rendered() -> None:
    value = {"note": f"paid with {CARD}", "items": [f"Bearer {'x' * 20}"], "raw": b"Bearer abcdefghijk"}
    assert render(value) == (
        "{'note': 'paid with [redacted]', 'items': ['Bearer [redacted]'], 'raw': b'Bearer [redacted]'}"
    )


def test_a_card_number_straddling_the_string_cut_is_still_masked() -> None:
    text = "x" * 194 + " 4111111111111111 " + "y" * 99
    rendered = render(text)
    assert "41111" not in rendered
    assert rendered.endswith("…(+111 chars)")


def test_a_run_of_digits_inside_a_hex_id_is_not_a_card_number() -> None:
    identifier = "c3fb1664ff31b417c52e0951234567890123452a"
    assert default_redactor().redact_text(identifier) == identifier


def test_extra_value_patterns() -> None:
    redactor = Redactor(extra_value_patterns=[r"\b\d{3}-\d{2}-\d{4}\b"])
    assert redactor.redact_text("ssn 123-45-6789") == "ssn [redacted]"
    assert render("ssn 123-45-6789", redactor=redactor) == "'ssn [redacted]'"


def test_value_patterns_can_be_turned_off() -> None:
    assert Redactor(value_patterns=False).redact_text(CARD) == CARD


# --------------------------------------------------------------------------- disabled


def test_the_noop_redactor_redacts_nothing() -> None:
    noop = NoopRedactor()
    assert not noop.enabled
    assert render({"password": CARD}, redactor=noop) == f"{{'password': '{CARD}'}}"
    assert render_arguments([("token", "t")], redactor=noop) == {"token": "'t'"}


def test_the_default_redactor_is_used_when_none_is_given() -> None:
    assert render_arguments([("token", "t")]) == {"token": REDACTED}
    assert render({"password": "x"}) == "{'password': [redacted]}"
    assert default_redactor() is default_redactor()


def test_patterns_must_be_non_empty_strings() -> None:
    with pytest.raises(ValueError, match="non-empty"):
        Redactor(extra_name_patterns=[""])
