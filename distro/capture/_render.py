"""The bounded renderer: turns any Python value into a short string without running user code.

Rules that keep it safe inside other people's programs:

* Dispatch is on the exact type (``type(x)``, looked up by ``id`` so not even a metaclass's
  ``__hash__``/``__eq__`` runs). ``obj.__class__`` and ``isinstance`` are never used: both can
  be lied to, and ``isinstance`` may call ``__class__`` through ``__getattribute__``.
* Builtin values are rendered natively. Subclasses of builtins are read through the builtin's
  own C methods (``dict.items(d)``, ``list.__getitem__(l, slice)``...), never through methods
  the subclass may override, and shown as ``ClassName(<builtin rendering>)``.
* Other objects are shown as ``ClassName(field=value, ...)`` from the instance ``__dict__`` and
  ``__slots__``, both read through the C-level descriptors found on the type (a ``__dict__``
  redefined as a property is skipped, never called). No ``__repr__``, ``__getattr__``,
  ``__getattribute__``, ``__len__``, ``__iter__``, ``__eq__``, ``__hash__`` or property of a
  user type is ever called; generators, iterators, files and sockets are never iterated.
* Everything is bounded: depth, items per container, characters per string, bytes per
  bytes-like value, characters per value and per span (``SpanBudget``).
* Any exception turns the value into the ``<module.Class at 0x...>`` placeholder, unless
  ``_RAISE_INTERNAL_ERRORS`` is set (our own tests set it so that bugs fail loudly).
"""

from __future__ import annotations

import collections
import datetime
import decimal
import enum
import pathlib
import re
import sys
import types
import uuid
from collections.abc import Callable, Iterable, Iterator, Mapping
from itertools import islice
from typing import Any, Final

from ._limits import BUDGET_EXHAUSTED, DEFAULT_LIMITS, CaptureLimits, SpanBudget
from ._redact import REDACTED, Redactor, default_redactor

#: Re-raise internal errors instead of failing open (set by execscope's own tests only).
_RAISE_INTERNAL_ERRORS = False

RECURSION: Final = "<recursion>"
ELLIPSIS: Final = "…"
# Extra characters of a long string that value redaction looks at beyond the cut, so that a
# credential straddling the cut is still recognised and masked.
_REDACT_LOOKAHEAD: Final = 64
# Ints above this many bits are not converted to decimal (quadratic, and limited by CPython).
_MAX_INT_BITS: Final = 4000
# Non-contiguous memoryviews are copied whole to be shown; only when they are this small.
_MAX_MEMORYVIEW_COPY: Final = 4096
_LAYOUT_CACHE_SIZE: Final = 1024
# Ints strictly between -_SMALL_INT and _SMALL_INT are repr'd without any other check.
_SMALL_INT: Final = 10**15

# C-level accessors of type objects: they work on any class, whatever its metaclass does.
_type_mro: Callable[[type], tuple[type, ...]] = type.__dict__["__mro__"].__get__
_type_dict: Callable[[type], Mapping[str, Any]] = type.__dict__["__dict__"].__get__
_type_qualname: Callable[[type], object] = type.__dict__["__qualname__"].__get__
_type_module: Callable[[type], object] = type.__dict__["__module__"].__get__
_exception_args: Callable[[BaseException], tuple[object, ...]] = BaseException.__dict__["args"].__get__


class _Ctx:
    """The state of one rendering: limits, characters left, ids of the containers being walked."""

    __slots__ = ("max_bytes", "max_depth", "max_items", "max_string", "path", "redactor", "remaining")

    def __init__(self, limits: CaptureLimits, redactor: Redactor | None, remaining: int) -> None:
        self.max_depth = limits.max_depth
        self.max_items = limits.max_items
        self.max_string = limits.max_string
        self.max_bytes = limits.max_bytes
        self.redactor = redactor
        self.remaining = remaining
        self.path: set[int] = set()


_Renderer = Callable[[Any, _Ctx, int], str]


# --------------------------------------------------------------------------- names


def _type_name(tp: type) -> str:
    name = _type_qualname(tp)
    return name if type(name) is str else "?"


def _type_fullname(tp: type) -> str:
    module = _type_module(tp)
    name = _type_name(tp)
    if type(module) is not str or module == "builtins":
        return name
    return f"{module}.{name}"


def _placeholder(value: object) -> str:
    """``<module.Class at 0x...>``: what a value that cannot be read becomes."""
    try:
        tp = type(value)
        module = _type_module(tp)
        module = module if type(module) is str else "?"
        return f"<{module}.{_type_name(tp)} at 0x{id(value):x}>"
    except Exception:
        if _RAISE_INTERNAL_ERRORS:
            raise
        return "<unrenderable>"


# --------------------------------------------------------------------------- the walk


def _render(value: object, ctx: _Ctx, depth: int) -> str:
    tp = type(value)
    renderer = _DISPATCH.get(id(tp))
    if renderer is not None:
        return renderer(value, ctx, depth)
    return _render_other(value, tp, ctx, depth)


