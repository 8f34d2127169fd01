"""How each kind of value is rendered: builtins natively, subclasses structurally, objects by field."""

from __future__ import annotations

import array
import collections
import datetime
import decimal
import enum
import itertools
import pathlib
import re
import types
import uuid
from typing import NamedTuple

import pytest
from capture_helpers import raise_internal_errors  # noqa: F401

from execscope.capture import CaptureLimits, NoopRedactor, render

PLAIN = NoopRedactor()


def r(value: object, **limits: int) -> str:
    return render(value, CaptureLimits(**limits), redactor=PLAIN)


# --------------------------------------------------------------------------- scalars


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (None, "None"),
        (True, "True"),
        (False, "False"),
        (0, "0"),
        (-42, "-42"),
        (10**20, "100000000000000000000"),
        (1.5, "1.5"),
        (float("nan"), "nan"),
        (float("-inf"), "-inf"),
        (1 + 2j, "(1+2j)"),
        (..., "Ellipsis"),
        (NotImplemented, "NotImplemented"),
        ("abc", "'abc'"),
        ("it's", '"it\'s"'),
        ("", "''"),
        ("é\n", "'é\\n'"),
    ],
)
def test_scalars_render_like_their_repr(value: object, expected: str) -> None:
    assert r(value) == expected


def test_a_long_string_is_cut_and_says_how_much_is_missing() -> None:
    assert r("x" * 250) == "'" + "x" * 200 + "'…(+50 chars)"
    assert r("abcdef", max_string=3) == "'abc'…(+3 chars)"


def test_a_long_int_is_cut_and_a_huge_one_is_not_converted() -> None:
    assert r(10**300, max_string=10) == "1000000000…(+291 digits)"
    assert r(1 << 100_000) == "<int of 100001 bits>"


def test_bytes_are_shown_repr_style_up_to_max_bytes() -> None:
    assert r(b"ab\x00") == "b'ab\\x00'"
    assert r(b"x" * 100) == "b'" + "x" * 64 + "'…(+36 bytes)"
    assert r(b"abcdef", max_bytes=2) == "b'ab'…(+4 bytes)"


def test_bytearray_and_memoryview_show_their_bytes() -> None:
    assert r(bytearray(b"abc")) == "bytearray(b'abc')"
    assert r(bytearray(b"abcdef"), max_bytes=2) == "bytearray(b'ab'…(+4 bytes))"
    assert r(memoryview(b"abc")) == "memoryview(b'abc')"
    assert r(memoryview(b"abcdef"), max_bytes=4) == "memoryview(b'abcd'…(+2 bytes))"


def test_memoryview_of_other_formats_and_released_views() -> None:
    ints = memoryview(array.array("i", [1]))
    assert r(ints) == f"memoryview({bytes(ints)!r})"
    strided = memoryview(b"abcdef")[::2]
    assert r(strided) == "memoryview(b'ace')"
    released = memoryview(b"abc")
    released.release()
    assert r(released) == "<released memoryview>"


# --------------------------------------------------------------------------- containers


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ([], "[]"),
        ([1, "a", None], "[1, 'a', None]"),
        ((), "()"),
        ((1,), "(1,)"),
        ((1, 2), "(1, 2)"),
        (set(), "set()"),
        ({3}, "{3}"),
        (frozenset(), "frozenset()"),
        (frozenset({"a"}), "frozenset({'a'})"),
        ({}, "{}"),
        ({"a": 1, 2: [3]}, "{'a': 1, 2: [3]}"),
        ({(1, 2): b"x"}, "{(1, 2): b'x'}"),
        (range(3), "range(0, 3)"),
        (range(0, 10, 2), "range(0, 10, 2)"),
        (slice(1, None, 2), "slice(1, None, 2)"),
        (collections.OrderedDict(a=1), "OrderedDict({'a': 1})"),
        (collections.defaultdict(list, a=[1]), "defaultdict({'a': [1]})"),
        (collections.deque([1, 2]), "deque([1, 2])"),
    ],
)
def test_containers(value: object, expected: str) -> None:
    assert r(value) == expected


def test_containers_show_max_items_then_count_the_rest() -> None:
    assert r(list(range(12))) == "[0, 1, 2, 3, 4, 5, 6, 7, 8, 9, …+2 more]"
    assert r(tuple(range(5)), max_items=2) == "(0, 1, …+3 more)"
    assert r({i: i for i in range(5)}, max_items=2) == "{0: 0, 1: 1, …+3 more}"
    assert r(set(range(5)), max_items=0) == "{…+5 more}"
    assert r(collections.deque(range(5)), max_items=1) == "deque([0, …+4 more])"


