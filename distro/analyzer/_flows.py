"""Building the message-flow graph: who produces to and consumes from what.

Nodes are code units and the things messages travel through (queues, pub/sub channels and
patterns, task names, HTTP routes); edges carry the verb. Literal channel names let a
``publish("orders.created")`` meet the ``psubscribe("orders.*")`` that receives it.
"""

from __future__ import annotations

from fnmatch import fnmatchcase

from ._http import http_call, route_matches
from ._messaging import MessageOp
from ._model import FlowEdge, FlowGraph, FlowNode, Route
from ._sites import ProjectFacts

_PRODUCE_VERB = {
    "pubsub": "publish",
    "stream": "send",
    "queue": "put",
    "task": "enqueue",
    "pattern": "publish",
}
_CONSUME_VERB = {
    "pubsub": "subscribe",
    "stream": "poll",
    "queue": "get",
    "pattern": "psubscribe",
    "task": "get",
}


class _Builder:
    def __init__(self) -> None:
        self.nodes: dict[str, FlowNode] = {}
        self.edges: set[FlowEdge] = set()

    def node(self, node_id: str, kind: str, label: str) -> str:
        self.nodes.setdefault(node_id, FlowNode(node_id, kind, label))
        return node_id

    def edge(self, source: str, target: str, kind: str, path: str, line: int, detail: str) -> None:
        self.edges.add(FlowEdge(source, target, kind, path, line, detail))


def _channel_node(builder: _Builder, op: MessageOp, facts: ProjectFacts) -> str:
    if op.kind == "task":
        if op.channel in facts.by_name:
            return builder.node(op.channel, "unit", op.channel)
        return builder.node(f"task_name:{op.channel}", "task_name", op.channel)
    if op.kind == "queue":
        return builder.node(f"queue:{op.channel}", "queue", op.channel)
    if op.kind == "pattern":
        return builder.node(f"pattern:{op.channel}", "pattern", op.channel)
    return builder.node(f"channel:{op.channel}", "channel", op.channel)


def build_flows(facts: ProjectFacts, ops: list[MessageOp], routes: list[Route]) -> FlowGraph:
    builder = _Builder()
    for op in ops:
        if op.channel == "?":
            continue  # channel not known statically: the role is recorded, but no edge to guess at
        unit = op.call.unit
        me = builder.node(unit.name, "unit", unit.name)
        channel = _channel_node(builder, op, facts)
        if op.direction == "produce":
            builder.edge(me, channel, _PRODUCE_VERB[op.kind], unit.path, op.call.line, op.detail)
        else:
            builder.edge(channel, me, _CONSUME_VERB[op.kind], unit.path, op.call.line, op.detail)
    channels = [n for n in builder.nodes.values() if n.kind == "channel"]
    patterns = [n for n in builder.nodes.values() if n.kind == "pattern"]
    for channel_node in channels:
        for pattern in patterns:
            if fnmatchcase(channel_node.label, pattern.label):
                detail = f"{channel_node.label} ~ {pattern.label}"
                builder.edge(channel_node.id, pattern.id, "matches", "", 0, detail)
    for unit_facts in facts.units:
        for call in unit_facts.calls:
            found = http_call(facts.index, call)
            if found is None:
                continue
            for route in routes:
                if route_matches(route, found.method, found.path):
                    unit = call.unit
                    me = builder.node(unit.name, "unit", unit.name)
                    label = f"{route.method} {route.path}"
                    route_id = builder.node(f"route:{label}", "route", label)
                    builder.edge(me, route_id, "http", unit.path, call.line, f"{found.method} {found.path}")
                    handler = builder.node(route.handler, "unit", route.handler)
                    builder.edge(route_id, handler, "routes", "", route.line, route.handler)
    return FlowGraph(tuple(sorted(builder.nodes.values())), tuple(sorted(builder.edges)))