def _render_key(key: object, ctx: _Ctx, depth: int) -> str:
    """Dict keys: builtin keys natively, anything else only by placeholder."""
    renderer = _DISPATCH.get(id(type(key)))
    if renderer is not None:
        return renderer(key, ctx, depth)
    return _placeholder(key)


def _key_is_sensitive(key: object, redactor: Redactor) -> bool:
    tp = type(key)
    if tp is str:
        return redactor.is_sensitive_name(key)  # type: ignore[arg-type]
    if tp is bytes:
        return redactor.is_sensitive_name(key.decode("latin-1"))  # type: ignore[attr-defined]
    if id(tp) in _DISPATCH:  # any other builtin: not a name
        return False
    if _issubtype(tp, str):
        return redactor.is_sensitive_name(str.__str__(key))
    if _issubtype(tp, bytes):
        return redactor.is_sensitive_name(bytes.decode(key, "latin-1"))  # type: ignore[arg-type]
    return False


def _issubtype(tp: type, base: type) -> bool:
    return any(cls is base for cls in _type_mro(tp))


def _items(values: Iterable[Any], count: int, ctx: _Ctx, depth: int) -> list[str]:
    """Rendered elements (at most ``max_items``, within the budget), then ``…+N more``."""
    parts: list[str] = []
    remaining = ctx.remaining
    for item in values:
        if remaining <= 0:
            break
        tp = type(item)
        if (tp is int and -_SMALL_INT < item < _SMALL_INT) or tp is float or tp is bool or item is None:
            text = repr(item)  # the commonest leaves, without a dispatch
        else:
            renderer = _DISPATCH.get(id(tp))
            text = renderer(item, ctx, depth) if renderer is not None else _render_other(item, tp, ctx, depth)
        remaining -= len(text) + 2
        ctx.remaining = remaining
        parts.append(text)
    if len(parts) < count:
        parts.append(f"{ELLIPSIS}+{count - len(parts)} more")
    return parts


def _pairs(
    pairs: Iterable[tuple[object, object]], count: int, ctx: _Ctx, depth: int, as_fields: bool
) -> list[str]:
    """Rendered ``key: value`` (or ``name=value`` for fields), redacting by key/name."""
    parts: list[str] = []
    remaining = ctx.remaining
    redactor = ctx.redactor
    for key, value in pairs:
        if remaining <= 0:
            break
        if as_fields:
            key_text = key if type(key) is str else _render_key(key, ctx, depth)
        else:
            key_text = _render_key(key, ctx, depth)
        if redactor is not None and _key_is_sensitive(key, redactor):
            value_text = REDACTED
        else:
            value_text = _render(value, ctx, depth)
        text = f"{key_text}={value_text}" if as_fields else f"{key_text}: {value_text}"
        remaining -= len(text) + 2
        ctx.remaining = remaining
        parts.append(text)
    if len(parts) < count:
        parts.append(f"{ELLIPSIS}+{count - len(parts)} more")
    return parts


def _enter(value: object, ctx: _Ctx) -> bool:
    """Start walking a container; False if it is already being walked (a cycle)."""
    oid = id(value)
    if oid in ctx.path:
        return False
    ctx.path.add(oid)
    return True


# --------------------------------------------------------------------------- scalars


def _r_repr(value: Any, ctx: _Ctx, depth: int) -> str:
    # Only registered for builtin types whose repr is bounded and cannot run user code.
    return repr(value)


def _r_int(value: int, ctx: _Ctx, depth: int) -> str:
    if -_SMALL_INT < value < _SMALL_INT:
        return repr(value)
    bits = int.bit_length(value)
    if bits > _MAX_INT_BITS:
        return f"<int of {bits} bits>"
    text = int.__repr__(value)
    limit = ctx.max_string
    if len(text) > limit:
        return f"{text[:limit]}{ELLIPSIS}(+{len(text) - limit} digits)"
    return text


def _r_str(value: str, ctx: _Ctx, depth: int) -> str:
    size = len(value)
    limit = ctx.max_string
    redactor = ctx.redactor
    if size <= limit:
        if redactor is not None and size >= redactor.min_text_length:
            return repr(redactor.redact_text(value))
        return repr(value)
    return _long_str(value[: limit + _REDACT_LOOKAHEAD], size, ctx)


def _long_str(head: str, size: int, ctx: _Ctx) -> str:
    """A string of ``size`` characters, of which ``head`` is the start, cut at ``max_string``."""
    limit = ctx.max_string
    if ctx.redactor is not None:
        head = ctx.redactor.redact_text(head)
    return f"{head[:limit]!r}{ELLIPSIS}(+{size - limit} chars)"


def _bytes_text(data: bytes, total: int, ctx: _Ctx) -> str:
    text = repr(data)
    if total > len(data):
        text = f"{text}{ELLIPSIS}(+{total - len(data)} bytes)"
    if ctx.redactor is not None:
        text = ctx.redactor.redact_text(text)
    return text


