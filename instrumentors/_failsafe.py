"""Fail open for users, fail loudly in execscope's own tests.

An instrumentor's own error must never reach the host program: wrappers catch it and call
:func:`internal_error`, which logs it once per place at debug level and carries on. execscope's
tests set :data:`RAISE_INTERNAL_ERRORS` so the same error fails the test instead of hiding.
"""

from __future__ import annotations

import logging
import sys
import threading

_logger = logging.getLogger(__name__)

#: Set by execscope's tests: internal errors are re-raised instead of swallowed.
RAISE_INTERNAL_ERRORS = False

_reported: set[str] = set()
_reported_lock = threading.Lock()


def internal_error(where: str) -> None:
    """Handle the exception being handled now, raised by execscope's code at ``where``.

    Call only from an ``except`` block. Re-raises under execscope's tests; otherwise logs the
    first error of each ``where`` (with its traceback) and returns, so the program goes on.
    """
    error = sys.exc_info()[1]
    if RAISE_INTERNAL_ERRORS and error is not None:
        raise error
    with _reported_lock:
        first = where not in _reported
        _reported.add(where)
    if first:
        _logger.warning("execscope: internal error in %s; the program is unaffected", where, exc_info=True)
