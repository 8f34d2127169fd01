"""Deciding which plan target governs a given function.

Matching is glob-based (``fnmatch``) but on dot boundaries: a pattern matches a name when
it matches the whole name or any leading dotted prefix of it, so ``app.users`` covers
``app.users.models`` but never ``app.users_legacy``. When several targets match, the most
specific one wins, so a broad ``app`` default can be refined by ``app.users:UserService``.
"""

from __future__ import annotations

from fnmatch import fnmatchcase

from ._model import Plan, Target

_GLOB_CHARS = frozenset("*?[")


def _prefixes(name: str) -> list[str]:
    parts = name.split(".")
    return [".".join(parts[: i + 1]) for i in range(len(parts))]


def _covers(pattern: str, name: str) -> bool:
    """True if ``pattern`` matches ``name`` itself or one of its dot-boundary prefixes."""
    return any(fnmatchcase(prefix, pattern) for prefix in _prefixes(name))


def specificity(pattern: str) -> tuple[int, int, int, int, int]:
    """Sort key: larger is more specific.

    In order: has a qualname part; number of literal (glob-free) dotted segments; total
    segments; literal characters; fewer glob characters. This ranks ``m:C.f`` over ``m:C.*``
    over ``m:C`` over ``m``, and any literal segment over a wildcard one.
    """
    module, _, qualname = pattern.partition(":")
    segments = module.split(".") + (qualname.split(".") if qualname else [])
    literal_segments = sum(1 for seg in segments if not (_GLOB_CHARS & set(seg)))
    literal_chars = sum(1 for char in pattern if char not in _GLOB_CHARS and char not in ".:]!")
    globs = sum(1 for char in pattern if char in _GLOB_CHARS)
    return (1 if qualname else 0, literal_segments, len(segments), literal_chars, -globs)


def target_matches(target: Target, module: str, qualname: str) -> bool:
    """Does ``target`` cover ``qualname`` in ``module`` (``qualname`` may be empty for the module)?"""
    module_glob, has_qualname, qualname_glob = target.pattern.partition(":")
    if not _covers(module_glob, module):
        return False
    if not has_qualname:
        return True
    return bool(qualname) and _covers(qualname_glob, qualname)


def covers_module(target: Target, module: str) -> bool:
    """Does the module part of ``target``'s pattern cover ``module`` (whatever its qualname part)?"""
    return _covers(target.pattern.partition(":")[0], module)


def name_covered(patterns: tuple[str, ...] | list[str], name: str) -> bool:
    """Does one of the dotted ``patterns`` (module globs) cover ``name`` or a dotted prefix of it?"""
    return any(_covers(pattern, name) for pattern in patterns)


def match_target(plan: Plan, module: str, qualname: str) -> Target | None:
    """The most specific target of ``plan`` covering ``module:qualname``, or None.

    Ties in specificity go to the higher priority, then to the lexically smaller pattern,
    so the answer never depends on target order.
    """
    candidates = [t for t in plan.targets if target_matches(t, module, qualname)]
    if not candidates:
        return None
    return min(candidates, key=lambda t: (tuple(-v for v in specificity(t.pattern)), -t.priority, t.pattern))
