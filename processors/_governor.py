"""Graceful degradation: measure the pipeline's load and shed work in a fixed order.

The governor reads, once a second on its own thread, what the pipeline already tracks: export
queue fill, spool fill, whether the exporter is failing, how long the slowest export call took,
spans per second, the CPU execscope adds, and the process's memory. Each is divided by its
budget; the largest ratio is the pressure, and the pressure picks a level:

==============  ==========  ===================================================================
level           pressure    what is shed (cumulative)
==============  ==========  ===================================================================
``normal``      < 1         nothing
``degraded``    ≥ 1         keep rate capped at ``DEGRADED_KEEP_RATE``; no state diffs
``critical``    ≥ 1.5       keep rate capped at ``CRITICAL_KEEP_RATE``; no arguments or returns
``emergency``   ≥ 2         errors only (only spans with an error status are exported, each
                            dropped or kept at its end; rewritten functions record only the
                            calls an exception escapes)
==============  ==========  ===================================================================

Levels rise when ``rise_after`` consecutive readings (two seconds by default) call for it, so a
burst such as a program's start-up does not shed anything, and fall one step at a time, only
after the pressure has stayed below the lower level's entry point (with a 20% margin) for
``calm_s``: a load that hovers at a threshold does not flap. A level whose shedding is not
enough, the pressure still at or over 1 (a budget exceeded) for ``escalate_after`` consecutive
readings, gives way to the next one up: the pressure is read under the current shedding, so
without this a load that shedding halves would stay over its budget at the level it reached.
Every change is logged once and counted.

The hot paths read :data:`SHEDDING` (a plain object with four attributes), so obeying the level
costs one attribute load.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from enum import IntEnum
from typing import Final

_logger = logging.getLogger(__name__)

DEGRADED_KEEP_RATE: Final = 0.25
CRITICAL_KEEP_RATE: Final = 0.05
#: Pressure at which each level starts.
_ENTRY: Final = {1: 1.0, 2: 1.5, 3: 2.0}
_HYSTERESIS: Final = 0.8


class Level(IntEnum):
    NORMAL = 0
    DEGRADED = 1
    CRITICAL = 2
    EMERGENCY = 3


class Shedding:
    """What the hot paths may do at the current level (replaced field by field, read lock-free).

    Parts that cannot read a field on their hot path (the auto-instrumentor's sites, which
    switch to recording errors only at ``emergency``) are told of each change through
    :meth:`on_change`.
    """

    __slots__ = ("_listeners", "capture_args", "capture_state", "keep_rate_cap", "level")

    def __init__(self) -> None:
        self.level = Level.NORMAL
        self.capture_state = True
        self.capture_args = True
        self.keep_rate_cap = 1.0
        self._listeners: list[Callable[[Level], None]] = []

    def on_change(self, listener: Callable[[Level], None]) -> None:
        """Call ``listener(level)`` whenever the level changes (on the thread that changes it)."""
        self._listeners.append(listener)

    def apply(self, level: Level) -> None:
        changed = level != self.level
        self.capture_state = level < Level.DEGRADED
        self.capture_args = level < Level.CRITICAL
        self.keep_rate_cap = (1.0, DEGRADED_KEEP_RATE, CRITICAL_KEEP_RATE, 0.0)[level]
        self.level = level
        if changed:
            for listener in list(self._listeners):
                try:
                    listener(level)
                except Exception:  # the governor goes on; the listener keeps its old rule
                    _logger.warning(
                        "execscope: a shedding listener failed at level %s", level.name, exc_info=True
                    )


#: The process's shedding state, read by the auto-instrumentor and the tail sampler.
SHEDDING: Final = Shedding()


@dataclass(frozen=True)
class Budgets:
    """What execscope may use before it sheds work (each 0 or less: not limited)."""

    #: CPU seconds per wall second execscope may add (0.1 = a tenth of one core).
    cpu_share: float = 0.10
    #: Resident memory of the whole process, bytes.
    memory_bytes: int = 0
    #: Spans per second reaching the pipeline.
    spans_per_s: float = 0.0
    #: Fill of an export queue, or of the spool, at which shedding starts.
    queue_fill: float = 0.5
    #: Seconds one export call may take (the slowest since the last reading).
    export_latency_s: float = 0.0


@dataclass(frozen=True)
class Reading:
    """One measurement of the pipeline's load."""

    queue_fill: float = 0.0
    spool_fill: float = 0.0
    export_failing: bool = False
    #: The slowest export call since the previous reading, seconds (0: none finished).
    export_latency_s: float = 0.0
    spans_per_s: float = 0.0
    cpu_share: float = 0.0
    memory_bytes: int = 0

    def pressure(self, budgets: Budgets) -> float:
        ratios = [
            max(self.queue_fill, self.spool_fill) / budgets.queue_fill if budgets.queue_fill > 0 else 0.0
        ]
        if budgets.cpu_share > 0:
            ratios.append(self.cpu_share / budgets.cpu_share)
        if budgets.memory_bytes > 0:
            ratios.append(self.memory_bytes / budgets.memory_bytes)
        if budgets.spans_per_s > 0:
            ratios.append(self.spans_per_s / budgets.spans_per_s)
        if budgets.export_latency_s > 0:
            # A slow destination drains the queues slowly: shed before they fill.
            ratios.append(self.export_latency_s / budgets.export_latency_s)
        if self.export_failing:
            # Spans go to disk while the exporter is down: shed enough that the spool lasts.
            ratios.append(_ENTRY[Level.DEGRADED])
        return max(ratios)


