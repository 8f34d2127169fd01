"""Span attributes that cost less to set when the values are plain."""

from __future__ import annotations

import threading
from collections.abc import Mapping
from typing import Final

from opentelemetry.attributes import BoundedAttributes
from opentelemetry.util import types

#: Values the SDK's cleaning returns unchanged (strings only when within the length limit).
_KEPT_AS_IS: Final = frozenset({str, bool, int, float, bytes, type(None)})


class FastAttributes(BoundedAttributes):
    """The SDK's ``BoundedAttributes`` with a shortcut for the common case.

    Setting an attribute through the SDK validates the value recursively, takes a lock and logs
    nothing for plain values: about a third of what making a span costs. Here a plain key with a
    plain value, while the limits are not reached, is stored directly; anything else (a
    sequence, a mapping, an invalid key or value, a string over the length limit, a full map,
    an immutable map) goes through the SDK's own code, so warnings, truncation, drop counts and
    errors are the SDK's.

    Plain stores do not take the map's lock: each is one dictionary operation, atomic under the
    interpreter lock; when several threads fill the last free places at once the map may end one
    or two entries over ``maxlen``, which the SDK's exporters accept.
    """

    def __init__(  # deliberately not BoundedAttributes.__init__; every field that sets is set here
        self,
        maxlen: int | None = None,
        attributes: types.Attributes = None,
        immutable: bool = True,
        max_value_len: int | None = None,
    ) -> None:
        if (maxlen is not None and maxlen < 0) or (max_value_len is not None and max_value_len < 0):
            super().__init__(maxlen, None, immutable, max_value_len)  # the SDK's ValueError
        self._dict: dict[str, types.AnyValue] = {}
        self.maxlen = maxlen
        self.dropped = 0
        self.max_value_len = max_value_len
        self._lock = threading.Lock()
        self._immutable = False
        if attributes:
            self._set_items(attributes)
        self._immutable = immutable

    def __setitem__(self, key: str, value: types.AnyValue) -> None:
        if self._is_plain(key, value) and not self._immutable:
            stored = self._dict
            if key in stored:
                # The SDK moves a replaced key to the end; so does this.
                stored.pop(key, None)
                stored[key] = value
                return
            if self.maxlen is None or len(stored) < self.maxlen:
                stored[key] = value
                return
        super().__setitem__(key, value)

    def _set_items(self, attributes: Mapping[str, types.AnyValue]) -> None:
        stored = self._dict
        if not self._immutable and (self.maxlen is None or len(stored) + len(attributes) <= self.maxlen):
            limit = self.max_value_len
            for key, value in attributes.items():  # _is_plain, inlined: this runs per span
                kind = type(value)
                if (
                    type(key) is not str
                    or not key
                    or kind not in _KEPT_AS_IS
                    or (limit is not None and kind is str and len(value) > limit)  # type: ignore[arg-type]
                ):
                    break
            else:
                if not stored:
                    stored.update(attributes)
                    return
                for key, value in attributes.items():
                    stored.pop(key, None)  # the SDK moves a replaced key to the end
                    stored[key] = value
                return
        super()._set_items(attributes)

    def _is_plain(self, key: object, value: object) -> bool:
        if type(key) is not str or not key or type(value) not in _KEPT_AS_IS:
            return False
        limit = self.max_value_len
        return limit is None or type(value) is not str or len(value) <= limit
