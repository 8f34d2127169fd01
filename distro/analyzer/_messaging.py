"""Classifying call sites as message operations (produce/consume) with their channel.

One classifier serves both the producer/consumer roles and the message-flow graph, so the
two can never disagree about what counts as a message. Known client libraries (Redis,
Kafka, AMQP, MQTT, NATS, ZeroMQ, stdlib queues) are recognised by origin with high
confidence; unresolved receivers only count when the call shape is unambiguous (a literal
channel name, an awaited ``put``), at lower confidence.
"""

from __future__ import annotations

import ast
import re
from dataclasses import dataclass
from typing import Final, Literal

from ._names import instance_method, is_queue_instance, queue_like_name, short, top_package, variants
from ._resolve import ProjectIndex
from ._rules_tasks import rq_enqueued
from ._sites import CallSite

Direction = Literal["produce", "consume"]

MESSAGING_PACKAGES: Final = frozenset(
    {
        "redis",
        "aioredis",
        "kafka",
        "aiokafka",
        "confluent_kafka",
        "pika",
        "aio_pika",
        "aiormq",
        "paho",
        "nats",
    }
    | {"zmq", "kombu", "aiomqtt", "asyncio_mqtt", "gmqtt"}
)
PUBLISH: Final = frozenset({"publish", "basic_publish", "publish_message"})
SUBSCRIBE: Final = frozenset({"subscribe", "basic_consume", "consume", "listen", "get_message"})
STREAM_SEND: Final = frozenset(
    {"send", "send_and_wait", "produce", "xadd", "send_json", "send_string", "send_multipart"}
)
STREAM_RECV: Final = frozenset(
    {"poll", "getmany", "getone", "xread", "xreadgroup", "recv", "recv_json", "recv_string"}
)
REDIS_LIST_PUSH: Final = frozenset({"lpush", "rpush"})
REDIS_LIST_POP: Final = frozenset({"blpop", "brpop", "brpoplpush", "lpop", "rpop"})
QUEUE_PUT: Final = frozenset({"put", "put_nowait"})
QUEUE_GET: Final = frozenset({"get", "get_nowait"})
CONSUMER_CLASSES: Final = frozenset(
    {"kafka.KafkaConsumer", "aiokafka.AIOKafkaConsumer", "confluent_kafka.Consumer"}
)
PRODUCER_CLASSES: Final = frozenset(
    {"kafka.KafkaProducer", "aiokafka.AIOKafkaProducer", "confluent_kafka.Producer"}
)
# Celery canvas primitives: ``group(...).apply_async()``, ``chain(...).delay()``, ``chord(h)(body)``.
CANVAS_CLASSES: Final = frozenset(
    {"celery.group", "celery.chain", "celery.chord", "celery.signature", "celery.Signature"}
    | {"celery.chunks", "celery.xmap", "celery.xstarmap"}
)
SIGNATURE_METHODS: Final = frozenset({"s", "si", "signature", "subtask", "map", "starmap", "chunks"})
_BUS_NAME: Final = re.compile(
    r"(redis|broker|bus|pubsub|publisher|subscriber|channel|exchange|mqtt|nats|nc|ps)$", re.I
)


@dataclass(frozen=True)
class MessageOp:
    call: CallSite
    direction: Direction
    kind: str  # "pubsub", "pattern", "queue", "stream", "task"
    channel: str  # literal channel/topic/pattern, queue identity, or task reference
    confidence: float
    detail: str


def _known_messaging(index: ProjectIndex, origin: str | None) -> bool:
    return any(
        top_package(v) in MESSAGING_PACKAGES or v.startswith("google.cloud.pubsub")
        for v in variants(index, origin)
    )


def _unresolved(index: ProjectIndex, call: CallSite) -> bool:
    """Receiver we know nothing about (so only the call's shape can speak)."""
    if call.func and index.split_ref(call.func) is not None:
        return False  # a call into project code, e.g. EventBus.publish: not a client library
    receiver = call.receiver
    return receiver is None or (
        ":" in receiver and "(" in receiver and not is_queue_instance(index, receiver)
    )


