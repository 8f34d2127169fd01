"""Reading and writing plans as TOML.

Reading uses ``tomllib`` (``tomli`` on 3.10). Writing uses the small emitter below because
the standard library has no TOML writer, and the plan only needs a tiny, fixed subset of
TOML (top-level scalars, one ``[estimate]`` table, an array of ``[[targets]]`` tables).
Owning the emitter also makes the output byte-for-byte deterministic, which a general
writer library does not promise across versions.
"""

from __future__ import annotations

import math
import os
import sys
from collections.abc import Mapping
from dataclasses import fields
from pathlib import Path
from typing import Final

from ._model import LEVELS, Level, OverheadEstimate, Plan, PlanError, Target

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - exercised only on Python 3.10
    import tomli as tomllib

_TARGET_FIELDS: Final = tuple(f.name for f in fields(Target))
_ESTIMATE_FIELDS: Final = tuple(f.name for f in fields(OverheadEstimate))
_TOP_FIELDS: Final = ("version", "generated_by", "estimate", "targets")

# --- emitting ------------------------------------------------------------------------------

_ESCAPES: Final = {'"': '\\"', "\\": "\\\\", "\b": "\\b", "\t": "\\t", "\n": "\\n", "\f": "\\f", "\r": "\\r"}


def _string(value: str) -> str:
    """A TOML basic string; control characters get \\uXXXX escapes as the spec requires."""
    out = []
    for char in value:
        if char in _ESCAPES:
            out.append(_ESCAPES[char])
        elif ord(char) < 0x20 or ord(char) == 0x7F:
            out.append(f"\\u{ord(char):04X}")
        else:
            out.append(char)
    return '"' + "".join(out) + '"'


def _float(value: float) -> str:
    # repr() is the shortest round-tripping form; TOML needs a dot or exponent to keep it a float.
    if math.isinf(value):
        return "inf" if value > 0 else "-inf"
    if math.isnan(value):
        return "nan"
    text = repr(value)
    return text if any(c in text for c in ".eE") else text + ".0"


def _value(value: object) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        return _float(value)
    if isinstance(value, str):
        return _string(value)
    raise TypeError(f"cannot emit {type(value).__name__} as a plan value")  # pragma: no cover


def dump_plan(plan: Plan) -> str:
    """Serialise ``plan`` to TOML text; equal plans always give identical text."""
    lines = [
        "# execscope instrumentation plan",
        f"version = {_value(plan.version)}",
        f"generated_by = {_value(plan.generated_by)}",
    ]
    if plan.estimate is not None:
        lines += ["", "[estimate]"]
        lines += [f"{name} = {_value(getattr(plan.estimate, name))}" for name in _ESTIMATE_FIELDS]
    for target in plan.targets:  # already sorted by Plan
        lines += ["", "[[targets]]"]
        lines += [f"{name} = {_value(getattr(target, name))}" for name in _TARGET_FIELDS]
    return "\n".join(lines) + "\n"


# --- loading -------------------------------------------------------------------------------


def _unknown_keys(where: str, data: Mapping[str, object], allowed: tuple[str, ...]) -> None:
    extra = sorted(set(data) - set(allowed))
    if extra:
        raise PlanError(f"{where}: unknown field {extra[0]!r} (allowed: {', '.join(allowed)})")


def _target(index: int, data: object) -> Target:
    where = f"targets[{index}]"
    if not isinstance(data, dict):
        raise PlanError(f"{where} must be a table, got {data!r}")
    _unknown_keys(where, data, _TARGET_FIELDS)
    if "pattern" not in data:
        raise PlanError(f"{where}: missing required field 'pattern'")
    level = data.get("level", "timing")
    if level not in LEVELS:
        raise PlanError(f"{where}: level must be one of {list(LEVELS)}, got {level!r}")
    level_checked: Level = level
    try:
        return Target(
            pattern=data["pattern"],
            level=level_checked,
            sample_rate=data.get("sample_rate", 1.0),
            min_duration_ms=data.get("min_duration_ms", 0.0),
            stateful=data.get("stateful", False),
            reason=data.get("reason", ""),
            priority=data.get("priority", 0),
        )
    except PlanError as exc:
        raise PlanError(f"{where}: {exc}") from exc


def _estimate(data: object) -> OverheadEstimate:
    if not isinstance(data, dict):
        raise PlanError(f"estimate must be a table, got {data!r}")
    _unknown_keys("estimate", data, _ESTIMATE_FIELDS)
    missing = [name for name in _ESTIMATE_FIELDS if name not in data]
    if missing:
        raise PlanError(f"estimate: missing required field {missing[0]!r}")
    return OverheadEstimate(**data)


def loads_plan(text: str) -> Plan:
    """Parse and validate plan TOML text."""
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise PlanError(f"plan is not valid TOML: {exc}") from exc
    _unknown_keys("plan", data, _TOP_FIELDS)
    if "version" not in data:
        raise PlanError("plan: missing required field 'version'")
    raw_targets = data.get("targets", [])
    if not isinstance(raw_targets, list):
        raise PlanError(f"targets must be an array of tables, got {raw_targets!r}")
    estimate = _estimate(data["estimate"]) if "estimate" in data else None
    return Plan(
        version=data["version"],
        targets=tuple(_target(i, item) for i, item in enumerate(raw_targets)),
        estimate=estimate,
        generated_by=data.get("generated_by", ""),
    )


def load_plan(path: str | os.PathLike[str]) -> Plan:
    """Read and validate the plan file at ``path``; errors name the file as well as the field."""
    try:
        text = Path(path).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise PlanError(f"cannot read plan file {os.fspath(path)!r}: {exc}") from exc
    try:
        return loads_plan(text)
    except PlanError as exc:
        raise PlanError(f"{os.fspath(path)}: {exc}") from exc
