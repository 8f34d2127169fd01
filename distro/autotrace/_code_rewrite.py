"""The bytecode rewrite of a module: the ast rewrite's decisions, read from compiled code.

Given the code the interpreter compiled from a module's source, this finds the functions the
ast rewrite (``_rewriter``) would give a site, describes each site as that rewrite does
(qualified name, line of ``def``, parameters, flags, level), adds the calls (``_bytecode``) and
puts the registering call at the top of the module's code. The facts come from the code objects
where they are exact there (qualified names, parameters, generators, which functions are
methods) and from the source text where the code does not keep them (the line of a decorated
``def``, the names of its decorators, and whether a ``return`` spells the ``None`` it returns:
the ast rewrite keeps that value, not that of a bare ``return``). Whether a class is stateful is
read from the instructions that store to attributes; a method whose stores the instructions
alone cannot place is parsed on its own and asked exactly as the ast rewrite asks.
"""

from __future__ import annotations

import ast
import importlib
import re
import unicodedata
from types import CodeType, ModuleType
from typing import Any, Final

from execscope.autotrace import _bytecode as bc
from execscope.autotrace._levels import ARGS, OFF, SiteFlags
from execscope.autotrace._rewriter import (
    PLUMBING_METHODS,
    RUNTIME_MODULE,
    SITES_NAME,
    LevelFor,
    SiteDescriptor,
    _assigns_self,
    binding_flags,
    describe_sites,
)

#: The pass over one code object: ``_bytecode_speedups`` (C) or ``_bytecode`` (its specification
#: in Python), modules with the same ``patch_function`` and ``patch_module``.
Pass = ModuleType


def _compiled_pass() -> Pass | None:
    if not bc.SUPPORTED:
        return None
    try:
        compiled = importlib.import_module("execscope.autotrace._bytecode_speedups")
        compiled.configure(*bc.tables())
    except Exception:  # not compiled here (no compiler at install): the ast rewrite runs
        return None
    return compiled


#: The pass in C, where this interpreter's code can be rewritten and the pass was compiled at
#: install. Without it the hook rewrites the ``ast`` tree instead: the pass in Python costs more
#: than that rewrite does.
COMPILED_PASS: Final = _compiled_pass()
AVAILABLE: Final = COMPILED_PASS is not None

_CO_NEWLOCALS: Final = 0x2
_CO_VARARGS: Final = 0x4
_CO_VARKEYWORDS: Final = 0x8
_CO_GENERATOR: Final = 0x20
_CO_COROUTINE: Final = 0x80
_CO_ASYNC_GENERATOR: Final = 0x200

_OP: Final = bc._OP
_NAME_LOADS: Final = frozenset(
    _OP[name]
    for name in ("LOAD_FAST", "LOAD_DEREF", "LOAD_CLOSURE", "LOAD_CLASSDEREF", "LOAD_NAME", "LOAD_GLOBAL")
)
_ATTRIBUTE_STORES: Final = frozenset({_OP["STORE_ATTR"], _OP["DELETE_ATTR"]})
_STORES: Final = _ATTRIBUTE_STORES | {_OP["STORE_SUBSCR"], _OP["DELETE_SUBSCR"]}
_SETATTR_NAMES: Final = frozenset({"setattr", "delattr", "__setattr__", "__delattr__"})
#: ``return None`` (the words checked apart: a pattern that starts with the literal is searched
#: twenty times faster than one that starts with a boundary).
_RETURN_NONE: Final = re.compile(r"return\s*(?:\(\s*)*(None)\b")
_NO_DECORATORS: Final[frozenset[str]] = frozenset()
_DECORATOR: Final = re.compile(r"@\s*([^\W\d][\w.]*)")


class CodeRewrite:
    """The rewritten module code and its sites' descriptors."""

    __slots__ = ("code", "sites")

    def __init__(self, code: CodeType, sites: tuple[SiteDescriptor, ...]) -> None:
        self.code = code
        self.sites = sites


