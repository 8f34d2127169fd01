"""Per-function size and shape: cyclomatic complexity, nesting, loops, recursion, I/O.

These decide how deep a function is worth instrumenting: a tiny, I/O-free helper called in
a loop costs more to trace than it explains, while a branchy function doing I/O is where
timings and arguments pay off.
"""

from __future__ import annotations

import ast
from typing import Final

from ._callgraph import CallGraph
from ._iokinds import io_kind
from ._model import FunctionMetrics
from ._resolve import ProjectIndex
from ._rules_state import SETUP_METHODS, state_mutation
from ._sites import UnitFacts
from ._symbols import walk_body

_BRANCHES: Final = (ast.If, ast.For, ast.AsyncFor, ast.While, ast.IfExp, ast.ExceptHandler, ast.match_case)
_BLOCKS: Final = (ast.If, ast.For, ast.AsyncFor, ast.While, ast.With, ast.AsyncWith, ast.Try, ast.Match)
_LOOPS: Final = (ast.For, ast.AsyncFor, ast.While, ast.comprehension)


def cyclomatic(nodes: list[ast.AST]) -> int:
    """McCabe complexity: 1 + decision points (boolean operators count once per extra operand)."""
    score = 1
    for node in nodes:
        if isinstance(node, _BRANCHES):
            score += 1
        elif isinstance(node, ast.BoolOp):
            score += len(node.values) - 1
        elif isinstance(node, ast.comprehension):
            score += 1 + len(node.ifs)
    return score


def max_nesting(body: list[ast.stmt], depth: int = 0) -> int:
    deepest = depth
    for stmt in body:
        if isinstance(stmt, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            continue
        if isinstance(stmt, (*_BLOCKS, getattr(ast, "TryStar", ast.Try))):
            children: list[list[ast.stmt]] = []
            for name in ("body", "orelse", "finalbody"):
                block = getattr(stmt, name, None)
                if isinstance(block, list):
                    children.append(block)
            children += [h.body for h in getattr(stmt, "handlers", [])]
            children += [c.body for c in getattr(stmt, "cases", [])]
            for block in children:
                deepest = max(deepest, max_nesting(block, depth + 1))
    return deepest


def function_metrics(
    index: ProjectIndex, facts: UnitFacts, models: set[str], graph: CallGraph
) -> FunctionMetrics:
    unit = facts.unit
    node = unit.node
    assert isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef))
    nodes = walk_body(node.body)
    io = sorted({kind for call in facts.calls if (kind := io_kind(index, call, models))})
    recursive = any(call.func == unit.name for call in facts.calls)
    return FunctionMetrics(
        module=unit.module,
        qualname=unit.qualname,
        path=unit.path,
        line=unit.line,
        end_line=unit.end_line,
        is_async=unit.is_async,
        cyclomatic=cyclomatic(nodes),
        max_nesting=max_nesting(node.body),
        lines=unit.end_line - unit.line + 1,
        statements=sum(1 for n in nodes if isinstance(n, ast.stmt)),
        loops=sum(1 for n in nodes if isinstance(n, _LOOPS)),
        recursive=recursive,
        writes_state=unit.function is not None
        and unit.function.class_qualname is not None
        and node.name not in SETUP_METHODS
        and state_mutation(node) is not None,
        io=tuple(io),
        loop_call_sites=graph.loop_sites[unit.name],
        call_sites=graph.sites[unit.name],
        callees=tuple(sorted(graph.edges.get(unit.name, ()))),
    )
