"""The renderer never runs user code, never consumes iterators, and fails open."""

from __future__ import annotations

import io
import itertools
import re
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import wrapt
from capture_helpers import Tripwire, raise_internal_errors, touched_fixture  # noqa: F401

from execscope.capture import NoopRedactor, _render, diff, render, render_arguments, snapshot

PLAIN = NoopRedactor()


def r(value: object) -> str:
    return render(value, redactor=PLAIN)


# --------------------------------------------------------------------------- hostile objects


def test_no_hook_of_a_user_object_is_called(touched: list[str]) -> None:
    wire = Tripwire()
    keyed = {wire: 1}  # building it hashes the key: that is the test's doing, not the renderer's
    touched.clear()
    assert r(wire) == "Tripwire(value=1)"
    assert r([wire, {"k": wire}, (wire,)]) == (
        "[Tripwire(value=1), {'k': Tripwire(value=1)}, (Tripwire(value=1),)]"
    )
    assert r(keyed).startswith("{<")  # a user-defined key: placeholder, never hashed/compared
    render_arguments([("self", wire)])
    snapshot(wire)
    assert touched == []


class RaisingRepr:
    def __repr__(self) -> str:
        raise RuntimeError("repr exploded")


class RecursiveRepr:
    def __repr__(self) -> str:
        return repr(self)


class BlockingRepr:
    called = False

    def __repr__(self) -> str:
        BlockingRepr.called = True
        time.sleep(10)
        return "late"


def test_a_raising_repr_is_never_called() -> None:
    assert r(RaisingRepr()) == "RaisingRepr()"


def test_a_recursive_repr_is_never_called() -> None:
    assert r(RecursiveRepr()) == "RecursiveRepr()"


def test_a_blocking_repr_is_never_called_and_render_returns_at_once() -> None:
    start = time.perf_counter()
    assert r(BlockingRepr()) == "BlockingRepr()"
    assert time.perf_counter() - start < 0.5
    assert BlockingRepr.called is False


class RecordingGetattr:
    calls: list[str] = []

    def __init__(self) -> None:
        self.real = 1

    def __getattr__(self, name: str) -> Any:
        RecordingGetattr.calls.append(name)
        raise RuntimeError(f"__getattr__({name}) must not be called")


def test_getattr_hooks_are_never_called() -> None:
    assert r(RecordingGetattr()) == "RecordingGetattr(real=1)"
    assert RecordingGetattr.calls == []


class SideEffects:
    reads = 0

    def __init__(self) -> None:
        self.stored = 1

    @property
    def computed(self) -> int:
        SideEffects.reads += 1
        return 2


def test_properties_are_never_evaluated() -> None:
    assert r(SideEffects()) == "SideEffects(stored=1)"
    assert SideEffects.reads == 0


class Impostor:
    """Claims to be a dict through ``__class__``; its real type is what gets rendered."""

    def __init__(self) -> None:
        self.real = True

    @property  # type: ignore[misc]
    def __class__(self) -> type:  # type: ignore[override]
        raise AssertionError("__class__ read")


def test_class_is_taken_from_type_not_from_dunder_class() -> None:
    assert r(Impostor()) == "Impostor(real=True)"


class DictProperty:
    """A ``__dict__`` redefined as a property is code: it is not called."""

    __slots__ = ("x",)

    def __init__(self) -> None:
        self.x = 1

    @property  # type: ignore[misc]
    def __dict__(self) -> dict[str, Any]:  # type: ignore[override]
        raise AssertionError("__dict__ property called")


def test_a_dict_property_is_not_called() -> None:
    assert r(DictProperty()) == "DictProperty(x=1)"


class HostileMeta(type):
    def __eq__(cls, other: object) -> bool:
        raise AssertionError("metaclass __eq__ called")

    def __hash__(cls) -> int:
        raise AssertionError("metaclass __hash__ called")

    def __instancecheck__(cls, instance: object) -> bool:
        raise AssertionError("__instancecheck__ called")

    def __subclasscheck__(cls, subclass: type) -> bool:
        raise AssertionError("__subclasscheck__ called")


class WithHostileMeta(metaclass=HostileMeta):
    def __init__(self) -> None:
        self.a = 1