def rewrite_code(
    code: CodeType, source: str, filename: str, level_for: LevelFor, key: str, passes: Pass | None = None
) -> CodeRewrite:
    """Rewrite the module ``code`` (compiled from ``source``); ``filename`` and ``key`` as for
    :func:`~execscope.autotrace._rewriter.rewrite_tree`. A module with no selected function
    comes back unchanged. ``passes``: the pass to run (the compiled one by default)."""
    passes = passes or COMPILED_PASS
    if passes is None:
        raise RuntimeError("the bytecode rewrite is not available on this interpreter")
    walk = _Walk(level_for, key, source, passes)
    consts = walk.children(code, in_class=False, stateful=False)
    if not walk.sites:
        return CodeRewrite(code, ())
    sites = tuple(walk.sites)
    names = list(code.co_names)
    constants = list(consts if consts is not None else code.co_consts)
    header = bc.header(
        _index(constants, 0),
        _index(constants, ("register",)),
        _index(names, RUNTIME_MODULE),
        _index(names, "register"),
        _index(constants, key),
        _index(names, "__name__"),
        _index(constants, filename),
        _index(constants, describe_sites(sites)),
    )
    rebuilt, locations, exceptions = passes.patch_module(code, tuple(header))
    return CodeRewrite(
        code.replace(
            co_code=rebuilt,
            co_linetable=locations,
            co_exceptiontable=exceptions,  # type: ignore[call-arg]  # 3.11 (checked as 3.10)
            co_names=tuple(names),
            co_consts=tuple(constants),
            co_stacksize=code.co_stacksize + bc.HEADER_STACK,
        ),
        sites,
    )


def _index(items: list[Any], value: object) -> int:
    """The index of ``value`` (equal and of the same type: ``0``, ``False`` and ``0.0`` are
    different constants) in ``items``, appended if absent. A tuple is always appended: ``(1,)``
    equals ``(True,)``."""
    if type(value) is tuple:
        items.append(value)
        return len(items) - 1
    try:
        index = items.index(value)
        if type(items[index]) is type(value):
            return index
    except ValueError:
        pass
    else:
        for index, item in enumerate(items):
            if type(item) is type(value) and item == value:
                return index
    items.append(value)
    return len(items) - 1


def is_function(code: CodeType) -> bool:
    """A ``def`` or ``async def`` (not a lambda, comprehension, class body or module)."""
    return bool(code.co_flags & _CO_NEWLOCALS) and not code.co_name.startswith("<")


def parameters(code: CodeType) -> tuple[str, ...]:
    """As the ast rewrite lists them: positional, ``*args``, keyword-only, ``**kwargs``."""
    names = code.co_varnames
    positional = code.co_argcount
    keyword = code.co_kwonlyargcount
    found = list(names[:positional])
    after = positional + keyword
    if code.co_flags & _CO_VARARGS:
        found.append(names[after])
        after += 1
    found.extend(names[positional : positional + keyword])
    if code.co_flags & _CO_VARKEYWORDS:
        found.append(names[after])
    return tuple(found)


