"""The role and message-flow graph as a picture: SVG, or an HTML page around it.

Graphviz would lay this out, but it is a system program that cannot be installed from PyPI,
and ``execscope analyze --graph`` must work wherever execscope is installed. A layered layout
(flows left to right, longest-path layers, one barycentre pass against crossings) is enough
for the graphs a service produces and is a few dozen lines. Units with a role but no flow
are drawn in a grid below, grouped by role. Output is deterministic for the same analysis.
"""

from __future__ import annotations

import html
from collections import defaultdict
from dataclasses import dataclass

from ._model import Analysis, Role
from ._render import ROLE_COLOURS

_CHAR_W = 7.6
_BOX_H = 36.0
_LAYER_GAP = 90.0
_ROW_GAP = 18.0
_MARGIN = 20.0
_SHAPE_FILL = {
    "queue": "#e8f1fb",
    "channel": "#fdf0e0",
    "pattern": "#fdf0e0",
    "route": "#eef7ee",
    "task_name": "#f3eefa",
}


@dataclass
class _Box:
    id: str
    title: str
    subtitle: str
    fill: str
    x: float = 0.0
    y: float = 0.0

    @property
    def width(self) -> float:
        return max(len(self.title), len(self.subtitle)) * _CHAR_W + 16


def _boxes(analysis: Analysis) -> tuple[dict[str, _Box], dict[str, list[Role]]]:
    roles: dict[str, set[Role]] = defaultdict(set)
    for recognition in analysis.recognitions:
        if recognition.role != "library":
            roles[recognition.name].add(recognition.role)
    boxes: dict[str, _Box] = {}
    for name, unit_roles in roles.items():
        ordered = sorted(unit_roles)
        boxes[name] = _Box(name, name, ", ".join(ordered), ROLE_COLOURS[ordered[0]])
    for node in analysis.flows.nodes:
        if node.id not in boxes:
            fill = _SHAPE_FILL.get(node.kind, "#ffffff")
            boxes[node.id] = _Box(node.id, node.label, node.kind if node.kind != "unit" else "", fill)
    return boxes, {name: sorted(r) for name, r in roles.items()}


def _layers(nodes: list[str], edges: list[tuple[str, str]]) -> dict[str, int]:
    """Longest-path layering; edges closing a cycle (found by depth-first search) are ignored."""
    successors: dict[str, list[str]] = defaultdict(list)
    for source, target in edges:
        successors[source].append(target)
    state: dict[str, int] = {}
    forward: list[tuple[str, str]] = []

    def visit(start: str) -> None:
        stack = [(start, iter(sorted(successors[start])))]
        state[start] = 1
        while stack:
            node, children = stack[-1]
            child = next(children, None)
            if child is None:
                state[node] = 2
                stack.pop()
                continue
            if state.get(child) == 1:
                continue  # back edge: part of a cycle
            forward.append((node, child))
            if child not in state:
                state[child] = 1
                stack.append((child, iter(sorted(successors[child]))))

    for node in sorted(nodes):
        if node not in state:
            visit(node)
    layer = dict.fromkeys(nodes, 0)
    for _ in range(len(nodes)):
        changed = False
        for source, target in forward:
            if layer[target] < layer[source] + 1:
                layer[target] = layer[source] + 1
                changed = True
        if not changed:
            break
    return layer


