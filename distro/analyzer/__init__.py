"""Static analysis of a Python project to decide what to instrument (``execscope.analyzer``).

Everything here reads source with ``ast`` only: nothing is imported or executed, so it is
safe on any tree, including half-broken ones. ``analyze_project`` finds roles (web entry
points, tasks, actors, stateful classes, DB access, producers/consumers, CLIs, library
code) with evidence, per-function complexity, message flows and lifecycle events;
``build_plan`` turns that into an ``execscope.plan.Plan``.
"""

from __future__ import annotations

import os
from pathlib import Path

from ._callgraph import build_call_graph
from ._complexity import function_metrics
from ._flows import build_flows
from ._lifecycle import lifecycle_events
from ._loader import load_project
from ._model import (
    ROLES,
    Analysis,
    Evidence,
    FlowEdge,
    FlowGraph,
    FlowNode,
    FunctionMetrics,
    LifecycleEvent,
    Recognition,
    Role,
    Route,
    Skipped,
)
from ._planner import build_plan
from ._render import render_graph_dot
from ._resolve import ProjectIndex
from ._roles import recognise_roles
from ._sites import collect_facts
from ._symbols import build_module_index

__all__ = [
    "ROLES",
    "Analysis",
    "Evidence",
    "FlowEdge",
    "FlowGraph",
    "FlowNode",
    "FunctionMetrics",
    "LifecycleEvent",
    "Recognition",
    "Role",
    "Route",
    "Skipped",
    "analyze_project",
    "build_plan",
    "render_graph_dot",
]


def analyze_project(path: str | os.PathLike[str]) -> Analysis:
    """Analyse the project tree (or single file) at ``path``.

    Unparsable, unreadable, huge and vendored files are listed in ``Analysis.skipped``;
    they never abort the analysis. Raises ``FileNotFoundError`` if ``path`` does not exist.
    """
    root = Path(path)
    if not root.exists():
        raise FileNotFoundError(f"no such project: {os.fspath(path)}")
    sources, skipped = load_project(root)
    index = ProjectIndex(build_module_index(source) for source in sources)
    facts = collect_facts(index)
    roles = recognise_roles(facts)
    graph = build_call_graph(facts)
    functions = tuple(
        function_metrics(index, unit_facts, roles.models, graph)
        for unit_facts in facts.units
        if unit_facts.unit.kind == "function"
    )
    return Analysis(
        root=root.as_posix(),
        modules=tuple(sorted(index.modules)),
        recognitions=roles.recognitions,
        functions=tuple(sorted(functions, key=lambda f: (f.module, f.line, f.qualname))),
        routes=tuple(roles.routes),
        flows=build_flows(facts, roles.message_ops, roles.routes),
        lifecycle=tuple(lifecycle_events(facts)),
        skipped=tuple(skipped),
    )