def _r_bytes(value: bytes, ctx: _Ctx, depth: int) -> str:
    return _bytes_text(value[: ctx.max_bytes], len(value), ctx)


def _r_bytearray(value: bytearray, ctx: _Ctx, depth: int) -> str:
    return f"bytearray({_bytes_text(bytes(value[: ctx.max_bytes]), len(value), ctx)})"


def _r_memoryview(value: memoryview, ctx: _Ctx, depth: int) -> str:
    try:
        total = value.nbytes
    except ValueError:
        return "<released memoryview>"
    try:
        if value.c_contiguous:
            data = value.cast("B")[: ctx.max_bytes].tobytes()
        elif total <= _MAX_MEMORYVIEW_COPY:
            data = value.tobytes()[: ctx.max_bytes]
        else:
            return f"<memoryview of {total} bytes>"
    except (ValueError, TypeError, NotImplementedError):  # a format memoryview cannot handle
        return f"<memoryview of {total} bytes>"
    return f"memoryview({_bytes_text(data, total, ctx)})"


def _r_range(value: range, ctx: _Ctx, depth: int) -> str:
    return repr(value)  # start/stop/step are ints


def _r_slice(value: slice, ctx: _Ctx, depth: int) -> str:
    # The bounds may be any objects: render them ourselves instead of repr() calling theirs.
    parts = (_render(part, ctx, depth + 1) for part in (value.start, value.stop, value.step))
    return f"slice({', '.join(parts)})"


def _r_pattern(value: re.Pattern[Any], ctx: _Ctx, depth: int) -> str:
    return f"re.compile({_render(value.pattern, ctx, depth + 1)})"


# Date and time: read through the C getters, so subclasses are rendered the same way.
_DT_GET = {
    name: (datetime.date if name in ("year", "month", "day") else datetime.datetime).__dict__[name].__get__
    for name in ("year", "month", "day", "hour", "minute", "second", "microsecond", "tzinfo")
}
_TIME_GET = {
    name: datetime.time.__dict__[name].__get__
    for name in ("hour", "minute", "second", "microsecond", "tzinfo")
}


def _tz_suffix(tz: object, ctx: _Ctx, depth: int) -> tuple[datetime.tzinfo | None, str]:
    """A tzinfo usable by isoformat() (None or a builtin ``timezone``), else a rendered suffix.

    A tzinfo of another type (pytz, dateutil, user classes) is Python code: its utcoffset()
    is not called; the naive time is shown followed by ``tzinfo=<rendering>``.
    """
    if tz is None or type(tz) is datetime.timezone:
        return tz, ""
    return None, f", tzinfo={_render(tz, ctx, depth + 1)}"


def _r_datetime(value: datetime.datetime, ctx: _Ctx, depth: int) -> str:
    get = _DT_GET
    tz, suffix = _tz_suffix(get["tzinfo"](value), ctx, depth)
    exact = datetime.datetime(
        get["year"](value),
        get["month"](value),
        get["day"](value),
        get["hour"](value),
        get["minute"](value),
        get["second"](value),
        get["microsecond"](value),
        tz,
    )
    return f"datetime({exact.isoformat()}{suffix})"


def _r_date(value: datetime.date, ctx: _Ctx, depth: int) -> str:
    get = _DT_GET
    return f"date({datetime.date(get['year'](value), get['month'](value), get['day'](value)).isoformat()})"


def _r_time(value: datetime.time, ctx: _Ctx, depth: int) -> str:
    get = _TIME_GET
    tz, suffix = _tz_suffix(get["tzinfo"](value), ctx, depth)
    exact = datetime.time(
        get["hour"](value), get["minute"](value), get["second"](value), get["microsecond"](value), tz
    )
    return f"time({exact.isoformat()}{suffix})"


def _r_timedelta(value: datetime.timedelta, ctx: _Ctx, depth: int) -> str:
    return datetime.timedelta.__repr__(value).removeprefix("datetime.")


def _r_decimal(value: decimal.Decimal, ctx: _Ctx, depth: int) -> str:
    text = str(value)
    limit = ctx.max_string
    if len(text) > limit:
        text = f"{text[:limit]}{ELLIPSIS}(+{len(text) - limit} chars)"
    return f"Decimal('{text}')"


def _r_uuid(value: uuid.UUID, ctx: _Ctx, depth: int) -> str:
    return f"UUID('{value}')"


def _r_path(value: pathlib.PurePath, ctx: _Ctx, depth: int) -> str:
    return f"{type(value).__name__}({_r_str(str(value), ctx, depth)})"


def _r_function(value: types.FunctionType, ctx: _Ctx, depth: int) -> str:
    module = value.__module__
    name = value.__qualname__
    return f"<function {module}.{name}>" if type(module) is str else f"<function {name}>"


def _r_builtin_function(value: types.BuiltinFunctionType, ctx: _Ctx, depth: int) -> str:
    return f"<built-in function {value.__name__}>"


