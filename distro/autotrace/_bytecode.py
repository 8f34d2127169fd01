"""Calls added to compiled 3.11 code: the instruction-level half of the bytecode rewrite.

The ast rewrite (``_rewriter``) changes a module's tree and compiles it again; parsing a module
into Python ``ast`` objects and compiling them back costs about twice what compiling its source
does, before any code is added. This module adds the same calls to the code the interpreter
compiled from the source as written, so a cold import pays one compile and a pass over the
instructions. What a selected function gets:

* after its ``RESUME 0`` (the start of its body, after a generator's creation), the site's
  ``__enter__()``, called as a ``with`` calls it;
* before each ``RETURN_VALUE`` (after any ``finally`` and ``with`` exit code has run), the
  site's ``ret_leave(value)`` at levels that capture values (``leave(value)`` below them, and
  where the value is the ``None`` of a ``return`` with none or of the body's end), which ends
  the call; the site is kept on the stack below the body's own values from ``__enter__`` to
  there, so a return and the handler find it without looking it up;
* around each ``yield`` of a generator, ``suspend(value)`` before and ``resume(sent)`` after;
  ``delegate(iterator)`` before a ``yield from`` and ``resume(result)`` where it ends; and
  ``resume(None)`` where each exception handler of a ``try`` starts (see ``reattach``; the ast
  rewrite adds it to the ``try`` statements that hold a ``yield``, and elsewhere the span is
  current already, so ``resume`` does nothing);
* an exception handler at the end, given every part of the body no handler of its own covers:
  it calls the site's ``__exit__`` with the exception, as a ``with``'s handler does
  (``WITH_EXCEPT_START``), and re-raises it with the frame's position restored.

The body's own instructions are unchanged; its handlers keep one value more (the site, below
what they kept); jumps are re-aimed, and the exception and location tables are rebuilt around
the added code. Added code takes the location of the instruction before it (as the compiler's
own artificial code does; the entry, that of the body's first instruction), so tracebacks and
line tracers see the lines they saw; the handler at the end has none.

Why not a wrapper or a ``sys.setprofile`` hook: a wrapper adds a frame (``sys._getframe(1)``,
the recursion limit, tracebacks change) and a profile hook costs every call in the process.

This is the pure-Python form of the pass, which ``_bytecode_speedups`` (compiled at install)
does in C with the same output; it is the specification that one is tested against.
"""

from __future__ import annotations

import dis
import functools
import opcode
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from types import CodeType
from typing import Final

#: The instruction set this pass knows: where it is not the interpreter's, the ast rewrite runs.
SUPPORTED: Final = sys.version_info[:2] == (3, 11)

_OP: Final = opcode.opmap
_CACHES: Final[Sequence[int]] = opcode._inline_cache_entries  # type: ignore[attr-defined]
EXTENDED_ARG: Final = opcode.EXTENDED_ARG
_JUMPS: Final = frozenset(dis.hasjrel)
_BACKWARD: Final = frozenset(op for op in dis.hasjrel if "BACKWARD" in opcode.opname[op])

RESUME: Final = _OP["RESUME"]
RETURN_VALUE: Final = _OP["RETURN_VALUE"]
YIELD_VALUE: Final = _OP["YIELD_VALUE"]
ASYNC_GEN_WRAP: Final = _OP["ASYNC_GEN_WRAP"]
GET_YIELD_FROM_ITER: Final = _OP["GET_YIELD_FROM_ITER"]
SEND: Final = _OP["SEND"]
PUSH_EXC_INFO: Final = _OP["PUSH_EXC_INFO"]
BEFORE_WITH: Final = _OP["BEFORE_WITH"]
WITH_EXCEPT_START: Final = _OP["WITH_EXCEPT_START"]
LOAD_GLOBAL: Final = _OP["LOAD_GLOBAL"]
LOAD_ATTR: Final = _OP["LOAD_ATTR"]
LOAD_CONST: Final = _OP["LOAD_CONST"]
LOAD_NAME: Final = _OP["LOAD_NAME"]
LOAD_METHOD: Final = _OP["LOAD_METHOD"]
IMPORT_NAME: Final = _OP["IMPORT_NAME"]
BINARY_SUBSCR: Final = _OP["BINARY_SUBSCR"]
PRECALL: Final = _OP["PRECALL"]
CALL: Final = _OP["CALL"]
POP_TOP: Final = _OP["POP_TOP"]
SWAP: Final = _OP["SWAP"]
COPY: Final = _OP["COPY"]
POP_EXCEPT: Final = _OP["POP_EXCEPT"]
RERAISE: Final = _OP["RERAISE"]

