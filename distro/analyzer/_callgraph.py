"""The project-internal call graph: who calls which project function, and from inside loops.

Used for two planner questions: is a function *hot* (called inside loops elsewhere), and is
it *on the request path* (reachable from a web entry point), which decides how much a
slow call there matters.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field

from ._sites import ProjectFacts


@dataclass
class CallGraph:
    edges: dict[str, set[str]] = field(default_factory=dict)  # caller unit name -> callee refs
    sites: Counter[str] = field(default_factory=Counter)  # callee ref -> call sites
    loop_sites: Counter[str] = field(default_factory=Counter)  # callee ref -> call sites inside loops


def build_call_graph(facts: ProjectFacts) -> CallGraph:
    graph = CallGraph()
    index = facts.index
    for unit_facts in facts.units:
        callees = graph.edges.setdefault(unit_facts.unit.name, set())
        for call in unit_facts.calls:
            if call.func is None or index.project_function(call.func) is None:
                continue
            callees.add(call.func)
            graph.sites[call.func] += 1
            if call.in_loop:
                graph.loop_sites[call.func] += 1
    return graph