def _r_method(value: types.MethodType, ctx: _Ctx, depth: int) -> str:
    func = value.__func__
    if type(func) is types.FunctionType:
        return f"<bound method {func.__qualname__}>"
    return f"<bound method {_render(func, ctx, depth + 1)}>"


def _r_module(value: types.ModuleType, ctx: _Ctx, depth: int) -> str:
    namespace = value.__dict__
    name = namespace.get("__name__") if type(namespace) is dict else None
    return f"<module {name!r}>" if type(name) is str else "<module>"


def _r_generator(value: Any, ctx: _Ctx, depth: int) -> str:
    # Never iterated: only the name of the code it runs.
    return f"<{type(value).__name__} {value.__qualname__}>"


def _r_class(value: type, ctx: _Ctx, depth: int) -> str:
    return f"<class {_type_fullname(value)!r}>"


# --------------------------------------------------------------------------- containers


def _r_list(value: list[Any], ctx: _Ctx, depth: int) -> str:
    count = len(value)
    if count == 0:
        return "[]"
    if depth >= ctx.max_depth:
        return f"[{ELLIPSIS}]"
    oid = id(value)
    path = ctx.path
    if oid in path:
        return RECURSION
    path.add(oid)
    limit = ctx.max_items
    parts = _items(value if count <= limit else value[:limit], count, ctx, depth + 1)
    path.discard(oid)
    return f"[{', '.join(parts)}]"


def _r_tuple(value: tuple[Any, ...], ctx: _Ctx, depth: int) -> str:
    count = len(value)
    if count == 0:
        return "()"
    if depth >= ctx.max_depth:
        return f"({ELLIPSIS})"
    if not _enter(value, ctx):
        return RECURSION
    limit = ctx.max_items
    parts = _items(value if count <= limit else value[:limit], count, ctx, depth + 1)
    ctx.path.discard(id(value))
    if count == 1 and len(parts) == 1:
        return f"({parts[0]},)"
    return f"({', '.join(parts)})"


def _set_body(value: Any, count: int, ctx: _Ctx, depth: int) -> str | None:
    if depth >= ctx.max_depth:
        return f"{{{ELLIPSIS}}}"
    if not _enter(value, ctx):
        return None
    parts = _items(islice(value, ctx.max_items), count, ctx, depth + 1)
    ctx.path.discard(id(value))
    return f"{{{', '.join(parts)}}}"


def _r_set(value: set[Any], ctx: _Ctx, depth: int) -> str:
    count = len(value)
    if count == 0:
        return "set()"
    body = _set_body(value, count, ctx, depth)
    return RECURSION if body is None else body


def _r_frozenset(value: frozenset[Any], ctx: _Ctx, depth: int) -> str:
    count = len(value)
    if count == 0:
        return "frozenset()"
    body = _set_body(value, count, ctx, depth)
    return RECURSION if body is None else f"frozenset({body})"


def _dict_body(
    items: Iterable[tuple[object, object]], count: int, value: object, ctx: _Ctx, depth: int
) -> str:
    if count == 0:
        return "{}"
    if depth >= ctx.max_depth:
        return f"{{{ELLIPSIS}}}"
    if not _enter(value, ctx):
        return RECURSION
    parts = _pairs(islice(items, ctx.max_items), count, ctx, depth + 1, as_fields=False)
    ctx.path.discard(id(value))
    return f"{{{', '.join(parts)}}}"


def _r_dict(value: dict[Any, Any], ctx: _Ctx, depth: int) -> str:
    return _dict_body(value.items(), len(value), value, ctx, depth)


def _r_ordered_dict(value: collections.OrderedDict[Any, Any], ctx: _Ctx, depth: int) -> str:
    return f"OrderedDict({_dict_body(value.items(), len(value), value, ctx, depth)})"


def _r_defaultdict(value: collections.defaultdict[Any, Any], ctx: _Ctx, depth: int) -> str:
    return f"defaultdict({_dict_body(value.items(), len(value), value, ctx, depth)})"


def _r_deque(value: collections.deque[Any], ctx: _Ctx, depth: int) -> str:
    count = len(value)
    if count == 0:
        return "deque([])"
    if depth >= ctx.max_depth:
        return f"deque([{ELLIPSIS}])"
    if not _enter(value, ctx):
        return RECURSION
    parts = _items(islice(value, ctx.max_items), count, ctx, depth + 1)
    ctx.path.discard(id(value))
    return f"deque([{', '.join(parts)}])"


