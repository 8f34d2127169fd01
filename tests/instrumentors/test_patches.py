"""The patches an instrumentor applies are applied all or nothing and removed exactly."""

from __future__ import annotations

from typing import Any

import pytest

from execscope.instrumentors._patches import unwrap_all, wrap_all


class Library:
    def first(self) -> str:
        return "first"

    def second(self) -> str:
        return "second"


def shouting(wrapped: Any, instance: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> str:
    return str(wrapped(*args, **kwargs)).upper()


def test_patches_are_applied_and_removed() -> None:
    patches = wrap_all([(Library, "first", shouting), (Library, "second", shouting)])
    assert (Library().first(), Library().second()) == ("FIRST", "SECOND")
    unwrap_all(patches)
    assert (Library().first(), Library().second()) == ("first", "second")


def test_one_patch_that_cannot_be_applied_leaves_none_applied() -> None:
    with pytest.raises(AttributeError):
        wrap_all([(Library, "first", shouting), (Library, "missing", shouting)])
    assert Library().first() == "first"