def _literal(
    index: ProjectIndex, call: CallSite, position: int = 0, keywords: tuple[str, ...] = ()
) -> str | None:
    args = call.node.args
    if len(args) > position:
        return index.const_str(args[position], call.scope)
    for kw in call.node.keywords:
        if kw.arg in keywords:
            return index.const_str(kw.value, call.scope)
    return None


def queue_identity(index: ProjectIndex, call: CallSite) -> str:
    """A stable name for the queue object a call uses, so producers and consumers can meet."""
    text = call.receiver_text or "<queue>"
    unit = call.unit
    receiver = call.node.func.value if isinstance(call.node.func, ast.Attribute) else None
    if isinstance(receiver, ast.Attribute):
        owner = index.origin(receiver.value, call.scope)  # greeter.inbox where greeter = Greeter()
        if owner and owner.endswith("()") and index.project_class(owner[:-2]) is not None:
            return f"{owner[:-2]}.{receiver.attr}"
    if text.startswith("self.") and unit.function and unit.function.class_qualname:
        return f"{unit.module}:{unit.function.class_qualname}.{text[5:]}"
    head = text.split(".", 1)[0]
    found = index.value_of(head, call.scope)
    if found is not None and found[1].function is None:
        return f"{found[1].module.name}.{text}"
    if found is not None:
        return f"{unit.name}.{text}"
    return f"{unit.name}({text})" if call.scope.bindings.get(head) else f"{unit.module}.{text}"


def _canvas(index: ProjectIndex, origin: str | None, tasks: dict[str, str]) -> str | None:
    """The task or canvas primitive behind a Celery signature/canvas object, else None."""
    for v in variants(index, origin):
        if not v.endswith("()"):
            continue
        head = v[:-2]
        if short(head) in CANVAS_CLASSES:
            return short(head)
        base, _, method = head.rpartition(".")
        if method in SIGNATURE_METHODS and base in tasks.values():
            return base
    return None


def _bound_self(call: CallSite, tasks: dict[str, str]) -> bool:
    """``self.replace(sig)`` / ``self.retry()`` inside a ``bind=True`` task: both enqueue a message."""
    node = call.unit.node
    if call.unit.name not in tasks.values() or not isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
        return False
    params = node.args.posonlyargs + node.args.args
    return bool(params) and call.receiver_text == params[0].arg


def _task_op(index: ProjectIndex, call: CallSite, tasks: dict[str, str]) -> MessageOp | None:
    method = call.method
    enqueued = rq_enqueued(index, call)
    if enqueued is not None:
        return MessageOp(call, "produce", "task", enqueued[0], enqueued[1], f"RQ {method}({enqueued[0]})")
    if method in ("delay", "apply_async"):
        canvas = _canvas(index, call.receiver, tasks)
        if canvas is not None:
            return MessageOp(call, "produce", "task", canvas, 0.9, f".{method}() on {canvas} signature")
    if method in ("replace", "retry") and _bound_self(call, tasks):
        return MessageOp(call, "produce", "task", call.unit.name, 0.85, f"self.{method}() in a bound task")
    if method is None and call.func and _canvas(index, call.func, tasks) == "celery.chord":
        return MessageOp(call, "produce", "task", "celery.chord", 0.9, "chord(header)(body)")
    if method in ("delay", "apply_async", "send", "send_with_options") and call.receiver:
        if call.receiver in tasks.values():
            return MessageOp(
                call, "produce", "task", call.receiver, 0.95, f".{method}() on task {call.receiver}"
            )
        if method == "apply_async" and _unresolved(index, call):
            return MessageOp(call, "produce", "task", call.receiver_text or "?", 0.7, ".apply_async()")
    if method == "send_task":
        is_celery = any(
            instance_method(v) == ("celery.Celery", "send_task") for v in variants(index, call.func)
        )
        name = _literal(index, call, 0, ("name",))
        if is_celery or (name and _unresolved(index, call)):
            target = tasks.get(name or "", name or "?")
            return MessageOp(
                call, "produce", "task", target, 0.95 if is_celery else 0.7, f"send_task({name!r})"
            )
    return None