#: What the added code needs beyond the function's own stack: the site kept below it, and the three
#: values of a call (see ``reattach``).
EXTRA_STACK: Final = 4
HANDLER_STACK: Final = 6
HEADER_STACK: Final = 7

Code = list[tuple[int, int]]  # (opcode, argument); caches and EXTENDED_ARG are added when emitted
Position = tuple[int, int, int, int]  # line, end line, column, end column; -1 where there is none
NO_POSITION: Final[Position] = (-1, -1, -1, -1)


@dataclass(frozen=True)
class SiteNames:
    """Indexes into the code's ``co_names``/``co_consts`` the added code uses (made by
    ``_code_rewrite.add_site_calls``; -1 for one the function's added code does not use)."""

    registry: int  # __execscope_sites__ (a name)
    key: int  # the module's key (a name: an attribute of the registry)
    index: int  # the site's number (a constant)
    none: int  # None (a constant)
    exit: int
    ret_leave: int
    leave: int
    suspend: int
    resume: int
    delegate: int


#: The names ``SiteNames`` indexes, after the registry and the key, in its field order.
METHOD_NAMES: Final = ("__exit__", "ret_leave", "leave", "suspend", "resume", "delegate")


@dataclass(frozen=True)
class Instructions:
    """A code object's instructions: where each starts (in code units, with its ``EXTENDED_ARG``
    prefixes), its opcode and its full argument."""

    starts: list[int]
    ops: list[int]
    args: list[int]
    length: int  # code units in all

    def jump_target(self, index: int) -> int:
        """The code unit a relative jump at ``index`` goes to."""
        op = self.ops[index]
        end = self.ends(index)
        return end - self.args[index] if op in _BACKWARD else end + self.args[index]

    @functools.cached_property
    def index_at(self) -> dict[int, int]:
        """The instruction starting at each code unit that starts one (``length``: the count)."""
        found = {start: index for index, start in enumerate(self.starts)}
        found[self.length] = len(self.starts)
        return found

    def ends(self, index: int) -> int:
        return self.starts[index + 1] if index + 1 < len(self.starts) else self.length


def decode(code: bytes) -> Instructions:
    starts: list[int] = []
    ops: list[int] = []
    args: list[int] = []
    position = 0
    size = len(code)
    argument = 0
    start = -1
    while position < size:
        op = code[position]
        if start < 0:
            start = position >> 1
        argument = argument << 8 | code[position + 1]
        position += 2
        if op == EXTENDED_ARG:
            continue
        starts.append(start)
        ops.append(op)
        args.append(argument)
        position += 2 * _CACHES[op]
        argument = 0
        start = -1
    return Instructions(starts, ops, args, size >> 1)


def _extended(argument: int) -> int:
    """How many ``EXTENDED_ARG`` prefixes an argument needs."""
    return 0 if argument < 0x100 else 1 if argument < 0x10000 else 2 if argument < 0x1000000 else 3


def code_size(code: Code) -> int:
    return sum(_extended(arg) + 1 + _CACHES[op] for op, arg in code)


def _emit(out: bytearray, op: int, arg: int, prefixes: int) -> None:
    for shift in range(prefixes, 0, -1):
        out += bytes((EXTENDED_ARG, (arg >> (8 * shift)) & 0xFF))
    out += bytes((op, arg & 0xFF))
    out += b"\0\0" * _CACHES[op]