def level_for(pressure: float) -> Level:
    for level in (Level.EMERGENCY, Level.CRITICAL, Level.DEGRADED):
        if pressure >= _ENTRY[level]:
            return level
    return Level.NORMAL


class Governor:
    """Turns readings into a level with hysteresis and applies it to :data:`SHEDDING`."""

    def __init__(
        self,
        budgets: Budgets,
        *,
        calm_s: float = 10.0,
        rise_after: int = 2,
        escalate_after: int = 3,
        shedding: Shedding = SHEDDING,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.budgets = budgets
        self._calm_s = calm_s
        self.shedding = shedding
        self._clock = clock
        self._calm_since: float | None = None
        self._rise_after = rise_after
        self._rising: list[Level] = []  # the levels called for by the latest consecutive readings
        self._escalate_after = escalate_after
        self._over_budget = 0  # consecutive readings over a budget under the current shedding
        #: Level changes so far, by the level entered.
        self.changes: dict[str, int] = {level.name.lower(): 0 for level in Level}
        self.last_pressure = 0.0
        shedding.apply(Level.NORMAL)

    @property
    def level(self) -> Level:
        return self.shedding.level

    def observe(self, reading: Reading) -> Level:
        pressure = self.last_pressure = reading.pressure(self.budgets)
        current = self.shedding.level
        wanted = level_for(pressure)
        now = self._clock()
        if wanted > current:
            self._rising.append(wanted)
            self._calm_since = None
            self._over_budget = 0
            if len(self._rising) >= self._rise_after:
                self._change(min(self._rising[-self._rise_after :]), pressure)
                self._rising.clear()
            return self.shedding.level
        self._rising.clear()
        if pressure >= 1.0 and current < Level.EMERGENCY:
            # Over a budget although this level sheds: not enough.
            self._calm_since = None
            self._over_budget += 1
            if self._over_budget >= self._escalate_after:
                self._over_budget = 0
                self._change(Level(current + 1), pressure)
            return self.shedding.level
        self._over_budget = 0
        if wanted == current:
            self._calm_since = None
        elif wanted < current and pressure < _ENTRY[current] * _HYSTERESIS:
            if self._calm_since is None:
                self._calm_since = now
            elif now - self._calm_since >= self._calm_s:
                self._change(Level(current - 1), pressure)
                self._calm_since = now
        else:
            self._calm_since = None
        return self.shedding.level

    def _change(self, level: Level, pressure: float) -> None:
        previous = self.shedding.level
        self.shedding.apply(level)
        self.changes[level.name.lower()] += 1
        _logger.warning(
            "execscope: load level %s -> %s (pressure %.2f of budget)",
            previous.name.lower(),
            level.name.lower(),
            pressure,
        )


def resident_memory_bytes() -> int:
    """The process's resident set size now (Linux ``/proc``; 0 where unavailable)."""
    try:
        with open("/proc/self/statm", "rb") as statm:
            return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError, IndexError):
        return 0
