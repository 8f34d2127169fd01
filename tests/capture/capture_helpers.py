"""Shared pieces of the capture tests: internal errors raised, and objects that notice being touched.

Import ``raise_internal_errors`` into a test module to activate it there (it is autouse): a
renderer bug then fails the test instead of silently becoming a placeholder, which is what
happens inside users' programs.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from execscope.capture import _render


@pytest.fixture(autouse=True)
def raise_internal_errors(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.setattr(_render, "_RAISE_INTERNAL_ERRORS", True)
    yield


#: Every user-code hook a Tripwire runs appends its name here.
TOUCHED: list[str] = []


class Tripwire:
    """An object whose every hook (dunder, property, attribute fallback) records that it ran."""

    def __init__(self) -> None:
        self.value = 1

    def __repr__(self) -> str:
        TOUCHED.append("__repr__")
        return "Tripwire!"

    def __str__(self) -> str:
        TOUCHED.append("__str__")
        return "Tripwire!"

    def __eq__(self, other: object) -> bool:
        TOUCHED.append("__eq__")
        return False

    def __hash__(self) -> int:
        TOUCHED.append("__hash__")
        return 1

    def __len__(self) -> int:
        TOUCHED.append("__len__")
        return 1

    def __iter__(self) -> Iterator[int]:
        TOUCHED.append("__iter__")
        return iter([1])

    def __bool__(self) -> bool:
        TOUCHED.append("__bool__")
        return True

    def __getattr__(self, name: str) -> Any:
        TOUCHED.append(f"__getattr__({name})")
        raise AttributeError(name)

    def __getattribute__(self, name: str) -> Any:
        TOUCHED.append(f"__getattribute__({name})")
        return object.__getattribute__(self, name)

    @property
    def computed(self) -> int:
        TOUCHED.append("computed")
        return 2


@pytest.fixture(name="touched")
def touched_fixture() -> Iterator[list[str]]:
    TOUCHED.clear()
    yield TOUCHED
    TOUCHED.clear()