# -- the code added -----------------------------------------------------------------------------


def _site(names: SiteNames) -> Code:
    """``__execscope_sites__.<key>[index]``."""
    return [
        (LOAD_GLOBAL, names.registry << 1),
        (LOAD_ATTR, names.key),
        (LOAD_CONST, names.index),
        (BINARY_SUBSCR, 0),
    ]


def enter(names: SiteNames) -> Code:
    """``site.__enter__()``, called as a ``with`` calls it (``__exit__`` is looked up too, and
    dropped), leaving the site on the stack, below the body's own values, for the returns and
    the handler."""
    return [*_site(names), (COPY, 1), (BEFORE_WITH, 0), (POP_TOP, 0), (POP_TOP, 0)]


def _call_on_value(method: int) -> Code:
    """With the site on top of the stack and a value below it: the value replaced by
    ``site.<method>(value)``, the site taken off."""
    return [(LOAD_METHOD, method), (SWAP, 2), (SWAP, 3), (PRECALL, 1), (CALL, 1)]


def passes_through(names: SiteNames, method: int) -> Code:
    """The value on top of the stack replaced by ``site.<method>(value)``."""
    return [*_site(names), *_call_on_value(method)]


def leave(names: SiteNames, keep_value: bool) -> Code:
    """Before a ``RETURN_VALUE``, where the stack holds the site (kept since the entry) and the
    value: the value replaced by ``site.ret_leave(value)`` (kept, the call ends) if
    ``keep_value``, else by ``site.leave(value)`` (the call ends)."""
    return [(SWAP, 2), *_call_on_value(names.ret_leave if keep_value else names.leave)]


def reattach(names: SiteNames) -> Code:
    """``site.resume(None)`` as a statement."""
    return [
        *_site(names),
        (LOAD_METHOD, names.resume),
        (LOAD_CONST, names.none),
        (PRECALL, 1),
        (CALL, 1),
        (POP_TOP, 0),
    ]


def handler(names: SiteNames) -> tuple[Code, Code, Code]:
    """The handler every uncovered part of the body goes to, in three parts: before
    ``PUSH_EXC_INFO`` (the stack holds the site, the frame's position and the exception: the
    site's ``__exit__`` takes the site's place), the part a ``with``'s handler has (``__exit__``
    called with the exception, whose answer is ignored: an exception is never suppressed), and
    the cleanup that restores the exception being handled before it when the re-raise leaves
    the frame."""
    before = [(COPY, 3), (LOAD_ATTR, names.exit), (SWAP, 4), (POP_TOP, 0), (PUSH_EXC_INFO, 0)]
    body = [(WITH_EXCEPT_START, 0), (POP_TOP, 0), (RERAISE, 2)]
    cleanup = [(COPY, 3), (POP_EXCEPT, 0), (RERAISE, 1)]
    return before, body, cleanup


def header(
    zero: int, fromlist: int, runtime: int, register: int, key: int, name: int, filename: int, sites: int
) -> Code:
    """``__import__(RUNTIME, fromlist=('register',)).register(key, __name__, filename, sites)``:
    indexes of the constants ``0``, ``('register',)``, key, filename and sites, and of the names
    of the runtime module, ``register`` and ``__name__``."""
    return [
        (LOAD_CONST, zero), (LOAD_CONST, fromlist), (IMPORT_NAME, runtime), (LOAD_METHOD, register),
        (LOAD_CONST, key), (LOAD_NAME, name), (LOAD_CONST, filename), (LOAD_CONST, sites),
        (PRECALL, 4), (CALL, 4), (POP_TOP, 0),
    ]  # fmt: skip


# -- the exception table ------------------------------------------------------------------------

ExceptionEntry = tuple[int, int, int, int, bool]  # start, end, target (code units), depth, lasti