def render_graph_svg(analysis: Analysis) -> str:
    boxes, roles = _boxes(analysis)
    edges = sorted(
        {
            (e.source, e.target, e.kind)
            for e in analysis.flows.edges
            if e.source in boxes and e.target in boxes
        }
    )
    connected = sorted({n for s, t, _ in edges for n in (s, t)})
    layer_of = _layers(connected, [(s, t) for s, t, _ in edges])
    columns: dict[int, list[str]] = defaultdict(list)
    for node in connected:
        columns[layer_of[node]].append(node)
    x = _MARGIN
    order: dict[str, float] = {}
    bottom = _MARGIN
    for index in sorted(columns):
        members = columns[index]
        preds = {n: [order[s] for s, t, _ in edges if t == n and s in order] for n in members}
        members.sort(key=lambda n: (sum(preds[n]) / len(preds[n]) if preds[n] else 0.0, n))
        width = max(boxes[n].width for n in members)
        for row, node in enumerate(members):
            box = boxes[node]
            box.x, box.y = x, _MARGIN + row * (_BOX_H + _ROW_GAP)
            order[node] = float(row)
            bottom = max(bottom, box.y + _BOX_H)
        x += width + _LAYER_GAP
    right = x
    isolated = sorted(name for name in roles if name not in layer_of)
    by_role: dict[str, list[str]] = defaultdict(list)
    for name in isolated:
        by_role[roles[name][0]].append(name)
    y = bottom + 2 * _ROW_GAP
    grid_x = _MARGIN
    grid_bottom = y
    for role in sorted(by_role):
        column = by_role[role]
        width = max(boxes[n].width for n in column)
        for row, name in enumerate(column):
            boxes[name].x, boxes[name].y = grid_x, y + row * (_BOX_H + 8)
            grid_bottom = max(grid_bottom, boxes[name].y + _BOX_H)
        grid_x += width + 30
    width = max(right, grid_x) + _MARGIN
    height = max(grid_bottom, bottom) + _MARGIN
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width:.0f}" height="{height:.0f}" '
        f'viewBox="0 0 {width:.0f} {height:.0f}" font-family="Helvetica, Arial, sans-serif" font-size="11">',
        '<defs><marker id="arrow" viewBox="0 0 10 10" refX="10" refY="5" markerWidth="7" markerHeight="7" '
        'orient="auto-start-reverse"><path d="M 0 0 L 10 5 L 0 10 z" fill="#555"/></marker></defs>',
    ]
    for source, target, kind in edges:
        a, b = boxes[source], boxes[target]
        x1, y1 = a.x + a.width, a.y + _BOX_H / 2
        x2, y2 = b.x, b.y + _BOX_H / 2
        if x2 <= x1:  # same or earlier layer: loop around below
            x1, x2 = a.x + a.width / 2, b.x + b.width / 2
            y1, y2 = a.y + _BOX_H, b.y + _BOX_H
            path = f"M {x1:.1f} {y1:.1f} C {x1:.1f} {y1 + 40:.1f}, {x2:.1f} {y2 + 40:.1f}, {x2:.1f} {y2:.1f}"
            label_x, label_y = (x1 + x2) / 2, max(y1, y2) + 34
        else:
            middle = (x1 + x2) / 2
            path = f"M {x1:.1f} {y1:.1f} C {middle:.1f} {y1:.1f}, {middle:.1f} {y2:.1f}, {x2:.1f} {y2:.1f}"
            label_x, label_y = middle, (y1 + y2) / 2 - 3
        parts.append(f'<path d="{path}" fill="none" stroke="#555" marker-end="url(#arrow)"/>')
        parts.append(
            f'<text x="{label_x:.1f}" y="{label_y:.1f}" text-anchor="middle" fill="#333">'
            f"{html.escape(kind)}</text>"
        )
    for name in [*connected, *isolated]:
        box = boxes[name]
        parts.append(
            f'<g><rect x="{box.x:.1f}" y="{box.y:.1f}" width="{box.width:.1f}" height="{_BOX_H:.0f}" rx="5" '
            f'fill="{box.fill}" stroke="#444"/>'
            f'<text x="{box.x + 8:.1f}" y="{box.y + 15:.1f}" font-weight="bold">'
            f"{html.escape(box.title)}</text>"
            f'<text x="{box.x + 8:.1f}" y="{box.y + 29:.1f}" fill="#444">'
            f"{html.escape(box.subtitle)}</text></g>"
        )
    parts.append("</svg>")
    return "\n".join(parts) + "\n"


def render_graph_html(analysis: Analysis) -> str:
    """A self-contained page: the graph, a colour legend, and the recognitions with their evidence."""
    legend = "".join(
        f'<span class="key" style="background:{colour}">{html.escape(role)}</span>'
        for role, colour in sorted(ROLE_COLOURS.items())
    )
    rows = "".join(
        f"<tr><td>{html.escape(r.role)}</td><td><code>{html.escape(r.name)}</code></td><td>{r.confidence:.2f}</td>"
        f"<td>{html.escape('; '.join(f'line {e.line}: {e.detail}' for e in r.evidence))}</td></tr>"
        for r in sorted(analysis.recognitions, key=lambda r: (r.role, r.name))
        if r.role != "library"
    )
    title = html.escape(f"execscope analysis of {analysis.root}")
    return (
        f"<!doctype html>\n<html><head><meta charset='utf-8'><title>{title}</title><style>"
        "body{font-family:Helvetica,Arial,sans-serif;margin:24px} .key{padding:2px 8px;margin-right:6px;"
        "border:1px solid #444;border-radius:4px} table{border-collapse:collapse;margin-top:16px}"
        "td,th{border:1px solid #ccc;padding:4px 8px;text-align:left;font-size:13px}"
        f"</style></head><body><h1>{title}</h1><p>{legend}</p>\n{render_graph_svg(analysis)}"
        f"<table><tr><th>role</th><th>name</th><th>confidence</th><th>evidence</th></tr>{rows}</table>"
        "</body></html>\n"
    )