_DISPATCH: dict[int, _Renderer] = {
    id(type(None)): _r_repr,
    id(bool): _r_repr,
    id(int): _r_int,
    id(float): _r_repr,
    id(complex): _r_repr,
    id(str): _r_str,
    id(bytes): _r_bytes,
    id(bytearray): _r_bytearray,
    id(memoryview): _r_memoryview,
    id(list): _r_list,
    id(tuple): _r_tuple,
    id(set): _r_set,
    id(frozenset): _r_frozenset,
    id(dict): _r_dict,
    id(range): _r_range,
    id(slice): _r_slice,
    id(type(Ellipsis)): _r_repr,
    id(type(NotImplemented)): _r_repr,
    id(datetime.datetime): _r_datetime,
    id(datetime.date): _r_date,
    id(datetime.time): _r_time,
    id(datetime.timedelta): _r_timedelta,
    id(datetime.timezone): _r_repr,
    id(decimal.Decimal): _r_decimal,
    id(uuid.UUID): _r_uuid,
    id(collections.OrderedDict): _r_ordered_dict,
    id(collections.defaultdict): _r_defaultdict,
    id(collections.deque): _r_deque,
    id(re.Pattern): _r_pattern,
    id(types.FunctionType): _r_function,
    id(types.BuiltinFunctionType): _r_builtin_function,
    id(types.MethodType): _r_method,
    id(types.ModuleType): _r_module,
    id(types.GeneratorType): _r_generator,
    id(types.CoroutineType): _r_generator,
    id(types.AsyncGeneratorType): _r_generator,
    id(type): _r_class,
}
for _path_type in (pathlib.PurePosixPath, pathlib.PureWindowsPath, pathlib.PosixPath, pathlib.WindowsPath):
    _DISPATCH[id(_path_type)] = _r_path
# The table is keyed by id(): its types are builtins and module-level classes, alive for good.


# --------------------------------------------------------------------------- subclasses of builtins


def _sub_sequence(base: Any) -> Callable[[Any, _Ctx, int, _Layout], str]:
    length = base.__len__
    getitem = base.__getitem__
    opening, closing = ("[", "]") if base is list else ("(", ")")

    def render(value: Any, ctx: _Ctx, depth: int, layout: _Layout) -> str:
        count = length(value)
        if count == 0:
            return f"{layout.name}({opening}{closing})"
        if depth >= ctx.max_depth:
            return f"{layout.name}({opening}{ELLIPSIS}{closing})"
        shown = getitem(value, slice(0, ctx.max_items))  # an exact list/tuple
        if layout.fields is not None:  # a namedtuple
            parts = _pairs(zip(layout.fields, shown, strict=False), count, ctx, depth + 1, as_fields=True)
            return f"{layout.name}({', '.join(parts)})"
        parts = _items(shown, count, ctx, depth + 1)
        return f"{layout.name}({opening}{', '.join(parts)}{closing})"

    return render


def _sub_set(value: Any, ctx: _Ctx, depth: int, layout: _Layout) -> str:
    count = set.__len__(value) if layout.base is set else frozenset.__len__(value)
    if count == 0:
        return f"{layout.name}()"
    iterator = set.__iter__(value) if layout.base is set else frozenset.__iter__(value)
    if depth >= ctx.max_depth:
        return f"{layout.name}({{{ELLIPSIS}}})"
    parts = _items(islice(iterator, ctx.max_items), count, ctx, depth + 1)
    return f"{layout.name}({{{', '.join(parts)}}})"


def _sub_dict(value: Any, ctx: _Ctx, depth: int, layout: _Layout) -> str:
    count = dict.__len__(value)
    if count == 0:
        return f"{layout.name}({{}})"
    if depth >= ctx.max_depth:
        return f"{layout.name}({{{ELLIPSIS}}})"
    parts = _pairs(islice(dict.items(value), ctx.max_items), count, ctx, depth + 1, as_fields=False)
    return f"{layout.name}({{{', '.join(parts)}}})"


def _sub_deque(value: Any, ctx: _Ctx, depth: int, layout: _Layout) -> str:
    count = collections.deque.__len__(value)
    if depth >= ctx.max_depth and count:
        return f"{layout.name}([{ELLIPSIS}])"
    iterator = collections.deque.__iter__(value)
    parts = _items(islice(iterator, ctx.max_items), count, ctx, depth + 1)
    return f"{layout.name}([{', '.join(parts)}])"


def _sub_str(value: Any, ctx: _Ctx, depth: int, layout: _Layout) -> str:
    size = str.__len__(value)
    head = str.__getitem__(value, slice(0, ctx.max_string + _REDACT_LOOKAHEAD))  # an exact str
    text = _r_str(head, ctx, depth) if size <= ctx.max_string else _long_str(head, size, ctx)
    return f"{layout.name}({text})"


def _sub_bytes(value: Any, ctx: _Ctx, depth: int, layout: _Layout) -> str:
    size = bytes.__len__(value)
    data = bytes.__getitem__(value, slice(0, ctx.max_bytes))
    return f"{layout.name}({_bytes_text(data, size, ctx)})"


def _sub_bytearray(value: Any, ctx: _Ctx, depth: int, layout: _Layout) -> str:
    size = bytearray.__len__(value)
    data = bytes(bytearray.__getitem__(value, slice(0, ctx.max_bytes)))
    return f"{layout.name}({_bytes_text(data, size, ctx)})"