class _Walk:
    """Numbers the sites as the ast rewrite does, in a post-order walk (a nested function before
    the one it is in), and rewrites each function's code."""

    def __init__(self, level_for: LevelFor, key: str, source: str, passes: Pass) -> None:
        self.passes = passes
        self.level_for = level_for
        self.key = key
        self.source = source
        self.sites: list[SiteDescriptor] = []
        self.stateful_classes: set[str] = set()
        self._lines: list[str] | None = None
        self.none_returned = self._none_returned_in_source()
        self.shared: dict[object, object] = {}
        # Decorated functions' (def line, decorators), by the code object's id (all stay alive
        # in the module's code while it is walked).
        self._decorated: dict[int, tuple[int, frozenset[str]]] = {}

    def _none_returned_in_source(self) -> frozenset[tuple[int, int]]:
        """Where (line, UTF-8 column) the source spells ``return None`` (the ``None``)."""
        found = set()
        text = self.text
        for match in _RETURN_NONE.finditer(text):
            start = match.start()
            before, after = text[start - 1 : start], text[start + 6 : start + 7]
            if (before.isidentifier() or before.isdigit() or before == ".") or after.isidentifier():
                continue  # part of another name (``_return``, ``returnNone``)
            offset = match.start(1)
            line_start = text.rfind("\n", 0, offset) + 1
            prefix = text[line_start:offset]
            column = len(prefix) if prefix.isascii() else len(prefix.encode("utf-8"))
            found.add((text.count("\n", 0, offset) + 1, column))
        return frozenset(found)

    @property
    def text(self) -> str:
        """The source with its line ends as the parser counts them ("\r\n", "\r", "\n") as "\n"."""
        text = self.source
        if "\r" in text:
            text = text.replace("\r\n", "\n").replace("\r", "\n")
        return text

    @property
    def lines(self) -> list[str]:
        if self._lines is None:
            self._lines = self.text.split("\n")
        return self._lines

    def children(self, code: CodeType, *, in_class: bool, stateful: bool) -> tuple[object, ...] | None:
        """``code``'s constants with its functions and classes rewritten, or None if none changed."""
        consts = code.co_consts
        changed: list[object] | None = None
        for position, const in enumerate(consts):
            if type(const) is not CodeType:
                continue
            if const.co_flags & _CO_NEWLOCALS:
                if const.co_name.startswith("<"):
                    continue  # a lambda or a comprehension: nothing in it is a statement
                new = self.function(const, in_class, stateful)
            else:
                new = self.class_(const, code)
            if new is not const:
                if changed is None:
                    changed = list(consts)
                changed[position] = new
        return tuple(changed) if changed is not None else None

    # -- classes --------------------------------------------------------------------------------

    def class_(self, code: CodeType, parent: CodeType) -> CodeType:
        methods = [c for c in code.co_consts if type(c) is CodeType and is_function(c)]
        stateful = any(
            self._stateful_method(m)
            for m in methods
            if not self._definition(m)[1] & {"staticmethod", "classmethod"}
        ) or any(name in self.stateful_classes for name in _base_names(parent, code))
        if stateful:
            self.stateful_classes.add(code.co_name)
        consts = self.children(code, in_class=True, stateful=stateful)
        return code.replace(co_consts=consts) if consts is not None else code

    def _stateful_method(self, method: CodeType) -> bool:
        if method.co_argcount == 0:
            return False
        owner = method.co_varnames[0]
        found = _assigns_owner(method, owner)
        if found is not None:
            return found
        node = self._parse_function(method)
        return _assigns_self(node) if node is not None else True

    def _parse_function(self, code: CodeType) -> ast.FunctionDef | ast.AsyncFunctionDef | None:
        """The ``def`` of ``code`` parsed on its own (from its first decorator to its last line)."""
        last = max(
            (end for _, end, _, _ in _all_positions(code) if end is not None), default=code.co_firstlineno
        )
        text = "\n".join(self.lines[code.co_firstlineno - 1 : last])
        line: int | None = None  # in the lines alone, the outermost definition of the name is it
        try:
            tree = ast.parse("if 1:\n" + text if text[:1].isspace() else text)
        except SyntaxError:  # a body the lines alone do not close: the whole module, at its line
            tree, line = ast.parse(self.source), self._definition(code)[0]
        for node in ast.walk(tree):
            if (
                isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef))
                and node.name == code.co_name
                and line in (None, node.lineno)
            ):
                return node
        return None

    # -- functions ------------------------------------------------------------------------------

    def _definition(self, code: CodeType) -> tuple[int, frozenset[str]]:
        """The line of ``def`` (the first line of the code object, or below its decorators) and
        the names of the decorators as the ast rewrite takes them (a name, or the last attribute
        of a dotted one, of the decorator or of the callable it calls). A method's is read for
        its class's statefulness and again for its site: the second time from ``_decorated``."""
        lines = self.lines
        first = code.co_firstlineno - 1
        if first >= len(lines) or lines[first].lstrip()[:1] != "@":
            return code.co_firstlineno, _NO_DECORATORS
        known = self._decorated.get(id(code))
        if known is None:
            known = self._decorated[id(code)] = self._read_decorators(code, first)
        return known

    def _read_decorators(self, code: CodeType, first: int) -> tuple[int, frozenset[str]]:
        lines = self.lines
        pattern = re.compile(r"\s*(?:async\s+)?def\s+" + re.escape(code.co_name) + r"\b")
        line = next((n + 1 for n in range(first, len(lines)) if pattern.match(lines[n])), code.co_firstlineno)
        text = "\n".join(lines[first : line - 1])
        if not text.isascii():
            text = unicodedata.normalize("NFKC", text)
        return line, frozenset(match.rsplit(".", 1)[-1] for match in _DECORATOR.findall(text))

    def function(self, code: CodeType, in_class: bool, stateful_class: bool) -> CodeType:
        consts = self.children(code, in_class=False, stateful=False)
        name = code.co_name
        if in_class and name in PLUMBING_METHODS:
            return code.replace(co_consts=consts) if consts is not None else code
        qualname: str = code.co_qualname  # type: ignore[attr-defined]  # 3.11 (checked as 3.10)
        decision = self.level_for(qualname)
        level = decision.level
        if level == OFF:
            return code.replace(co_consts=consts) if consts is not None else code
        params = parameters(code)
        line, decorators = self._definition(code)
        flags = binding_flags(name, params, decorators, in_class, stateful_class, decision.stateful)
        generator = bool(code.co_flags & (_CO_GENERATOR | _CO_ASYNC_GENERATOR))
        if generator:
            flags |= SiteFlags.GENERATOR
        if code.co_flags & (_CO_COROUTINE | _CO_ASYNC_GENERATOR):
            flags |= SiteFlags.ASYNC
        index = len(self.sites)
        self.sites.append(
            SiteDescriptor(
                qualname,
                line,
                params,
                flags,
                level,
                decision.sample_rate,
                decision.min_duration,
            )
        )
        return add_site_calls(
            self.passes,
            code,
            consts,
            self.key,
            index,
            capture_return=level >= ARGS,
            generator=generator,
            async_generator=bool(code.co_flags & _CO_ASYNC_GENERATOR),
            none_returned=self.none_returned,
            shared=self.shared,
        )


