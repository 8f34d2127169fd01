"""The ``wrapt`` patches an instrumentor applies, kept so that uninstrumenting removes exactly
them (and only them: another library's wrapper around the same method stays)."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from typing import Any

import wrapt

__all__ = ["Patch", "unwrap_all", "wrap_all"]

#: ``(owner, attribute name, wrapt's handle)`` of one applied patch.
Patch = tuple[Any, str, Any]


def wrap_all(targets: Iterable[tuple[Any, str, Callable[..., Any]]]) -> list[Patch]:
    """Wrap each ``owner.name`` with its wrapper, all or nothing: if one cannot be wrapped, those
    wrapped already are unwrapped again before the error is raised (no half-instrumented
    library)."""
    patches: list[Patch] = []
    try:
        for owner, name, wrapper in targets:
            patches.append((owner, name, wrapt.wrap_function_wrapper(owner, name, wrapper)))
    except Exception:
        unwrap_all(patches)
        raise
    return patches


def unwrap_all(patches: Sequence[Patch]) -> None:
    """Remove the patches, the last applied first."""
    for owner, name, handle in reversed(patches):
        wrapt.unwrap_object(owner, name, handle, missing_ok=True)