def _sub_number(base: Any) -> Callable[[Any, _Ctx, int, _Layout], str]:
    to_text = base.__repr__

    def render(value: Any, ctx: _Ctx, depth: int, layout: _Layout) -> str:
        if base is int and int.bit_length(value) > _MAX_INT_BITS:
            return f"{layout.name}(<int of {int.bit_length(value)} bits>)"
        return f"{layout.name}({to_text(value)})"

    return render


def _sub_via(renderer: _Renderer) -> Callable[[Any, _Ctx, int, _Layout], str]:
    def render(value: Any, ctx: _Ctx, depth: int, layout: _Layout) -> str:
        return f"{layout.name}({renderer(value, ctx, depth)})"

    return render


# Checked in MRO order, so the most derived builtin base wins (OrderedDict before dict).
_SUBCLASS_RENDERERS: dict[int, Callable[[Any, _Ctx, int, _Layout], str]] = {
    id(list): _sub_sequence(list),
    id(tuple): _sub_sequence(tuple),
    id(set): _sub_set,
    id(frozenset): _sub_set,
    id(dict): _sub_dict,
    id(collections.deque): _sub_deque,
    id(str): _sub_str,
    id(bytes): _sub_bytes,
    id(bytearray): _sub_bytearray,
    id(int): _sub_number(int),
    id(float): _sub_number(float),
    id(complex): _sub_number(complex),
    id(datetime.datetime): _sub_via(_r_datetime),
    id(datetime.date): _sub_via(_r_date),
    id(datetime.time): _sub_via(_r_time),
}
# --------------------------------------------------------------------------- other objects


class _Layout:
    """How instances of one type are read; computed once per type from the type's own dicts."""

    __slots__ = ("base", "dict_get", "fields", "kind", "name", "proxy_get", "slots", "special", "tp")

    def __init__(self, tp: type) -> None:
        self.tp = tp  # keeps the type alive while its id is the cache key
        self.name = _type_name(tp).rpartition("<locals>.")[2]  # "Outer.Inner", not "f.<locals>.C"
        self.kind = "object"
        self.base: type | None = None
        self.special: Callable[[Any, _Ctx, int, _Layout], str] | None = None
        self.fields: tuple[str, ...] | None = None
        self.dict_get: Callable[[object], object] | None = None
        self.slots: list[tuple[str, Any]] = []
        self.proxy_get: Callable[[object], object] | None = None
        mro = _type_mro(tp)
        dicts = [_type_dict(cls) for cls in mro]
        self._find_dict_and_slots(mro, dicts)
        if _issubtype(tp, type):
            self.kind = "class"
        elif _issubtype(tp, enum.Enum):
            self.kind = "enum"
        elif self._find_proxy(mro, dicts):
            self.kind = "proxy"
        elif _issubtype(tp, BaseException):
            self.kind = "exception"
        else:
            for cls in mro:
                special = _SUBCLASS_RENDERERS.get(id(cls))
                if special is not None:
                    self.kind, self.special, self.base = "builtin", special, cls
                    fields = dicts[0].get("_fields")
                    if cls is tuple and type(fields) is tuple and all(type(f) is str for f in fields):
                        self.fields = fields
                    break

    def _find_dict_and_slots(self, mro: tuple[type, ...], dicts: list[Mapping[str, Any]]) -> None:
        for namespace in dicts:
            descriptor = namespace.get("__dict__")
            # Only the C getter is safe; a __dict__ property (e.g. a pure-Python proxy) is code.
            if type(descriptor) is types.GetSetDescriptorType:
                self.dict_get = descriptor.__get__
                break
        seen: set[int] = set()
        for cls, namespace in zip(mro, dicts, strict=False):
            declared: Any = namespace.get("__slots__")
            if type(declared) is str:
                names: Iterable[object] = (declared,)
            elif type(declared) in (tuple, list):
                names = tuple(declared)
            elif type(declared) is dict:
                names = list(declared)
            else:
                continue
            for name in names:
                if type(name) is not str or name in ("__dict__", "__weakref__"):
                    continue
                stored = name
                if name.startswith("__") and not name.endswith("__"):
                    stored = f"_{_type_name(cls).rpartition('.')[2].lstrip('_')}{name}"
                descriptor = namespace.get(stored)
                if type(descriptor) is types.MemberDescriptorType and id(descriptor) not in seen:
                    seen.add(id(descriptor))
                    self.slots.append((name, descriptor))

    def _find_proxy(self, mro: tuple[type, ...], dicts: list[Mapping[str, Any]]) -> bool:
        """A wrapt ObjectProxy: read ``__wrapped__`` through wrapt's C getter, if that is safe."""
        wrapt = sys.modules.get("wrapt")
        if wrapt is None:
            return False
        wrapt_names = wrapt.__dict__
        bases = [wrapt_names.get(name) for name in ("BaseObjectProxy", "ObjectProxy")]
        base = next((cls for cls in mro if any(cls is b for b in bases if b is not None)), None)
        if base is None:
            return False
        # A lazy proxy creates its wrapped object by calling user code on first access.
        if any("__wrapped_factory__" in ns or "__wrapped_get__" in ns for ns in dicts):
            return True
        # wrapt's own C getter (defined at or below the wrapt base) reads the proxy's slot,
        # whatever a subclass redefines.
        start = next(index for index, cls in enumerate(mro) if cls is base)  # no == on classes
        for namespace in dicts[start:]:
            descriptor = namespace.get("__wrapped__")
            if type(descriptor) is types.GetSetDescriptorType:
                self.proxy_get = descriptor.__get__
                break
        return True

    def instance_dict(self, value: object) -> dict[str, Any] | None:
        if self.dict_get is None:
            return None
        namespace = self.dict_get(value)
        return namespace if type(namespace) is dict else None

    def slot_values(self, value: object) -> Iterator[tuple[str, object]]:
        for name, descriptor in self.slots:
            try:
                yield name, descriptor.__get__(value, self.tp)
            except AttributeError:  # an unset slot
                continue


