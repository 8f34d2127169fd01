"""Parsers that turn one raw setting value (an env string or a TOML value) into a typed value.

Each parser raises ``ValueError`` with a short reason; the loader turns that into the one
warning line the user sees, so the reason must read well after "is not valid: ".
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

_TRUE = frozenset({"1", "true", "yes", "on"})
_FALSE = frozenset({"0", "false", "no", "off"})
_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h|d|w)?\s*$")
_DURATION_UNITS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0, "w": 604800.0}
_LOG_LEVELS = ("debug", "info", "warning", "error")


def parse_bool(raw: Any) -> bool:
    if isinstance(raw, bool):
        return raw
    text = str(raw).strip().lower()
    if text in _TRUE:
        return True
    if text in _FALSE:
        return False
    raise ValueError("expected true or false")


def parse_fraction(raw: Any) -> float:
    """A rate between 0 and 1 inclusive (TOML numbers and env strings alike)."""
    if isinstance(raw, bool):
        raise ValueError("expected a number between 0 and 1")
    try:
        value = float(raw)
    except (TypeError, ValueError):
        raise ValueError("expected a number between 0 and 1") from None
    if not 0.0 <= value <= 1.0:
        raise ValueError("expected a number between 0 and 1")
    return value


def parse_positive_int(raw: Any) -> int:
    if isinstance(raw, bool):
        raise ValueError("expected a whole number greater than 0")
    try:
        value = int(str(raw).strip())
    except ValueError:
        raise ValueError("expected a whole number greater than 0") from None
    if value <= 0:
        raise ValueError("expected a whole number greater than 0")
    return value


def parse_duration(raw: Any) -> float:
    """Seconds, from a number of seconds or a string such as ``500ms``, ``30s``, ``12h``, ``7d``."""
    if isinstance(raw, bool):
        raise ValueError("expected a duration such as 30s, 12h or 7d")
    if isinstance(raw, (int, float)):
        seconds = float(raw)
    else:
        match = _DURATION.match(str(raw))
        if match is None:
            raise ValueError("expected a duration such as 30s, 12h or 7d")
        seconds = float(match.group(1)) * _DURATION_UNITS[match.group(2) or "s"]
    if seconds <= 0:
        raise ValueError("expected a duration greater than 0")
    return seconds


def parse_duration_or_off(raw: Any) -> float:
    """Like :func:`parse_duration`, but ``0`` or ``off`` turns the rule off (returned as 0)."""
    if not isinstance(raw, bool) and (raw == 0 or str(raw).strip().lower() in ("0", "off", "none")):
        return 0.0
    return parse_duration(raw)


def format_duration(seconds: float) -> str:
    """The inverse of :func:`parse_duration` for display: the largest unit that divides evenly."""
    for unit in ("w", "d", "h", "m", "s"):
        size = _DURATION_UNITS[unit]
        if seconds >= size and (seconds / size).is_integer():
            return f"{int(seconds / size)}{unit}"
    return f"{seconds * 1000:g}ms" if seconds < 1 else f"{seconds:g}s"


def parse_text(raw: Any) -> str:
    text = str(raw).strip()
    if not text:
        raise ValueError("expected a non-empty text")
    return text


def parse_url(raw: Any) -> str | None:
    text = str(raw).strip()
    if not text:
        return None
    if not text.startswith(("http://", "https://")) or len(text) <= len("https://"):
        raise ValueError("expected an http:// or https:// URL")
    return text.rstrip("/")


def parse_path(raw: Any) -> Path:
    text = str(raw).strip()
    if not text:
        raise ValueError("expected a path")
    return Path(text).expanduser()


def parse_readable_file(raw: Any) -> Path | None:
    """A file that must exist and be readable now, so a typo is reported at start-up, not mid-run."""
    text = str(raw).strip()
    if not text:
        return None
    path = Path(text).expanduser()
    try:
        with path.open("rb") as handle:
            handle.read(1)
    except OSError as error:
        raise ValueError(f"cannot be read ({error.strerror or error.__class__.__name__})") from None
    return path


def parse_choice(*choices: str) -> Any:
    """A parser accepting one of ``choices`` (case-insensitive)."""

    def parse(raw: Any) -> str:
        text = str(raw).strip().lower()
        if text not in choices:
            raise ValueError("expected one of " + ", ".join(choices))
        return text

    return parse


parse_log_level = parse_choice(*_LOG_LEVELS)


def parse_int_range(low: int, high: int) -> Any:
    """A parser accepting a whole number from ``low`` to ``high``."""

    def parse(raw: Any) -> int:
        reason = f"expected a whole number from {low} to {high}"
        if isinstance(raw, bool):
            raise ValueError(reason)
        try:
            value = int(str(raw).strip())
        except ValueError:
            raise ValueError(reason) from None
        if not low <= value <= high:
            raise ValueError(reason)
        return value

    return parse


_MODULE_GLOB = re.compile(r"^[A-Za-z0-9_*?\[\]!-]+(?:\.[A-Za-z0-9_*?\[\]!-]+)*$")


def _items(raw: Any) -> list[str]:
    if isinstance(raw, (list, tuple)):
        return [str(item).strip() for item in raw if str(item).strip()]
    return [item for item in re.split(r"[,\s]+", str(raw).strip()) if item]


def parse_module_globs(raw: Any) -> tuple[str, ...]:
    """Dotted module-name globs (``app``, ``app.*.views``), comma- or space-separated, or a TOML list."""
    items = _items(raw)
    for item in items:
        if not _MODULE_GLOB.match(item):
            raise ValueError(f"{item!r} is not a dotted module name or glob such as app.users or app.*")
    return tuple(items)


def parse_name_patterns(raw: Any) -> tuple[str, ...]:
    """Regular expressions (searched, case-insensitive), comma-separated or a TOML list."""
    items = _items(raw)
    for item in items:
        try:
            re.compile(item)
        except re.error as error:
            raise ValueError(f"{item!r} is not a regular expression ({error})") from None
    return tuple(items)