def parse_exception_table(table: bytes) -> list[ExceptionEntry]:
    """The entries of a 3.11 exception table (``Objects/exception_handling_notes.txt``)."""
    entries: list[ExceptionEntry] = []
    position = 0

    def varint() -> int:
        nonlocal position
        byte = table[position]
        position += 1
        value = byte & 63
        while byte & 64:
            byte = table[position]
            position += 1
            value = value << 6 | (byte & 63)
        return value

    while position < len(table):
        start = varint()
        end = start + varint()
        target = varint()
        depth_lasti = varint()
        entries.append((start, end, target, depth_lasti >> 1, bool(depth_lasti & 1)))
    return entries


def _exception_varint(out: bytearray, value: int, first: int) -> None:
    for shift in (24, 18, 12, 6):
        if value >= 1 << shift:
            out.append(((value >> shift) & 63) | 64 | first)
            first = 0
    out.append((value & 63) | first)


def encode_exception_table(entries: list[ExceptionEntry]) -> bytes:
    out = bytearray()
    for start, end, target, depth, lasti in entries:
        _exception_varint(out, start, 128)
        _exception_varint(out, end - start, 0)
        _exception_varint(out, target, 0)
        _exception_varint(out, depth << 1 | lasti, 0)
    return bytes(out)


# -- the location table -------------------------------------------------------------------------


def _location_varint(out: bytearray, value: int) -> None:
    while value >= 64:
        out.append(64 | (value & 63))
        value >>= 6
    out.append(value)


def _signed_location_varint(out: bytearray, value: int) -> None:
    _location_varint(out, (-value) << 1 | 1 if value < 0 else value << 1)


def encode_locations(positions: Sequence[Position], first_line: int) -> bytes:
    """A 3.11 location table (``Objects/locations.md``) for one position per code unit,
    consecutive equal positions sharing entries of up to 8 units, each entry in the shortest of
    the forms the compiler chooses from."""
    out = bytearray()
    line = first_line
    count = len(positions)
    unit = 0
    while unit < count:
        position = positions[unit]
        run = 1
        while run < 8 and unit + run < count and positions[unit + run] == position:
            run += 1
        unit += run
        start, end, column, end_column = position
        if start < 0:
            out.append(0x80 | 15 << 3 | (run - 1))
            continue
        delta = start - line
        line = start
        if column < 0 or end_column < 0:
            if end == start or end < 0:
                out.append(0x80 | 13 << 3 | (run - 1))
                _signed_location_varint(out, delta)
                continue
        elif end == start:
            if delta == 0 and column < 80 and 0 <= end_column - column < 16:
                out.append(0x80 | (column >> 3) << 3 | (run - 1))
                out.append((column & 7) << 4 | (end_column - column))
                continue
            if 0 <= delta < 3 and column < 128 and end_column < 128:
                out.append(0x80 | (10 + delta) << 3 | (run - 1))
                out.append(column)
                out.append(end_column)
                continue
        out.append(0x80 | 14 << 3 | (run - 1))
        _signed_location_varint(out, delta)
        _location_varint(out, end - start)
        _location_varint(out, column + 1)
        _location_varint(out, end_column + 1)
    return bytes(out)


def positions_of(code: CodeType) -> list[Position]:
    """One position per code unit of ``code`` (a code object), -1 for what it does not have."""
    return [
        (-1 if a is None else a, -1 if b is None else b, -1 if c is None else c, -1 if d is None else d)
        for a, b, c, d in code.co_positions()  # type: ignore[attr-defined]  # 3.11 (checked as 3.10)
    ]


# -- the pass -----------------------------------------------------------------------------------


@dataclass
class Additions:
    """What to add to one code object, by instruction index: ``before[i]`` runs before
    instruction ``i`` (jumps to ``i`` run it too, and it shares ``i``'s exception handler),
    ``after[i]`` right after ``i`` (in ``i``'s handler). ``handler`` (``before``, ``body``,
    ``cleanup``, see :func:`handler`) covers the code units from instruction ``covered_from``
    on that no handler of the code covers."""

    before: dict[int, Code]
    after: dict[int, Code]
    handler: tuple[Code, Code, Code] | None = None
    covered_from: int = 0
    after_takes_next_position: frozenset[int] = frozenset()


