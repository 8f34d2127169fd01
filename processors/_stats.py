"""Counters of what the pipeline did with every span, shared by its stages.

Every span the pipeline sees ends in exactly one of: exported, dropped for a named reason,
or still in flight (held by the tail sampler, queued, or in the on-disk spool). The counters are
plain integers bumped under the GIL by the stage that owns them (``+=`` on an attribute of this
object is not atomic across threads, so each counter has one writer thread, or is bumped under
that stage's lock); readers (``execscope status``, the self-metrics) take a snapshot.
"""

from __future__ import annotations

import threading
from collections import Counter
from dataclasses import dataclass, field
from enum import Enum


class DropReason(str, Enum):
    """Why a span was not exported. Every drop is counted under exactly one reason."""

    #: The tail sampler decided its trace was not kept (keep rate, or the governor's lower rate).
    SAMPLING = "sampling"
    #: The governor's emergency level keeps errors only: the span ended without an error status.
    GOVERNOR = "governor"
    #: The tail sampler's memory budget was full and its trace was decided early, not kept.
    BUDGET = "budget"
    #: The export queue was full.
    QUEUE_FULL = "queue_full"
    #: The exporter failed and the span could not be spooled (no spool, or the spool's size limit).
    EXPORT_FAILURE = "export_failure"
    #: The spool was full: its oldest spans were discarded to make room for newer ones.
    SPOOL_FULL = "spool_full"
    #: The process exited with spans still queued after the flush deadline and no spool to keep them.
    SHUTDOWN = "shutdown"


@dataclass
class PipelineStats:
    """What the pipeline did so far in this process (since start, or since fork in a child)."""

    #: Spans started by the SDK (autotrace calls are counted when they are recorded).
    started: int = 0
    #: Spans that reached the pipeline at their end.
    ended: int = 0
    #: Spans handed to an exporter that reported success.
    exported: int = 0
    #: Spans handed to the on-disk spool (each is exported later, or dropped as SPOOL_FULL).
    spooled: int = 0
    #: Spans read back from the spool and exported.
    unspooled: int = 0
    #: Errors inside execscope's own pipeline code (never raised into the program).
    internal_errors: int = 0
    #: Drops by reason.
    dropped: Counter[str] = field(default_factory=Counter)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False, compare=False)

    def drop(self, reason: DropReason, count: int = 1) -> None:
        if count:
            with self._lock:
                self.dropped[reason.value] += count

    def add(self, name: str, count: int = 1) -> None:
        """Bump a counter from any thread."""
        with self._lock:
            setattr(self, name, getattr(self, name) + count)

    def snapshot(self) -> dict[str, object]:
        with self._lock:
            return {
                "started": self.started,
                "ended": self.ended,
                "exported": self.exported,
                "spooled": self.spooled,
                "unspooled": self.unspooled,
                "internal_errors": self.internal_errors,
                "dropped": {reason.value: self.dropped.get(reason.value, 0) for reason in DropReason},
            }

    def reset(self) -> None:
        """Start counting afresh (a forked child counts its own spans)."""
        with self._lock:
            self.started = self.ended = self.exported = self.spooled = self.unspooled = 0
            self.internal_errors = 0
            self.dropped.clear()
