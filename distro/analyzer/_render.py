"""Graphviz DOT rendering of roles and message flows (text only; never runs graphviz).

DOT is the lowest common denominator for a quick picture of an unfamiliar service: paste
it into any viewer. Output is sorted so diffs between two analyses are meaningful.
"""

from __future__ import annotations

from collections import defaultdict
from typing import Final

from ._model import Analysis, Role

_SHAPES: Final = {
    "queue": "cylinder",
    "channel": "hexagon",
    "pattern": "octagon",
    "route": "note",
    "task_name": "tab",
}
ROLE_COLOURS: Final[dict[Role, str]] = {
    "web_entry": "lightblue",
    "task": "khaki",
    "actor": "salmon",
    "stateful": "lightpink",
    "db": "lightgrey",
    "producer": "palegreen",
    "consumer": "palegreen",
    "cli": "wheat",
    "library": "white",
}


def _quote(text: str) -> str:
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n") + '"'


def render_graph_dot(analysis: Analysis) -> str:
    """A ``digraph`` with one node per recognised unit (coloured by first role) and flow edges."""
    roles: dict[str, set[Role]] = defaultdict(set)
    for rec in analysis.recognitions:
        if rec.role != "library":
            roles[rec.name].add(rec.role)
    lines = ["digraph execscope {", "  rankdir=LR;", '  node [style=filled, fontname="Helvetica"];']
    flow_nodes = {n.id: n for n in analysis.flows.nodes}
    for name in sorted(set(roles) | {i for i, n in flow_nodes.items() if n.kind == "unit"}):
        unit_roles = sorted(roles.get(name, set()))
        colour = ROLE_COLOURS[unit_roles[0]] if unit_roles else "white"
        label = name + ("\n[" + ", ".join(unit_roles) + "]" if unit_roles else "")
        lines.append(f"  {_quote(name)} [shape=box, fillcolor={colour}, label={_quote(label)}];")
    for node_id in sorted(flow_nodes):
        node = flow_nodes[node_id]
        if node.kind != "unit":
            shape = _SHAPES.get(node.kind, "ellipse")
            lines.append(f"  {_quote(node.id)} [shape={shape}, fillcolor=white, label={_quote(node.label)}];")
    for edge in analysis.flows.edges:
        lines.append(f"  {_quote(edge.source)} -> {_quote(edge.target)} [label={_quote(edge.kind)}];")
    lines.append("}")
    return "\n".join(lines) + "\n"
