"""Accumulating role evidence into recognitions.

Several rules may prove the same role for the same code (a decorator *and* a base class);
the book merges them so each (role, unit) pair becomes one ``Recognition`` listing all its
evidence, with the confidence of the strongest piece.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from ._model import Evidence, Recognition, Role, UnitKind, qualified
from ._sites import ProjectFacts, Unit


@dataclass
class _Entry:
    role: Role
    module: str
    qualname: str
    kind: UnitKind
    path: str
    line: int
    confidence: float = 0.0
    evidence: set[Evidence] = field(default_factory=set)


class RoleBook:
    def __init__(self, facts: ProjectFacts) -> None:
        self.facts = facts
        self._entries: dict[tuple[Role, str], _Entry] = {}

    def add(self, role: Role, unit: Unit, evidence: Evidence, confidence: float) -> None:
        self.add_target(
            role, unit.module, unit.qualname, unit.kind, unit.path, unit.line, evidence, confidence
        )

    def add_target(
        self,
        role: Role,
        module: str,
        qualname: str,
        kind: UnitKind,
        path: str,
        line: int,
        evidence: Evidence,
        confidence: float,
    ) -> None:
        key = (role, qualified(module, qualname))
        entry = self._entries.get(key)
        if entry is None:
            entry = self._entries[key] = _Entry(role, module, qualname, kind, path, line)
        entry.confidence = max(entry.confidence, confidence)
        entry.evidence.add(evidence)

    def add_ref(self, role: Role, ref: str, evidence: Evidence, confidence: float, site_path: str) -> bool:
        """Attribute ``role`` to the project definition ``ref`` (``mod:qual``) seen from ``site_path``."""
        facts = self.facts.by_name.get(ref)
        if facts is None or facts.unit.kind == "module":
            return False
        unit = facts.unit
        if site_path != unit.path:
            evidence = Evidence(evidence.line, evidence.kind, f"{evidence.detail} (in {site_path})")
        self.add(role, unit, evidence, confidence)
        return True

    def has(self, role: Role, name: str) -> bool:
        return (role, name) in self._entries

    def named(self) -> set[str]:
        return {name for _, name in self._entries}

    def recognitions(self) -> tuple[Recognition, ...]:
        out = [
            Recognition(
                e.role,
                e.module,
                e.qualname,
                e.kind,
                e.path,
                e.line,
                round(e.confidence, 2),
                tuple(sorted(e.evidence)),
            )
            for e in self._entries.values()
        ]
        return tuple(sorted(out, key=lambda r: (r.module, r.qualname, r.role)))
