"""A circuit breaker in front of an exporter: stop calling it while it fails, probe it back.

After a failure the exporter is left alone for a back-off that doubles up to ``max_s``; the
first call allowed after that is the probe. A success closes the breaker. Opening and closing
are logged once each, not once per failed batch.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

_logger = logging.getLogger(__name__)


class CircuitBreaker:
    def __init__(
        self,
        name: str,
        *,
        base_s: float = 1.0,
        max_s: float = 30.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.name = name
        self._base_s = base_s
        self._max_s = max_s
        self._clock = clock
        self._backoff_s = base_s
        self._retry_at = 0.0
        self.open = False
        #: How many times the breaker opened (shown by ``execscope status``).
        self.trips = 0

    def allows(self) -> bool:
        """Whether a call may go to the exporter now (always when closed; the probe when due)."""
        return not self.open or self._clock() >= self._retry_at

    def seconds_until_probe(self) -> float:
        return max(0.0, self._retry_at - self._clock()) if self.open else 0.0

    def failed(self) -> None:
        if not self.open:
            self.open = True
            self.trips += 1
            _logger.warning(
                "execscope: exporting to %s failed; spans are kept on disk and it is probed again "
                "in the background",
                self.name,
            )
        else:
            self._backoff_s = min(self._backoff_s * 2, self._max_s)
        self._retry_at = self._clock() + self._backoff_s

    def succeeded(self) -> None:
        if self.open:
            self.open = False
            _logger.warning(
                "execscope: %s is reachable again; delivering the spans kept meanwhile", self.name
            )
        self._backoff_s = self._base_s
