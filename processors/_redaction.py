"""Masks sensitive span attribute values before they leave the process.

A pure function over one attribute, shared by the in-process pipeline (over SDK spans) and the
collector plugin (over the collector's spans). Two independent rules, both from the capture
redactor so the patterns are configured once:

- by name: a string value whose attribute key's last dotted segment is a sensitive name
  (``http.request.header.authorization``, ``db.password``, ``execscope.args.api_key``) is
  replaced whole. Numbers and booleans are never credentials and are left alone, so counters
  such as ``gen_ai.usage.input_tokens`` survive the ``token`` pattern;
- by value: credential-looking text (bearer/basic credentials, JWTs, card numbers) inside any
  string value is masked wherever it appears (an exception message, a SQL statement).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from execscope.attributes import CORRELATION_ID
from execscope.capture import REDACTED, Redactor


def _sensitive_key(key: str, redactor: Redactor) -> bool:
    return redactor.is_sensitive_name(key.rpartition(".")[2] or key)


def redact_attribute(key: str, value: Any, redactor: Redactor) -> Any:
    """``value`` with its sensitive parts masked; the very same object when nothing changed."""
    if key == CORRELATION_ID:
        return value  # execscope's own random id: never a credential, and must stay intact
    if isinstance(value, str):
        if _sensitive_key(key, redactor):
            return REDACTED if value != REDACTED else value
        if len(value) >= redactor.min_text_length:
            return redactor.redact_text(value)
        return value
    if isinstance(value, bytes):
        return REDACTED if _sensitive_key(key, redactor) else value
    if isinstance(value, (tuple, list)) and value and isinstance(value[0], str):
        if _sensitive_key(key, redactor):
            return tuple(REDACTED for _ in value)
        masked = tuple(
            redactor.redact_text(item)
            if isinstance(item, str) and len(item) >= redactor.min_text_length
            else item
            for item in value
        )
        return value if all(a is b for a, b in zip(masked, value, strict=True)) else masked
    return value


def redact_attributes(attributes: Mapping[str, Any] | None, redactor: Redactor) -> dict[str, Any] | None:
    """A masked copy of ``attributes``, or None when nothing in them is sensitive (no copy made)."""
    if not attributes or not redactor.enabled:
        return None
    changed: dict[str, Any] | None = None
    for key, value in attributes.items():
        masked = redact_attribute(key, value, redactor)
        if masked is not value and masked != value:
            if changed is None:
                changed = dict(attributes)
            changed[key] = masked
    return changed
