"""The auto-instrumentor (``execscope.autotrace``).

An import hook rewrites the application's own modules (or those the plan and settings
select) so that each selected function records a span with its arguments, return value,
exception and, for stateful objects, the change of their state. ``install`` is called by the
distro at start-up; ``rewrite_source`` and ``rewrite_bytecode`` show what a module becomes;
``flush`` hands recorded calls to the span processors now (tests, short scripts). The rewrite is
described in ``_code_rewrite`` and ``_bytecode`` (of the compiled code) and ``_rewriter`` (of the
``ast`` tree), the per-call recording in ``_runtime``.
"""

from __future__ import annotations

import ast
import dis
import io
from pathlib import Path

from execscope.autotrace import _code_rewrite
from execscope.autotrace._hook import is_rewritten
from execscope.autotrace._install import (
    active_finder,
    install,
    load_configured_plan,
    selection_from,
    uninstall,
)
from execscope.autotrace._recorder import RECORDER, RecorderStats
from execscope.autotrace._rewriter import PLUMBING_METHODS, RewriteResult, module_key, rewrite_tree
from execscope.autotrace._runtime import sites_of
from execscope.autotrace._selection import default_roots
from execscope.settings import Settings, get_settings


def flush() -> int:
    """Hand every recorded call waiting in the queue to the span processors; returns how many."""
    return RECORDER.flush()


def stats() -> RecorderStats:
    """Counters of recorded, exported and dropped calls."""
    return RECORDER.stats


def rewrite_file(
    path: str | Path, module: str | None = None, settings: Settings | None = None
) -> RewriteResult:
    """The rewrite of one source file as the import hook would do it (every function selected
    unless the plan or ``autotrace_level`` say otherwise)."""
    settings = settings or get_settings().settings
    filename = str(Path(path).resolve())
    module_name = module or Path(path).stem
    selection = selection_from(settings, load_configured_plan(settings), default_roots(filename))
    source = Path(path).read_text(encoding="utf-8")
    tree = ast.parse(source, filename)
    return rewrite_tree(
        tree,
        filename,
        lambda qualname: selection.decide(module_name, qualname, True),
        module_key(module_name, source),
    )


def rewrite_source(path: str | Path, module: str | None = None, settings: Settings | None = None) -> str:
    """The rewritten module as Python source (comments are not kept): the ``ast`` rewrite's form,
    which the bytecode rewrite makes of the compiled code (see :func:`rewrite_bytecode`)."""
    return ast.unparse(rewrite_file(path, module, settings).tree)


def rewrite_bytecode(path: str | Path, module: str | None = None, settings: Settings | None = None) -> str:
    """The rewritten module's code as the bytecode rewrite makes it, disassembled (``dis``);
    raises ``RuntimeError`` where that rewrite is not available (then the ``ast`` one runs)."""
    settings = settings or get_settings().settings
    filename = str(Path(path).resolve())
    module_name = module or Path(path).stem
    selection = selection_from(settings, load_configured_plan(settings), default_roots(filename))
    source = Path(path).read_text(encoding="utf-8")
    code = compile(source, filename, "exec", dont_inherit=True)
    rewritten = _code_rewrite.rewrite_code(
        code,
        source,
        filename,
        lambda qualname: selection.decide(module_name, qualname, True),
        module_key(module_name, source),
    ).code
    out = io.StringIO()
    dis.dis(rewritten, file=out)
    return out.getvalue()


__all__ = [
    "PLUMBING_METHODS",
    "RecorderStats",
    "active_finder",
    "flush",
    "install",
    "is_rewritten",
    "rewrite_bytecode",
    "rewrite_file",
    "rewrite_source",
    "sites_of",
    "stats",
    "uninstall",
]