_LAYOUTS: dict[int, _Layout] = {}


def _layout(tp: type) -> _Layout:
    layout = _LAYOUTS.get(id(tp))
    if layout is None or layout.tp is not tp:
        layout = _Layout(tp)
        if len(_LAYOUTS) >= _LAYOUT_CACHE_SIZE:
            _LAYOUTS.clear()
        _LAYOUTS[id(tp)] = layout
    return layout


def _render_fields(value: object, layout: _Layout, ctx: _Ctx, depth: int, prefix: list[str]) -> str | None:
    """``Name(field=value, ...)`` from the instance dict and slots; None if neither exists."""
    namespace = layout.instance_dict(value)
    if namespace is None and not layout.slots and not prefix:
        return None
    if depth >= ctx.max_depth:
        return f"{layout.name}({ELLIPSIS})"
    if not _enter(value, ctx):
        return RECURSION
    limit = ctx.max_items
    fields: list[tuple[object, object]] = []
    count = 0
    if namespace:
        count = len(namespace)
        fields.extend(islice(namespace.items(), limit))
    if layout.slots:  # as many as the class declares: bounded by its definition
        slot_fields = list(layout.slot_values(value))
        count += len(slot_fields)
        fields.extend(slot_fields[: max(0, limit - len(fields))])
    parts = prefix + _pairs(fields, count, ctx, depth + 1, as_fields=True)
    ctx.path.discard(id(value))
    return f"{layout.name}({', '.join(parts)})"


def state_items(value: object, limit: int) -> tuple[list[tuple[object, object]], int] | None:
    """The first ``limit`` (key, value) pairs of a dict, or (field, value) pairs of an object's
    ``__dict__`` and slots, and how many there are; None for other values (scalars, lists...)."""
    tp = type(value)
    if tp is dict or tp is collections.OrderedDict or tp is collections.defaultdict:
        return list(islice(dict.items(value), limit)), dict.__len__(value)  # type: ignore[arg-type]
    if id(tp) in _DISPATCH:
        return None
    layout = _layout(tp)
    if layout.kind == "builtin":
        if layout.base is dict:
            return list(islice(dict.items(value), limit)), dict.__len__(value)  # type: ignore[arg-type]
        return None
    if layout.kind not in ("object", "exception"):
        return None
    namespace = layout.instance_dict(value)
    if namespace is None and not layout.slots:
        return None
    items: list[tuple[object, object]] = list(islice(namespace.items(), limit)) if namespace else []
    count = len(namespace) if namespace else 0
    if layout.slots:
        slot_fields = list(layout.slot_values(value))
        count += len(slot_fields)
        items.extend(slot_fields[: max(0, limit - len(items))])
    return items, count


def _render_other(value: object, tp: type, ctx: _Ctx, depth: int) -> str:
    layout = _layout(tp)
    kind = layout.kind
    if kind == "builtin":
        assert layout.special is not None
        if not _enter(value, ctx):
            return RECURSION
        text = layout.special(value, ctx, depth, layout)
        ctx.path.discard(id(value))
        return text
    if kind == "class":
        return _r_class(value, ctx, depth)  # type: ignore[arg-type]
    if kind == "enum":
        namespace = layout.instance_dict(value)
        if namespace is not None:
            name = namespace.get("_name_")
            if type(name) is str:
                return f"{layout.name}.{name}"
            return f"{layout.name}({_render(namespace.get('_value_'), ctx, depth + 1)})"
        return _placeholder(value)
    if kind == "proxy":
        if layout.proxy_get is None or depth >= ctx.max_depth:
            return _placeholder(value) if layout.proxy_get is None else f"{layout.name}({ELLIPSIS})"
        try:
            wrapped = layout.proxy_get(value)
        except (AttributeError, ValueError):  # not initialised
            return _placeholder(value)
        if not _enter(value, ctx):
            return RECURSION
        text = _render(wrapped, ctx, depth + 1)
        ctx.path.discard(id(value))
        return f"{layout.name}({text})"
    prefix: list[str] = []
    if kind == "exception":
        arguments = _exception_args(value)  # type: ignore[arg-type]
        if depth < ctx.max_depth:
            prefix = _items(arguments[: ctx.max_items], len(arguments), ctx, depth + 1)
    fields = _render_fields(value, layout, ctx, depth, prefix)
    return _placeholder(value) if fields is None else fields