def _library_op(index: ProjectIndex, call: CallSite) -> MessageOp | None:
    method = call.method or ""
    for cls in CONSUMER_CLASSES | PRODUCER_CLASSES:
        if call.func and short(call.func) == cls:
            direction: Direction = "consume" if cls in CONSUMER_CLASSES else "produce"
            topic = _literal(index, call, 0, ("topic",)) or "?"
            return MessageOp(call, direction, "stream", topic, 0.9, f"{cls}(...)")
    if not _known_messaging(index, call.receiver):
        return None
    if method in PUBLISH | STREAM_SEND:
        channel = _literal(index, call, 0, ("channel", "topic", "routing_key", "subject", "exchange")) or "?"
        kind = "pubsub" if method in PUBLISH else "stream"
        return MessageOp(call, "produce", kind, channel, 0.95, f"{method}() on {call.receiver}")
    if method in SUBSCRIBE | {"psubscribe"} | STREAM_RECV:
        channel = _literal(index, call, 0, ("channel", "topic", "queue", "subject")) or "?"
        kind = "pattern" if method == "psubscribe" else "pubsub" if method in SUBSCRIBE else "stream"
        return MessageOp(call, "consume", kind, channel, 0.95, f"{method}() on {call.receiver}")
    if method in REDIS_LIST_PUSH | REDIS_LIST_POP:
        key = _literal(index, call, 0) or "?"
        direction = "produce" if method in REDIS_LIST_PUSH else "consume"
        return MessageOp(call, direction, "queue", f"redis:{key}", 0.85, f"{method}() on {call.receiver}")
    return None


def _queue_op(index: ProjectIndex, call: CallSite) -> MessageOp | None:
    method = call.method or ""
    if method not in QUEUE_PUT | QUEUE_GET:
        return None
    if method in QUEUE_GET and (
        call.node.args or any(k.arg not in ("block", "timeout") for k in call.node.keywords)
    ):
        return None  # dict.get(key), cache.get(key): not a queue
    if method in QUEUE_PUT and not call.node.args:
        return None
    direction: Direction = "produce" if method in QUEUE_PUT else "consume"
    if is_queue_instance(index, call.receiver):
        confidence = 0.95
    elif _unresolved(index, call) and (call.awaited or queue_like_name(call.receiver_text)):
        confidence = 0.7
    else:
        return None
    return MessageOp(
        call, direction, "queue", queue_identity(index, call), confidence, f"{method}() on a queue"
    )


def _shaped_op(index: ProjectIndex, call: CallSite) -> MessageOp | None:
    """Unresolved receivers: only unmistakable shapes count."""
    method = call.method or ""
    if not _unresolved(index, call):
        return None
    args = call.node.args
    if method in PUBLISH and len(args) >= 2:
        channel = _literal(index, call, 0)
        if channel is not None or _BUS_NAME.search(call.receiver_text or ""):
            return MessageOp(call, "produce", "pubsub", channel or "?", 0.65, f"{method}(channel, message)")
    if method in ("subscribe", "psubscribe") and args:
        channels = [index.const_str(a, call.scope) for a in args]
        if all(c is not None for c in channels):
            kind = "pattern" if method == "psubscribe" else "pubsub"
            return MessageOp(call, "consume", kind, str(channels[0]), 0.65, f"{method}({channels[0]!r})")
    return None


def classify(index: ProjectIndex, call: CallSite, tasks: dict[str, str]) -> list[MessageOp]:
    """Message operations performed by ``call``; ``tasks`` maps task names to task refs.

    ``subscribe("a", "b")`` yields one op per literal channel so each becomes a graph edge.
    """
    op = _task_op(index, call, tasks) or _library_op(index, call) or _queue_op(index, call)
    op = op or _shaped_op(index, call)
    if op is None:
        return []
    if op.kind in ("pubsub", "pattern") and op.direction == "consume" and len(call.node.args) > 1:
        channels = [index.const_str(a, call.scope) for a in call.node.args]
        return [
            MessageOp(call, op.direction, op.kind, c, op.confidence, op.detail)
            for c in dict.fromkeys(channels)
            if c is not None
        ] or [op]
    return [op]
