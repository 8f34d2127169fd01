"""The two rewrites of a selected module: of its compiled code (on 3.11, where the pass was
compiled at install: the default) and of its ``ast`` tree (elsewhere, and with
``EXECSCOPE_AUTOTRACE_BYTECODE=false``).

Both must behave identically. The whole auto-instrumentor suite runs on the bytecode rewrite in
this process and once more on the ``ast`` rewrite in a child process, so every behaviour is
specified for both. Here, besides: both describe the same sites for the same source; the pass in
C writes what its specification in Python (``_bytecode.py``) writes, byte for byte; and in CI
the pass must have been compiled (a silent fallback would hide a dearer first import).
"""

from __future__ import annotations

import ast
import dis
import importlib.util
import marshal
import os
import textwrap
from collections import Counter
from pathlib import Path
from types import CodeType

import pytest
import test_equivalence
from autotrace_helpers import ACCELERATED, BYTECODE, assert_suite_passes_in_a_child, import_source, recording

from bench.autotrace_import import generate_module
from execscope.autotrace import _bytecode, _code_rewrite
from execscope.autotrace._levels import ARGS, FULL, TIMING
from execscope.autotrace._rewriter import Decision, rewrite_tree

needs_pass = pytest.mark.skipif(not _code_rewrite.AVAILABLE, reason="the bytecode pass is not compiled here")

#: Standard library modules with most of what functions do (classes, generators, coroutines,
#: decorators, try/finally, with, match, nested functions, long bodies).
STDLIB = (
    "argparse", "tarfile", "dataclasses", "contextlib", "functools", "asyncio.tasks", "json.decoder",
    "typing", "inspect", "email.message", "logging", "zipfile",
)  # fmt: skip


def _stdlib_source(name: str) -> tuple[str, str]:
    spec = importlib.util.find_spec(name)
    assert spec is not None and spec.origin is not None
    return spec.origin, Path(spec.origin).read_text(encoding="utf-8")


def _corpus() -> list[tuple[str, str, str]]:
    """(id, filename, source): the equivalence cases, the import benchmark's module and
    :data:`STDLIB`."""
    found = [(f"case-{c.name}", f"{c.name}.py", c.source) for c in test_equivalence.CASES]
    found.append(("benchmark-module", "generated.py", generate_module()))
    found.extend((name, *_stdlib_source(name)) for name in STDLIB)
    return found


CORPUS = _corpus()


def _level(level: int) -> Decision:
    return Decision(level)


@needs_pass
@pytest.mark.parametrize(("filename", "source"), [pytest.param(f, s, id=i) for i, f, s in CORPUS])
def test_the_compiled_pass_writes_what_its_specification_writes(filename: str, source: str) -> None:
    code = compile(source, filename, "exec", dont_inherit=True)
    for level in (TIMING, ARGS, FULL):
        compiled = _code_rewrite.rewrite_code(
            code, source, filename, lambda _, level=level: _level(level), "m_k"
        )
        specified = _code_rewrite.rewrite_code(
            code, source, filename, lambda _, level=level: _level(level), "m_k", passes=_bytecode
        )
        assert marshal.dumps(compiled.code) == marshal.dumps(specified.code)
        assert compiled.sites == specified.sites


@needs_pass
@pytest.mark.parametrize(("filename", "source"), [pytest.param(f, s, id=i) for i, f, s in CORPUS])
def test_both_rewrites_describe_the_same_sites(filename: str, source: str) -> None:
    """Same names, lines of ``def``, parameters (as the compiler names them), flags and levels;
    the numbering may differ (each rewrite's code uses its own)."""
    code = compile(source, filename, "exec", dont_inherit=True)
    from_code = _code_rewrite.rewrite_code(code, source, filename, lambda _: _level(FULL), "m_k").sites
    from_tree = rewrite_tree(ast.parse(source), filename, lambda _: _level(FULL), "m_k", source=source).sites

    assert Counter(from_code) == Counter(from_tree)


#: Methods whose stores make their class stateful or not, each read from the instructions or,
#: where those do not place the target, from the method's own lines (or the module's).
STATE_SHAPES = {
    "attribute": "self.x = 1",
    "augmented": "self.n += 1",
    "item of an attribute": "self.items[key()] = 1",
    "augmented item": "self.counts[k] += 1",
    "nested attribute": "self.a.b = 1",
    "unpacked": "self.x, self.y = 1, 2",
    "deleted": "del self.x",
    "setattr": "setattr(self, 'x', 1)",
    "object.__setattr__": "object.__setattr__(self, 'x', 1)",
    "in a closure": "def inner():\n            self.x = 1\n        inner()",
    "own item (not stateful)": "self[0] = 1",
    "another object (not stateful)": "other = object()\n        other.x = 1",
    "a local's item (not stateful)": "d = {}\n        d['k'] = 1",
    "a body the lines do not close": (
        "try:\n            self.items[k()] = 1\n        finally:\n            pass"
    ),
}