def _methods_used(generator: bool, capture_return: bool) -> tuple[str, ...]:
    """The site's methods the added code calls, in :data:`_bytecode.METHOD_NAMES` order: the
    generator methods in generators, ``ret_leave`` where values are kept."""
    used = {"__exit__", "leave"} | ({"suspend", "resume", "delegate"} if generator else set())
    if capture_return:
        used.add("ret_leave")
    return tuple(name for name in bc.METHOD_NAMES if name in used)


#: By generator, then by whether values are kept: the methods used, and where each of
#: :data:`_bytecode.METHOD_NAMES` is among them (-1: not used).
_USED: Final = {
    (generator, keep): (used, tuple(used.index(n) if n in used else -1 for n in bc.METHOD_NAMES))
    for generator in (False, True)
    for keep in (False, True)
    for used in [_methods_used(generator, keep)]
}


def add_site_calls(
    passes: Pass,
    code: CodeType,
    consts: tuple[object, ...] | None,
    key: str,
    index: int,
    *,
    capture_return: bool,
    generator: bool,
    async_generator: bool,
    none_returned: frozenset[tuple[int, int]] = frozenset(),
    shared: dict[object, object] | None = None,
) -> CodeType:
    """``code`` (a function's, with constants ``consts`` if not None) with the calls of site
    ``index`` of module ``key`` added. ``shared``: the module's tables and names so far."""
    if shared is None:
        shared = {}
    constants = list(code.co_consts if consts is None else consts)
    own = code.co_names
    # Only the names the added code uses (a name it does not use has index -1).
    used, positions = _USED[generator, capture_return]
    wanted = (SITES_NAME, key, *used)
    if own and not set(wanted).isdisjoint(own):
        names = list(own)
        found = [_index(names, name) for name in wanted]
    else:  # most functions use none of these names: appended, in this order
        names = [*own, *wanted]
        found = list(range(len(own), len(names)))
    # A function with no None constant has no ``return None`` to tell apart: only a generator's
    # added ``resume(None)`` needs one.
    none = _index(constants, None) if generator or None in constants else -1
    site_names = (
        found[0],
        found[1],
        _index(constants, index),
        none,
        *[found[2 + at] if at >= 0 else -1 for at in positions],
    )
    rebuilt, locations, exceptions = passes.patch_function(
        code,
        site_names,
        capture_return,
        generator,
        async_generator,
        none_returned,
    )
    # Equal tables and names are one object, as the compiler makes them: marshal then writes
    # each once (a module whose functions look alike caches at the size it would uncompiled).
    share = shared.setdefault
    names_tuple = tuple(names)
    return code.replace(  # type: ignore[call-arg]  # co_exceptiontable: 3.11 (checked as 3.10)
        co_code=rebuilt,
        co_linetable=share(locations, locations),  # type: ignore[arg-type]
        co_exceptiontable=share(exceptions, exceptions),
        co_names=share(names_tuple, names_tuple),  # type: ignore[arg-type]
        co_consts=tuple(constants),
        co_stacksize=max(code.co_stacksize + bc.EXTRA_STACK, bc.HANDLER_STACK),
    )


def _all_positions(code: CodeType) -> list[tuple[int | None, int | None, int | None, int | None]]:
    found = list(code.co_positions())  # type: ignore[attr-defined]
    for const in code.co_consts:
        if type(const) is CodeType:
            found.extend(_all_positions(const))
    return found