# --------------------------------------------------------------------------- public entry points


def _fit(text: str, limit: int) -> str:
    if len(text) <= limit:
        return text
    return text[: limit - 1] + ELLIPSIS if limit > 0 else ""


def _active(redactor: Redactor | None) -> Redactor | None:
    if redactor is None:
        return default_redactor()
    return redactor if redactor.enabled else None


def _render_top(value: object, ctx: _Ctx, cap: int) -> str:
    ctx.remaining = cap
    try:
        text = _render(value, ctx, 0)
    except Exception:
        if _RAISE_INTERNAL_ERRORS:
            raise
        ctx.path.clear()
        text = _placeholder(value)
    return _fit(text, cap)


def _render_charged(
    value: object, limits: CaptureLimits, budget: SpanBudget | None, redactor: Redactor | None
) -> str:
    cap = limits.budget
    if budget is not None:
        if budget.remaining <= 0:
            return BUDGET_EXHAUSTED
        cap = min(cap, budget.remaining)
    text = _render_top(value, _Ctx(limits, redactor, cap), cap)
    if budget is not None:
        budget.remaining -= len(text)
    return text


def render(
    value: object,
    limits: CaptureLimits = DEFAULT_LIMITS,
    budget: SpanBudget | None = None,
    redactor: Redactor | None = None,
) -> str:
    """A bounded, redacted, side-effect-free rendering of ``value`` (never raises).

    The result has at most ``limits.budget`` characters, and at most what is left of
    ``budget`` (which it is charged to); ``<budget exhausted>`` once that is nothing.
    ``redactor`` defaults to ``default_redactor()``; pass ``NoopRedactor()`` to disable.
    """
    # The commonest values first: a small int, a bool or None is its repr (at most 16
    # characters, within any valid ``limits.budget``), with nothing to redact.
    tp = type(value)
    if (tp is int and -_SMALL_INT < value < _SMALL_INT) or tp is bool or value is None:  # type: ignore[operator]
        text = repr(value)
        if budget is None:
            return text
        if budget.remaining >= len(text):
            budget.remaining -= len(text)
            return text
    return _render_charged(value, limits, budget, _active(redactor))


def render_field(
    name: object,
    value: object,
    limits: CaptureLimits = DEFAULT_LIMITS,
    budget: SpanBudget | None = None,
    redactor: Redactor | None = None,
) -> str:
    """``value`` rendered, or ``[redacted]`` if ``name`` (str or bytes) is a sensitive name."""
    active = _active(redactor)
    if active is not None and _key_is_sensitive(name, active):
        return REDACTED
    return _render_charged(value, limits, budget, active)


def render_key(key: object, limits: CaptureLimits = DEFAULT_LIMITS) -> str:
    """A dict key as a field name: str keys as they are, other builtin keys rendered
    (unredacted, within ``limits``), any other key by placeholder."""
    if type(key) is str:
        return key
    try:
        ctx = _Ctx(limits, None, limits.budget)
        return _fit(_render_key(key, ctx, 0), limits.budget)
    except Exception:
        if _RAISE_INTERNAL_ERRORS:
            raise
        return _placeholder(key)


def render_arguments(
    names_and_values: Iterable[tuple[str, object]] | Mapping[str, object],
    limits: CaptureLimits = DEFAULT_LIMITS,
    budget: SpanBudget | None = None,
    redactor: Redactor | None = None,
) -> dict[str, str]:
    """``{argument name: rendering}`` for one call; arguments with sensitive names are
    ``[redacted]`` without being rendered. All renderings share ``budget`` (if given)."""
    active = _active(redactor)
    pairs: Iterable[tuple[str, object]]
    if type(names_and_values) in (tuple, list):
        pairs = names_and_values  # type: ignore[assignment]
    elif isinstance(names_and_values, Mapping):
        pairs = names_and_values.items()
    else:
        pairs = names_and_values
    ctx = _Ctx(limits, active, limits.budget)
    value_cap = limits.budget
    result: dict[str, str] = {}
    for name, value in pairs:
        if active is not None and active.is_sensitive_name(name):
            result[name] = REDACTED
            continue
        cap = value_cap
        if budget is not None:
            if budget.remaining <= 0:
                result[name] = BUDGET_EXHAUSTED
                continue
            cap = min(cap, budget.remaining)
        ctx.remaining = cap
        try:
            tp = type(value)
            renderer = _DISPATCH.get(id(tp))
            text = renderer(value, ctx, 0) if renderer is not None else _render_other(value, tp, ctx, 0)
        except Exception:
            if _RAISE_INTERNAL_ERRORS:
                raise
            ctx.path.clear()
            text = _placeholder(value)
        if len(text) > cap:
            text = _fit(text, cap)
        if budget is not None:
            budget.remaining -= len(text)
        result[name] = text
    return result