@needs_pass
@pytest.mark.parametrize("body", list(STATE_SHAPES.values()), ids=list(STATE_SHAPES))
def test_both_rewrites_find_the_same_stateful_classes(body: str) -> None:
    source = (
        f"class Holder:\n    def change(self, k=None, key=None):\n        {body}\n\n\n"
        "class Child(Holder):\n    def get(self):\n        return 1\n"
    )
    code = compile(source, "m.py", "exec", dont_inherit=True)

    from_code = _code_rewrite.rewrite_code(code, source, "m.py", lambda _: _level(FULL), "m_k").sites
    from_tree = rewrite_tree(ast.parse(source), "m.py", lambda _: _level(FULL), "m_k", source=source).sites

    assert Counter(from_code) == Counter(from_tree)


@needs_pass
def test_a_function_the_compiler_drops_as_unreachable_gets_no_site() -> None:
    """The one known difference: the ``ast`` rewrite also describes a function whose ``def``
    can never run, which the compiler leaves out."""
    source = "def f():\n    return 1\n    def never():\n        pass\n"
    code = compile(source, "m.py", "exec", dont_inherit=True)

    from_code = _code_rewrite.rewrite_code(code, source, "m.py", lambda _: _level(FULL), "m_k").sites
    from_tree = rewrite_tree(ast.parse(source), "m.py", lambda _: _level(FULL), "m_k", source=source).sites

    assert [s.qualname for s in from_code] == ["f"]
    assert [s.qualname for s in from_tree] == ["f.<locals>.never", "f"]


@needs_pass
@pytest.mark.skipif(not BYTECODE, reason="this run is the ast rewrite's")
def test_selected_modules_go_through_the_bytecode_rewrite(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    rewritten: list[str] = []
    rewrite_code = _code_rewrite.rewrite_code

    def spy(*args: object, **kwargs: object) -> _code_rewrite.CodeRewrite:
        rewritten.append(str(args[2]))
        return rewrite_code(*args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(_code_rewrite, "rewrite_code", spy)
    with recording() as rec:
        module = import_source(tmp_path, "def double(x):\n    return 2 * x\n", name="doubling")
        assert module.double(21) == 42

    assert rewritten == [str((tmp_path / "doubling.py").absolute())]
    assert [s.name for s in rec.spans()] == ["double"]


def _extended_args(code: CodeType) -> int:
    function = next(c for c in code.co_consts if isinstance(c, CodeType))
    return [i.opname for i in dis.get_instructions(function)].count("EXTENDED_ARG")


@needs_pass
def test_a_jump_that_outgrows_its_argument_is_re_aimed(tmp_path: Path) -> None:
    """The calls added to a loop's returns push its backward jump past 255 code units: the jump
    gains an ``EXTENDED_ARG`` and everything after it moves."""
    body = "\n".join(f"        if x == {i}:\n            return {i}" for i in range(15))
    source = f"def find(items):\n    for x in items:\n{body}\n    return -1\n"
    code = compile(source, "m.py", "exec", dont_inherit=True)
    rewritten = _code_rewrite.rewrite_code(code, source, "m.py", lambda _: _level(FULL), "m_k").code
    assert _extended_args(code) == 0 < _extended_args(rewritten)

    with recording() as rec:
        module = import_source(tmp_path, source, name="long_loop")
        assert [module.find([14]), module.find([5, 7]), module.find([100])] == [14, 5, -1]

    assert [dict(s.attributes or {}).get("execscope.return") for s in rec.spans()] == ["14", "5", "-1"]


def test_returning_none_is_recorded_only_where_the_source_says_so(tmp_path: Path) -> None:
    source = textwrap.dedent(
        """\
        def spelled(x):
            return None

        def bare(x):
            if x:
                return
            x += 1

        def ends(x):
            x += 1
        """
    )
    with recording() as rec:
        module = import_source(tmp_path, source, name="nones")
        module.spelled(1), module.bare(1), module.bare(0), module.ends(1)

    returned = [(s.name, dict(s.attributes or {}).get("execscope.return")) for s in rec.spans()]
    assert returned == [("spelled", "None"), ("bare", None), ("bare", None), ("ends", None)]


@pytest.mark.skipif(os.environ.get("CI") != "true", reason="only CI must have a compiler")
def test_in_ci_the_bytecode_pass_was_compiled() -> None:
    assert _code_rewrite.AVAILABLE, "execscope.autotrace._bytecode_speedups was not compiled or does not load"


@needs_pass
@pytest.mark.skipif(not BYTECODE, reason="this run is the ast rewrite's already")
@pytest.mark.skipif(not ACCELERATED, reason="the Python core's run: the main run starts the ast rewrite's")
def test_the_whole_suite_passes_on_the_ast_rewrite_too() -> None:
    assert_suite_passes_in_a_child(EXECSCOPE_AUTOTRACE_BYTECODE="false")