@dataclass(frozen=True)
class Rebuilt:
    code: bytes
    locations: bytes
    exceptions: bytes


@dataclass
class _Layout:
    """Where everything goes: ``group[i]`` where what runs before instruction ``i`` starts
    (``group[count]``: the end of the body), the instructions' new arguments and how many
    ``EXTENDED_ARG`` prefixes each takes."""

    group: list[int]
    args: list[int]
    prefixes: list[int]


def _lay_out(instructions: Instructions, additions: Additions) -> _Layout:
    """A jump's argument depends on the layout, which depends on the arguments' sizes: lay out
    until no argument needs another ``EXTENDED_ARG`` (sizes only grow, so this ends)."""
    starts, ops, args = instructions.starts, instructions.ops, instructions.args
    count = len(ops)
    index_at = instructions.index_at
    targets = {i: index_at[instructions.jump_target(i)] for i in range(count) if ops[i] in _JUMPS}
    before_size = {i: code_size(code) for i, code in additions.before.items()}
    after_size = {i: code_size(code) for i, code in additions.after.items()}
    prefixes = [_extended(arg) for arg in args]
    new_args = list(args)
    while True:
        group = [0] * (count + 1)
        at = [0] * count  # where instruction i itself starts
        position = 0
        for i in range(count):
            group[i] = position
            position += before_size.get(i, 0)
            at[i] = position
            position += prefixes[i] + 1 + _CACHES[ops[i]] + after_size.get(i, 0)
        group[count] = position
        grown = False
        for i, target in targets.items():
            end = at[i] + prefixes[i] + 1 + _CACHES[ops[i]]
            argument = end - group[target] if ops[i] in _BACKWARD else group[target] - end
            if argument < 0:
                raise ValueError(f"a jump at {starts[i]} cannot be re-aimed")
            new_args[i] = argument
            if _extended(argument) > prefixes[i]:
                prefixes[i] = _extended(argument)
                grown = True
        if not grown:
            return _Layout(group, new_args, prefixes)


def _write(
    instructions: Instructions, positions: Sequence[Position], additions: Additions, layout: _Layout
) -> tuple[bytearray, list[Position]]:
    """The code laid out, and a position for each of its code units: an added instruction takes
    the position of the one before it (or, after ``after_takes_next_position``, after it)."""
    starts, ops = instructions.starts, instructions.ops
    count = len(ops)
    out = bytearray()
    new_positions: list[Position] = []
    previous: Position = NO_POSITION
    for i in range(count):
        code = additions.before.get(i)
        if code:
            for op, arg in code:
                _emit(out, op, arg, _extended(arg))
            new_positions.extend([previous] * code_size(code))
        _emit(out, ops[i], layout.args[i], layout.prefixes[i])
        start = starts[i]
        own = positions[start : start + (instructions.ends(i) - start)]
        # An instruction that gained EXTENDED_ARG prefixes gives them its position.
        own_units = layout.prefixes[i] + 1 + _CACHES[ops[i]]
        if own_units >= len(own):
            mine = [own[0]] * (own_units - len(own)) + list(own)
        else:
            mine = list(own[len(own) - own_units :])
        new_positions.extend(mine)
        previous = mine[-1]
        code = additions.after.get(i)
        if code:
            for op, arg in code:
                _emit(out, op, arg, _extended(arg))
            if i in additions.after_takes_next_position and i + 1 < count:
                previous = positions[starts[i + 1]]
            new_positions.extend([previous] * code_size(code))
    return out, new_positions


