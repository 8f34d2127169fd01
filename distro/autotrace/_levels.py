"""Recording levels and the static facts the rewriter knows about each function."""

from __future__ import annotations

from typing import Final

from execscope.plan import LEVELS, Level

#: Levels as small ints, so the hot path compares integers: each level includes the previous.
OFF: Final = 0
TIMING: Final = 1
ARGS: Final = 2
FULL: Final = 3

LEVEL_NUMBERS: Final[dict[str, int]] = {name: number for number, name in enumerate(LEVELS)}


def level_number(level: Level | str) -> int:
    return LEVEL_NUMBERS[level]


class SiteFlags:
    """Bits of a site descriptor's ``flags`` (plain ints: they are compiled into cached code)."""

    METHOD: Final = 1  # defined in a class body and bound to an instance or class
    INSTANCE_METHOD: Final = 2  # ... and bound to an instance (not a classmethod)
    STATEFUL_CLASS: Final = 4  # its class assigns attributes on ``self`` somewhere
    REDUCER: Final = 8  # ``(state, message) -> new_state``: first parameter named ``state``
    GENERATOR: Final = 16
    ASYNC: Final = 32