def test_a_hostile_metaclass_is_never_asked_anything() -> None:
    assert r(WithHostileMeta()) == "WithHostileMeta(a=1)"
    assert r(WithHostileMeta) == f"<class '{__name__}.WithHostileMeta'>"
    assert r({"k": [WithHostileMeta()]}) == "{'k': [WithHostileMeta(a=1)]}"


# --------------------------------------------------------------------------- iterators are not consumed


def test_generators_are_not_advanced() -> None:
    def numbers() -> Iterator[int]:
        yield 1
        yield 2

    generator = numbers()
    r(generator)
    r([generator])
    assert next(generator) == 1


@pytest.mark.parametrize(
    "make",
    [
        lambda: iter([1, 2]),
        lambda: map(int, ["1", "2"]),
        lambda: itertools.count(1),
        lambda: (x for x in [1, 2]),
        lambda: iter({"a": 1}.items()),
        lambda: zip([1], [2], strict=False),
    ],
)
def test_iterators_are_not_advanced(make: Any) -> None:
    iterator = make()
    first = next(make())
    r(iterator)
    r({"it": iterator})
    assert next(iterator) == first


def test_files_are_not_read(tmp_path: Path) -> None:
    path = tmp_path / "data.txt"
    path.write_text("first\nsecond\n")
    with path.open() as handle:
        r(handle)
        assert handle.tell() == 0
        assert handle.readline() == "first\n"
    buffer = io.StringIO("first\n")
    r(buffer)
    assert buffer.readline() == "first\n"


# --------------------------------------------------------------------------- wrapt proxies


class Wrapped:
    def __init__(self) -> None:
        self.n = 1


def test_a_wrapt_proxy_shows_what_it_wraps() -> None:
    proxy = wrapt.ObjectProxy(Wrapped())
    assert proxy.__class__ is Wrapped  # the proxy lies about its class...
    assert r(proxy) == "ObjectProxy(Wrapped(n=1))"  # ...which the renderer does not believe
    assert r([wrapt.ObjectProxy([1, 2])]) == "[ObjectProxy([1, 2])]"


def test_a_proxy_subclass_redefining_wrapped_is_read_through_wrapt() -> None:
    class Sneaky(wrapt.ObjectProxy):  # type: ignore[misc]
        @property
        def __wrapped__(self) -> Any:
            raise AssertionError("__wrapped__ property called")

    proxy = Sneaky.__new__(Sneaky)
    wrapt.ObjectProxy.__init__(proxy, Wrapped())
    assert r(proxy) == "Sneaky(Wrapped(n=1))"


def test_a_lazy_proxy_is_not_initialised() -> None:
    created: list[int] = []

    def factory() -> Wrapped:
        created.append(1)
        return Wrapped()

    proxy = wrapt.LazyObjectProxy(factory)
    assert re.fullmatch(r"<wrapt\.proxies\.LazyObjectProxy at 0x[0-9a-f]+>", r(proxy))
    assert created == []


# --------------------------------------------------------------------------- failing open


def test_an_internal_error_becomes_a_placeholder_in_production(monkeypatch: pytest.MonkeyPatch) -> None:
    def broken(value: object, ctx: object, depth: int) -> str:
        raise RuntimeError("bug")

    monkeypatch.setitem(_render._DISPATCH, id(list), broken)
    monkeypatch.setattr(_render, "_RAISE_INTERNAL_ERRORS", False)
    value = [1]
    assert r(value) == f"<builtins.list at 0x{id(value):x}>"
    assert render_arguments([("a", value), ("b", 2)], redactor=PLAIN) == {
        "a": f"<builtins.list at 0x{id(value):x}>",
        "b": "2",
    }
    assert snapshot(value) == {"<value>": f"<builtins.list at 0x{id(value):x}>"}


def test_an_internal_error_is_raised_in_our_tests(monkeypatch: pytest.MonkeyPatch) -> None:
    def broken(value: object, ctx: object, depth: int) -> str:
        raise RuntimeError("bug")

    monkeypatch.setitem(_render._DISPATCH, id(list), broken)
    with pytest.raises(RuntimeError, match="bug"):
        r([1])


def test_a_dict_mutated_during_rendering_is_not_our_problem() -> None:
    # Snapshots copy the fields they read: a later mutation cannot reach into them.
    state = {"a": [1]}
    before = snapshot(state)
    state["a"].append(2)
    assert diff(before, snapshot(state)).changed == {"a": ("[1]", "[1, 2]")}