def test_nesting_deeper_than_max_depth_is_elided() -> None:
    nested = [1, [2, [3, [4, [5]]]]]
    assert r(nested) == "[1, [2, [3, […]]]]"
    assert r(nested, max_depth=1) == "[1, […]]"
    assert r(nested, max_depth=0) == "[…]"
    assert r({"a": {"b": {"c": {"d": 1}}}}) == "{'a': {'b': {'c': {…}}}}"
    assert r([[[[]]]], max_depth=1) == "[[…]]"  # an empty container is cheap to show exactly


# --------------------------------------------------------------------------- other builtins


class Colour(enum.Enum):
    RED = 1


class Level(enum.IntEnum):
    HIGH = 3


class Perm(enum.Flag):
    R = 1
    W = 2


def test_enum_members_by_name() -> None:
    assert r(Colour.RED) == "Colour.RED"
    assert r(Level.HIGH) == "Level.HIGH"
    assert r(Perm.R) == "Perm.R"
    assert r(Colour) == f"<class '{__name__}.Colour'>"


def test_dates_and_times_in_iso_format() -> None:
    assert r(datetime.datetime(2024, 5, 1, 12, 30)) == "datetime(2024-05-01T12:30:00)"
    utc = datetime.datetime(2024, 5, 1, 12, 30, tzinfo=datetime.timezone.utc)
    assert r(utc) == "datetime(2024-05-01T12:30:00+00:00)"
    assert r(datetime.date(2024, 5, 1)) == "date(2024-05-01)"
    assert r(datetime.time(8, 0, 1, 5)) == "time(08:00:01.000005)"
    assert r(datetime.timedelta(days=1, seconds=5)) == "timedelta(days=1, seconds=5)"


class RecordingZone(datetime.tzinfo):
    calls = 0

    def utcoffset(self, dt: datetime.datetime | None) -> datetime.timedelta:
        RecordingZone.calls += 1
        return datetime.timedelta(hours=1)

    def dst(self, dt: datetime.datetime | None) -> datetime.timedelta:
        RecordingZone.calls += 1
        return datetime.timedelta(0)

    def tzname(self, dt: datetime.datetime | None) -> str:
        RecordingZone.calls += 1
        return "REC"


def test_a_python_tzinfo_is_shown_but_never_asked_for_its_offset() -> None:
    value = datetime.datetime(2024, 5, 1, 12, 30, tzinfo=RecordingZone())
    assert r(value) == "datetime(2024-05-01T12:30:00, tzinfo=RecordingZone())"
    assert RecordingZone.calls == 0


def test_decimal_uuid_path_and_pattern() -> None:
    assert r(decimal.Decimal("1.50")) == "Decimal('1.50')"
    assert r(uuid.UUID(int=1)) == "UUID('00000000-0000-0000-0000-000000000001')"
    assert r(pathlib.PurePosixPath("/etc/hosts")) == "PurePosixPath('/etc/hosts')"
    assert r(pathlib.Path("/tmp")) == f"{type(pathlib.Path('/tmp')).__name__}('/tmp')"
    assert r(re.compile(r"a+")) == "re.compile('a+')"


def module_function() -> None:
    pass


class Service:
    def handle(self) -> None:
        pass


def test_code_objects_by_qualified_name() -> None:
    assert r(module_function) == f"<function {__name__}.module_function>"
    assert r(Service.handle) == f"<function {__name__}.Service.handle>"
    assert r(Service().handle) == "<bound method Service.handle>"
    assert r(len) == "<built-in function len>"
    assert r(Service) == f"<class '{__name__}.Service'>"
    assert r(int) == "<class 'int'>"
    assert r(re) == "<module 're'>"
    qualname = "test_code_objects_by_qualified_name.<locals>.<lambda>"
    assert r(lambda: 1) == f"<function {__name__}.{qualname}>"


def test_generators_and_coroutines_by_name() -> None:
    def numbers() -> types.GeneratorType[int, None, None]:
        yield 1

    async def job() -> None:
        pass

    coroutine = job()
    assert r(numbers()) == "<generator test_generators_and_coroutines_by_name.<locals>.numbers>"
    assert r(coroutine) == "<coroutine test_generators_and_coroutines_by_name.<locals>.job>"
    coroutine.close()


def test_other_builtin_objects_become_placeholders() -> None:
    assert re.fullmatch(r"<builtins\.object at 0x[0-9a-f]+>", r(object()))
    assert re.fullmatch(r"<itertools\.count at 0x[0-9a-f]+>", r(itertools.count()))


def test_exceptions_show_their_arguments() -> None:
    assert r(ValueError("boom", 3)) == "ValueError('boom', 3)"
    assert r(KeyError()) == "KeyError()"
    error = RuntimeError("x")
    error.code = 7  # type: ignore[attr-defined]
    assert r(error) == "RuntimeError('x', code=7)"


