"""Redaction of sensitive values: by the name they are bound to, and by what they look like.

Names (argument names, dict keys, object field names) are matched against case-insensitive
regular expressions; a plain word is a substring match. A matching name's value is replaced
by ``[redacted]`` before it is rendered at all. Independently, credential-looking text inside
any rendered string is masked: ``Bearer``/``Basic`` credentials, JWTs and payment card numbers
(13 to 19 digits, optionally grouped by spaces or dashes, that pass the Luhn check).
"""

from __future__ import annotations

import re
import sys
from collections.abc import Iterable
from typing import Final

REDACTED: Final = "[redacted]"

#: Name patterns of the default redactor (case-insensitive; plain words match as substrings).
DEFAULT_NAME_PATTERNS: Final[tuple[str, ...]] = (
    "password",
    "passwd",
    "secret",
    "token",
    "api_key",
    "apikey",
    "api-key",
    "authorization",
    "auth",
    "cookie",
    "set-cookie",
    "session",
    "credential",
    "private_key",
    "private-key",
)

# ``Bearer``/``Basic`` followed by a credential of 8+ token68 characters: "Bearer of news" stays.
_AUTH_SCHEMES: Final = ("Bearer", "bearer", "BEARER", "Basic")
_AUTH_RE: Final = re.compile(r"\b(Bearer|bearer|BEARER|Basic)\s+[A-Za-z0-9\-._~+/]{8,}=*")
# A JWS/JWT: three base64url segments, the first being a JSON object (so it starts "eyJ").
# Requiring "eyJ" keeps dotted names such as "app.models.User" or "1.2.3" unmasked.
_JWT_RE: Final = re.compile(r"\beyJ[A-Za-z0-9_-]{2,}\.[A-Za-z0-9_-]{2,}\.[A-Za-z0-9_-]*")
# 13-19 digits, single spaces or dashes allowed between them. Starting with a character class
# lets the regex engine skip quickly through text without digits; that the candidate is not
# part of a longer number is checked on each match.
_CARD_RE: Final = re.compile(r"[0-9](?:[ -]?[0-9]){12,18}")
_DIGITS: Final = frozenset("0123456789")
# The shortest text any built-in value pattern can match ("eyJxx.xx." is 9 characters).
_MIN_VALUE_MATCH: Final = 9
_NAME_CACHE_SIZE: Final = 2048


def luhn_valid(digits: str) -> bool:
    """Whether a string of ASCII digits passes the Luhn checksum (used by card numbers)."""
    total = 0
    for position, char in enumerate(reversed(digits)):
        digit = ord(char) - 48
        if position % 2:
            digit *= 2
            if digit > 9:
                digit -= 9
        total += digit
    return total % 10 == 0


def _is_separated(text: str, start: int, end: int) -> bool:
    """Whether text[start:end] stands alone: not glued to more digits (directly or across a
    separator) nor to letters (a run of digits inside a hex id or a token is not a card)."""
    before = text[max(0, start - 2) : start]
    after = text[end : end + 2]
    if before[-1:].isalpha() or after[:1].isalpha():
        return False
    if before[-1:] in _DIGITS or (before[-1:] in (" ", "-") and before[:1] in _DIGITS and len(before) == 2):
        return False
    return not (after[:1] in _DIGITS or (after[:1] in (" ", "-") and after[1:2] in _DIGITS))


def _replace_card(match: re.Match[str]) -> str:
    card = match.group()
    if not _is_separated(match.string, match.start(), match.end()):
        return card
    return REDACTED if luhn_valid(card.replace(" ", "").replace("-", "")) else card


def _replace_auth(match: re.Match[str]) -> str:
    return f"{match.group(1)} {REDACTED}"


def _mask_values(text: str) -> str:
    if any(scheme in text for scheme in _AUTH_SCHEMES):
        text = _AUTH_RE.sub(_replace_auth, text)
    if "eyJ" in text:
        text = _JWT_RE.sub(REDACTED, text)
    return _CARD_RE.sub(_replace_card, text)


def _compile(patterns: Iterable[str | re.Pattern[str]]) -> re.Pattern[str] | None:
    sources = [p.pattern if isinstance(p, re.Pattern) else p for p in patterns]
    for source in sources:
        if type(source) is not str or not source:
            raise ValueError(f"redaction patterns must be non-empty strings, got {source!r}")
    if not sources:
        return None
    return re.compile("|".join(f"(?:{s})" for s in sources), re.IGNORECASE)


class Redactor:
    """Decides which names are sensitive and masks credential-looking text.

    ``name_patterns`` replaces the default name patterns, ``extra_name_patterns`` adds to them.
    ``value_patterns`` turns the built-in value patterns (auth headers, JWTs, card numbers) on
    or off; ``extra_value_patterns`` are regular expressions whose every match inside a string
    is replaced by ``[redacted]``. Results of name checks are cached, so keep one instance.
    """

    #: Whether this redactor does anything (``NoopRedactor`` says no, letting callers skip it).
    enabled: bool = True

    def __init__(
        self,
        name_patterns: Iterable[str | re.Pattern[str]] = DEFAULT_NAME_PATTERNS,
        *,
        extra_name_patterns: Iterable[str | re.Pattern[str]] = (),
        value_patterns: bool = True,
        extra_value_patterns: Iterable[str | re.Pattern[str]] = (),
    ) -> None:
        self._name_re = _compile([*name_patterns, *extra_name_patterns])
        self._value_patterns = value_patterns
        self._extra_value_re = _compile(extra_value_patterns)
        #: Strings shorter than this are never changed by ``redact_text`` (a renderer shortcut).
        self.min_text_length = _MIN_VALUE_MATCH if value_patterns else sys.maxsize
        if self._extra_value_re is not None:
            self.min_text_length = 1
        self._name_cache: dict[str, bool] = {}

    def is_sensitive_name(self, name: str) -> bool:
        """Whether a value bound to ``name`` (argument, key, field) must not be recorded."""
        if type(name) is not str:  # a str subclass could override __hash__
            name = str.__str__(name)
        cache = self._name_cache
        hit = cache.get(name)
        if hit is not None:
            return hit
        result = self._name_re is not None and self._name_re.search(name) is not None
        if len(cache) >= _NAME_CACHE_SIZE:
            cache.clear()
        cache[name] = result
        return result

    def redact_text(self, text: str) -> str:
        """``text`` with every credential-looking part replaced by ``[redacted]``."""
        if self._value_patterns and len(text) >= _MIN_VALUE_MATCH:
            text = _mask_values(text)
        if self._extra_value_re is not None:
            text = self._extra_value_re.sub(REDACTED, text)
        return text

    def __repr__(self) -> str:
        names = self._name_re.pattern if self._name_re is not None else ""
        return f"{type(self).__name__}(names={names!r}, value_patterns={self._value_patterns})"


class NoopRedactor(Redactor):
    """A redactor that redacts nothing, for when redaction is disabled; the renderer skips it."""

    enabled = False

    def __init__(self) -> None:
        super().__init__((), value_patterns=False)

    def is_sensitive_name(self, name: str) -> bool:
        return False

    def redact_text(self, text: str) -> str:
        return text

    def __repr__(self) -> str:
        return "NoopRedactor()"


_DEFAULT: Redactor | None = None


def default_redactor() -> Redactor:
    """The shared redactor with the default name and value patterns."""
    global _DEFAULT
    if _DEFAULT is None:
        _DEFAULT = Redactor()
    return _DEFAULT
