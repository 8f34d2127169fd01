"""State snapshots and diffs: what a call changed in an object (or a reducer in its state).

A snapshot is a flat ``{field: rendering}`` dict taken with the bounded renderer, so it is
cheap and immutable: mutating a list in place after the snapshot does not change it, and the
mutation shows up as a changed rendering. The diff of two snapshots is serialised by
``StateDiff.to_json`` in the versioned format documented in ``STATE_DIFF.md``.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field, replace
from typing import Final

from . import _render
from ._limits import _MIN_STATE_DIFF, DEFAULT_LIMITS, DEFAULT_MAX_STATE_DIFF, CaptureLimits
from ._redact import Redactor

#: Version of the JSON document written by ``StateDiff.to_json`` (its ``"v"`` member).
STATE_DIFF_VERSION: Final = 1
#: The field a value that has no fields (an int, a list...) is recorded under.
VALUE_FIELD: Final = "<value>"
#: The field that counts the fields a snapshot left out (beyond ``max_state_fields``).
MORE_FIELDS: Final = "…"
# Values are shortened to these many characters, in turn, until the document fits.
_VALUE_CAPS: Final = (256, 64, 16)
_ELLIPSIS: Final = "…"


def _snapshot_field_limits(limits: CaptureLimits) -> CaptureLimits:
    # A field rendering longer than the whole diff document could never be shown.
    if limits.budget <= limits.max_state_diff:
        return limits
    return replace(limits, budget=limits.max_state_diff)


def _fields(value: object, limits: CaptureLimits, redactor: Redactor | None) -> dict[str, str]:
    field_limits = _snapshot_field_limits(limits)
    found = _render.state_items(value, limits.max_state_fields)
    if found is None:
        return {VALUE_FIELD: _render.render(value, field_limits, None, redactor)}
    items, count = found
    result: dict[str, str] = {}
    for key, item in items:
        name = _render.render_key(key, limits)
        result[name] = _render.render_field(key, item, field_limits, None, redactor)
    if count > len(items):
        result[MORE_FIELDS] = f"+{count - len(items)} more fields"
    return result


def snapshot(
    obj: object, limits: CaptureLimits = DEFAULT_LIMITS, redactor: Redactor | None = None
) -> dict[str, str]:
    """``{field name: rendering}`` of an object's ``__dict__`` and ``__slots__`` fields.

    Shallow: each field's value is rendered with the bounded renderer (``limits``), and at
    most ``limits.max_state_fields`` fields are kept (then a ``"…"`` entry counts the rest).
    A dict is snapshotted by key; a value with no fields (an int, a list) under ``"<value>"``.
    Fields with sensitive names are ``[redacted]``. Never raises and never runs user code.
    """
    try:
        return _fields(obj, limits, redactor)
    except Exception:
        if _render._RAISE_INTERNAL_ERRORS:
            raise
        return {VALUE_FIELD: _render._placeholder(obj)}


def _shorten(value: str, cap: int) -> str:
    return value if len(value) <= cap else value[:cap] + _ELLIPSIS


def _dumps(document: object) -> str:
    return json.dumps(document, ensure_ascii=False, separators=(",", ":"))


def _size(text: str) -> int:
    return len(text.encode("utf-8"))


@dataclass(frozen=True)
class StateDiff:
    """The difference of two snapshots: fields added, removed, and changed (before, after)."""

    added: dict[str, str] = field(default_factory=dict)
    removed: dict[str, str] = field(default_factory=dict)
    changed: dict[str, tuple[str, str]] = field(default_factory=dict)

    def __bool__(self) -> bool:
        return bool(self.added or self.removed or self.changed)

    def _document(self, cap: int | None, keep: set[tuple[str, str]] | None = None) -> dict[str, object]:
        def cut(value: str) -> str:
            return value if cap is None else _shorten(value, cap)

        def kept(section: str, key: str) -> bool:
            return keep is None or (section, key) in keep

        document: dict[str, object] = {"v": STATE_DIFF_VERSION}
        changed = {
            key: [cut(self.changed[key][0]), cut(self.changed[key][1])]
            for key in sorted(self.changed)
            if kept("changed", key)
        }
        added = {key: cut(self.added[key]) for key in sorted(self.added) if kept("added", key)}
        removed = {key: cut(self.removed[key]) for key in sorted(self.removed) if kept("removed", key)}
        for name, section in (("changed", changed), ("added", added), ("removed", removed)):
            if section:
                document[name] = section
        if keep is not None:
            document["truncated"] = len(self.changed) + len(self.added) + len(self.removed) - len(keep)
        return document

    def to_json(self, max_size: int = DEFAULT_MAX_STATE_DIFF) -> str:
        """The compact JSON document of ``STATE_DIFF.md``, at most ``max_size`` UTF-8 bytes.

        Too large a document has its values shortened (``…``), then, if still too large,
        entries dropped (changed first kept, then added, then removed, each by key order) with
        ``"truncated"`` counting the dropped entries.
        """
        if max_size < _MIN_STATE_DIFF:
            raise ValueError(f"max_size must be at least {_MIN_STATE_DIFF} bytes, got {max_size}")
        text = _dumps(self._document(None))
        if _size(text) <= max_size:
            return text
        for cap in _VALUE_CAPS:
            text = _dumps(self._document(cap))
            if _size(text) <= max_size:
                return text
        cap = _VALUE_CAPS[-1]
        entries: list[tuple[str, str, int]] = []
        for key in sorted(self.changed):
            before, after = self.changed[key]
            entries.append(
                ("changed", key, _size(_dumps([key, _shorten(before, cap), _shorten(after, cap)])))
            )
        for name, section in (("added", self.added), ("removed", self.removed)):
            entries.extend(
                (name, key, _size(_dumps([key, _shorten(section[key], cap)]))) for key in sorted(section)
            )
        # Room for the envelope: {"v":1,"changed":{},"added":{},"removed":{},"truncated":N}.
        room = max_size - _size(_dumps(self._document(cap, keep=set()))) - 40
        kept: list[tuple[str, str]] = []
        for section_name, key, size in entries:
            if size > room:
                break
            room -= size
            kept.append((section_name, key))
        text = _dumps(self._document(cap, set(kept)))
        while _size(text) > max_size and kept:  # the estimate was short: drop from the end
            kept.pop()
            text = _dumps(self._document(cap, set(kept)))
        return text


def diff(before: dict[str, str], after: dict[str, str]) -> StateDiff:
    """What changed from snapshot ``before`` to snapshot ``after``."""
    added = {key: value for key, value in after.items() if key not in before}
    removed = {key: value for key, value in before.items() if key not in after}
    changed = {
        key: (value, after[key]) for key, value in before.items() if key in after and after[key] != value
    }
    return StateDiff(added=added, removed=removed, changed=changed)


def diff_values(
    old_state: object,
    new_state: object,
    limits: CaptureLimits = DEFAULT_LIMITS,
    redactor: Redactor | None = None,
) -> StateDiff:
    """The diff of two states of an actor/reducer (``(state, message) -> new_state``).

    Dicts are compared by key, objects by field, other values as a whole (``"<value>"``).
    """
    return diff(snapshot(old_state, limits, redactor), snapshot(new_state, limits, redactor))