def rebuild(
    instructions: Instructions,
    positions: Sequence[Position],
    exceptions: list[ExceptionEntry],
    first_line: int,
    additions: Additions,
) -> Rebuilt:
    """The code with ``additions`` laid out, its jumps re-aimed and its tables rebuilt."""
    layout = _lay_out(instructions, additions)
    out, new_positions = _write(instructions, positions, additions, layout)
    group = layout.group
    index_at = instructions.index_at
    # With a handler (a function), the site stays on the stack below the body's own values: every
    # handler of the body keeps one value more.
    shift = 1 if additions.handler is not None else 0
    rebuilt: list[ExceptionEntry] = [
        (group[index_at[s]], group[index_at[e]], group[index_at[t]], depth + shift, lasti)
        for s, e, t, depth, lasti in exceptions
    ]
    if additions.handler is not None:
        before_code, body_code, cleanup_code = additions.handler
        handler_start = len(out) >> 1
        for op, arg in (*before_code, *body_code, *cleanup_code):
            _emit(out, op, arg, _extended(arg))
        body_start = handler_start + code_size(before_code)
        cleanup_start = body_start + code_size(body_code)
        new_positions.extend([NO_POSITION] * ((len(out) >> 1) - len(new_positions)))
        covered = _uncovered(rebuilt, group[additions.covered_from], group[-1])
        rebuilt = sorted([*rebuilt, *((s, e, handler_start, 1, True) for s, e in covered)])
        rebuilt.append((body_start, cleanup_start, cleanup_start, 3, True))
    return Rebuilt(bytes(out), encode_locations(new_positions, first_line), encode_exception_table(rebuilt))


def _uncovered(entries: list[ExceptionEntry], start: int, end: int) -> list[tuple[int, int]]:
    """The ranges of ``[start, end)`` no entry covers."""
    gaps: list[tuple[int, int]] = []
    position = start
    for entry_start, entry_end, *_ in sorted(entries):
        if entry_end <= position:
            continue
        if entry_start > position:
            gaps.append((position, min(entry_start, end)))
        position = max(position, entry_end)
        if position >= end:
            break
    if position < end:
        gaps.append((position, end))
    return [(s, e) for s, e in gaps if s < e]


def _add(where: dict[int, Code], index: int, code: Code) -> None:
    """Add ``code`` after what is already to be added at ``index`` (in instruction order)."""
    where[index] = [*where.get(index, []), *code]


def function_additions(
    instructions: Instructions,
    positions: Sequence[Position],
    names: SiteNames,
    *,
    capture_return: bool,
    generator: bool,
    async_generator: bool,
    none_returned: frozenset[tuple[int, int]] = frozenset(),
) -> Additions:
    """What a selected function gets (see the module's docstring). ``none_returned``: where
    (line, column) the source has a ``return None``: the ``None`` a ``return`` with no value,
    or a body that ends, returns is not kept, as the ast rewrite keeps none there."""
    starts, ops, args = instructions.starts, instructions.ops, instructions.args
    count = len(ops)
    before: dict[int, Code] = {}
    after: dict[int, Code] = {}
    first = ops.index(RESUME)  # RESUME 0: after a generator's RETURN_GENERATOR and POP_TOP
    after[first] = enter(names)
    keeping = leave(names, capture_return)
    plain = leave(names, False) if capture_return else keeping
    targets: set[int] | None = None
    for i in range(first + 1, count):
        op = ops[i]
        if op == RETURN_VALUE:
            exit_code = keeping
            if capture_return and ops[i - 1] == LOAD_CONST and args[i - 1] == names.none:
                if targets is None:
                    targets = {
                        instructions.index_at[instructions.jump_target(j)]
                        for j in range(count)
                        if ops[j] in _JUMPS
                    }
                line, _, column, _ = positions[starts[i - 1]]
                if i not in targets and (line, column) not in none_returned:
                    exit_code = plain
            _add(before, i, exit_code)
        elif not generator:
            continue
        elif (op == YIELD_VALUE and not async_generator and ops[i - 1] != SEND) or op == ASYNC_GEN_WRAP:
            # A ``yield`` (in an async generator, its value is wrapped first; the YIELD_VALUE after a
            # SEND is the loop of a ``yield from`` or an ``await``).
            _add(before, i, passes_through(names, names.suspend))
        elif op == RESUME and args[i] == 1:
            _add(after, i, passes_through(names, names.resume))
        elif op == GET_YIELD_FROM_ITER:
            _add(before, i, passes_through(names, names.delegate))
            send = i + 2
            if send < count and ops[send] == SEND:
                # Where the loop of ``yield from`` ends, with its result: the SEND's target.
                end = instructions.index_at[instructions.jump_target(send)]
                if end == count:
                    raise ValueError("a yield from that ends past the code")
                _add(before, end, passes_through(names, names.resume))
        elif op == PUSH_EXC_INFO and i + 1 < count and ops[i + 1] != WITH_EXCEPT_START:
            # A handler of a ``try`` (not of a ``with``): nothing jumps to the instruction after
            # PUSH_EXC_INFO, so what runs before it runs once, in the handler's cleanup range.
            _add(before, i + 1, reattach(names))
    return Additions(
        before,
        after,
        handler(names),
        covered_from=first + 1,
        after_takes_next_position=frozenset({first}),
    )