def _name_loaded(code: CodeType, op: int, arg: int) -> str | None:
    """The variable a name-loading instruction loads."""
    if op == _OP["LOAD_FAST"]:
        return code.co_varnames[arg]
    if op == _OP["LOAD_GLOBAL"]:
        return code.co_names[arg >> 1]
    if op == _OP["LOAD_NAME"]:
        return code.co_names[arg]
    return code._varname_from_oparg(arg)  # type: ignore[attr-defined,no-any-return]


def _assigns_owner(code: CodeType, owner: str) -> bool | None:
    """Does ``code`` (or code nested in it) assign, augment or delete an attribute of ``owner``,
    or call ``setattr`` on it? True or False where the instructions say so for certain; None
    where a store's target is an expression the instructions alone do not place (then the
    function's source is asked)."""
    instructions = bc.decode(code.co_code)
    ops, args = instructions.ops, instructions.args
    names = [
        _name_loaded(code, op, arg) if op in _NAME_LOADS else None for op, arg in zip(ops, args, strict=True)
    ]
    setattr_named = not _SETATTR_NAMES.isdisjoint(code.co_names) or not _SETATTR_NAMES.isdisjoint(
        code.co_varnames + code.co_cellvars + code.co_freevars
    )
    uncertain = setattr_named
    for i, op in enumerate(ops):
        if (
            names[i] == owner
            and i + 2 < len(ops)
            and (ops[i + 1], args[i + 1], ops[i + 2]) == (bc.COPY, 1, bc.LOAD_ATTR)
        ):
            return True  # ``owner.x += ...``: the object copied, its attribute read, then stored
        if op not in _STORES:
            continue
        # The object stored to: the instruction before (an attribute store), or the one before the
        # key if the key is one plain load (an item store).
        target = i - 1 if op in _ATTRIBUTE_STORES else i - 2
        if op not in _ATTRIBUTE_STORES and not (
            i >= 1 and (names[i - 1] is not None or ops[i - 1] == bc.LOAD_CONST)
        ):
            uncertain = True
            continue
        if target < 0:
            uncertain = True
        elif names[target] == owner:
            if op in _ATTRIBUTE_STORES:
                return True  # ``owner.x = ...``, ``del owner.x``
            # ``owner[k] = ...`` does not count (the ast rewrite asks for ``owner.x`` in the target)
        elif names[target] is not None:
            continue  # a store to another variable's attribute or item
        elif ops[target] == bc.LOAD_ATTR and target >= 1 and names[target - 1] == owner:
            return True  # ``owner.x.y = ...``, ``owner.x[k] = ...``
        else:
            uncertain = True
    for const in code.co_consts:
        if type(const) is CodeType:
            nested = _assigns_owner(const, owner)
            if nested:
                return True
            if nested is None:
                uncertain = True
    return None if uncertain else False


def _base_names(parent: CodeType, class_code: CodeType) -> list[str]:
    """The bases of the class whose body is ``class_code`` that are plain names, read from the
    instructions of ``parent`` that build it (``LOAD_BUILD_CLASS``, the body function, its name,
    its bases and keywords, the call)."""
    instructions = bc.decode(parent.co_code)
    ops, args = instructions.ops, instructions.args
    consts = parent.co_consts
    made = [
        i
        for i, (op, arg) in enumerate(zip(ops, args, strict=True))
        if op == bc.LOAD_CONST and consts[arg] is class_code
    ]
    if not made:
        return []
    position = made[0] + 1
    if position < len(ops) and ops[position] == _OP["MAKE_FUNCTION"]:
        position += 1
    if position < len(ops) and ops[position] == bc.LOAD_CONST:
        position += 1  # the class's name
    items: list[str | None] = []
    keywords = 0
    plain = {_OP["LOAD_ATTR"], _OP["LOAD_METHOD"]}
    while position < len(ops):
        op, arg = ops[position], args[position]
        if op in _NAME_LOADS:
            items.append(_name_loaded(parent, op, arg))
        elif op == bc.LOAD_CONST:
            items.append(None)
        elif op in plain and items:
            items[-1] = None
        elif op in (bc.BINARY_SUBSCR, _OP["BINARY_OP"]) and len(items) >= 2:
            items[-2:] = [None]
        elif op == _OP["KW_NAMES"]:
            keywords = len(consts[arg])
        elif op in (bc.PRECALL, bc.CALL):
            break
        else:
            return []  # an expression this reading does not follow: no base is taken as a name
        position += 1
    bases = items[: len(items) - keywords] if keywords else items
    return [name for name in bases if name is not None]