# --------------------------------------------------------------------------- subclasses of builtins


class Loud(dict[str, int]):
    """Overrides everything a renderer could call; none of it may run."""

    def items(self):  # type: ignore[no-untyped-def,override]
        raise AssertionError("items() called")

    def __iter__(self):  # type: ignore[no-untyped-def]
        raise AssertionError("__iter__ called")

    def __len__(self) -> int:
        raise AssertionError("__len__ called")

    def __getitem__(self, key: str) -> int:
        raise AssertionError("__getitem__ called")

    def __repr__(self) -> str:
        raise AssertionError("__repr__ called")


class LoudList(list[int]):
    def __iter__(self):  # type: ignore[no-untyped-def]
        raise AssertionError("__iter__ called")

    def __getitem__(self, index):  # type: ignore[no-untyped-def]
        raise AssertionError("__getitem__ called")

    def __len__(self) -> int:
        raise AssertionError("__len__ called")


class LoudStr(str):
    __slots__ = ()

    def __str__(self) -> str:
        raise AssertionError("__str__ called")

    def __getitem__(self, index):  # type: ignore[no-untyped-def]
        raise AssertionError("__getitem__ called")

    def __len__(self) -> int:
        raise AssertionError("__len__ called")


class Money(int):
    def __repr__(self) -> str:
        raise AssertionError("__repr__ called")


class Point(NamedTuple):
    x: int
    y: int


def test_subclasses_of_builtins_are_read_through_the_builtin_and_named() -> None:
    assert r(Loud(a=1)) == "Loud({'a': 1})"
    assert r(LoudList([1, 2])) == "LoudList([1, 2])"
    assert r(LoudStr("hi")) == "LoudStr('hi')"
    assert r(Money(5)) == "Money(5)"
    assert r(Point(1, 2)) == "Point(x=1, y=2)"
    assert r(collections.Counter("aab")) == "Counter({'a': 2, 'b': 1})"
    assert r(frozenset.__new__(type("Frozen", (frozenset,), {}), [1])) == "Frozen({1})"


def test_subclasses_respect_the_limits() -> None:
    assert r(LoudList(range(5)), max_items=2) == "LoudList([0, 1, …+3 more])"
    assert r(LoudStr("abcdef"), max_string=2) == "LoudStr('ab'…(+4 chars))"
    assert r([[LoudList([1])]], max_depth=2) == "[[LoudList([…])]]"


class MyDate(datetime.date):
    def isoformat(self) -> str:
        raise AssertionError("isoformat called")


def test_date_subclasses_are_read_through_the_c_getters() -> None:
    assert r(MyDate(2024, 1, 2)) == "MyDate(date(2024-01-02))"


# --------------------------------------------------------------------------- other objects


class Plain:
    def __init__(self) -> None:
        self.name = "n"
        self.items = [1, 2]


class Slotted:
    __slots__ = ("__hidden", "x", "y")

    def __init__(self) -> None:
        self.x = 1
        self.__hidden = 2


class Both(Slotted):
    def __init__(self) -> None:
        super().__init__()
        self.extra = "e"


class Empty:
    pass


def test_objects_show_their_instance_dict() -> None:
    assert r(Plain()) == "Plain(name='n', items=[1, 2])"
    assert r(Empty()) == "Empty()"


def test_objects_show_their_slots_and_skip_unset_ones() -> None:
    assert r(Slotted()) == "Slotted(__hidden=2, x=1)"


def test_objects_with_dict_and_slots_show_both() -> None:
    assert r(Both()) == "Both(extra='e', __hidden=2, x=1)"


def test_objects_nest_and_are_bounded_like_containers() -> None:
    outer = Plain()
    outer.items = [Plain()]  # type: ignore[list-item]
    assert r(outer) == "Plain(name='n', items=[Plain(name='n', items=[…])])"
    assert r(outer, max_items=1) == "Plain(name='n', …+1 more)"
    assert r([[outer]], max_depth=2) == "[[Plain(…)]]"


def test_an_object_with_nothing_readable_is_a_placeholder() -> None:
    class NoFields:
        __slots__ = ()

    assert re.fullmatch(rf"<{__name__}\..*NoFields at 0x[0-9a-f]+>", r(NoFields()))


def test_dict_keys_that_are_not_builtins_are_placeholders() -> None:
    key = Empty()
    assert r({key: 1}) == f"{{<{__name__}.Empty at 0x{id(key):x}>: 1}}"


def test_a_str_subclass_containing_an_ellipsis_is_cut_once() -> None:
    assert r(LoudStr("a…b" * 100), max_string=4) == "LoudStr('a…ba'…(+296 chars))"