# -- the entry points (``_bytecode_speedups`` has the same, in C) --------------------------------

Tables = tuple[bytes, bytes, bytes]  # code, location table, exception table


def _read(code: CodeType) -> tuple[Instructions, list[Position], list[ExceptionEntry]]:
    return decode(code.co_code), positions_of(code), parse_exception_table(code.co_exceptiontable)  # type: ignore[attr-defined]


def patch_function(
    code: CodeType,
    names: tuple[int, ...],
    capture_return: bool,
    generator: bool,
    async_generator: bool,
    none_returned: frozenset[tuple[int, int]],
) -> Tables:
    """A selected function's code with its site's calls added (``names``: a :class:`SiteNames`
    as a tuple)."""
    instructions, positions, exceptions = _read(code)
    additions = function_additions(
        instructions,
        positions,
        SiteNames(*names),
        capture_return=capture_return,
        generator=generator,
        async_generator=async_generator,
        none_returned=none_returned,
    )
    rebuilt = rebuild(instructions, positions, exceptions, code.co_firstlineno, additions)
    return rebuilt.code, rebuilt.locations, rebuilt.exceptions


def patch_module(code: CodeType, header: tuple[tuple[int, int], ...]) -> Tables:
    """A module's code with ``header`` (see :func:`header`) run first, after its ``RESUME``."""
    instructions, positions, exceptions = _read(code)
    first = instructions.ops.index(RESUME)
    additions = Additions({}, {first: list(header)}, after_takes_next_position=frozenset({first}))
    rebuilt = rebuild(instructions, positions, exceptions, code.co_firstlineno, additions)
    return rebuilt.code, rebuilt.locations, rebuilt.exceptions


def tables() -> tuple[bytes, bytes, tuple[int, ...]]:
    """What ``_bytecode_speedups.configure`` takes: cache sizes and jump kinds by opcode, and the
    opcodes it uses (in the order of its ``K_`` constants)."""
    caches = bytes(_CACHES[op] if op < len(_CACHES) else 0 for op in range(256))
    kinds = bytes(2 if op in _BACKWARD else 1 if op in _JUMPS else 0 for op in range(256))
    opcodes = (
        RESUME, RETURN_VALUE, YIELD_VALUE, ASYNC_GEN_WRAP, GET_YIELD_FROM_ITER, SEND, PUSH_EXC_INFO,
        WITH_EXCEPT_START, LOAD_GLOBAL, LOAD_ATTR, LOAD_CONST, LOAD_METHOD, BINARY_SUBSCR, PRECALL, CALL,
        POP_TOP, SWAP, COPY, POP_EXCEPT, RERAISE, EXTENDED_ARG, BEFORE_WITH,
    )  # fmt: skip
    return caches, kinds, opcodes
