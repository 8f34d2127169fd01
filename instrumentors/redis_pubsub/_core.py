"""What publish and receipt share, without I/O: the side key, the spans and the carried context.

The synchronous and asyncio wrappers (:mod:`._sync`, :mod:`._asyncio`) differ only in how they
talk to Redis; everything they decide is decided here, so both clients behave alike.
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from typing import Any, Final

from opentelemetry import baggage, propagate, trace
from opentelemetry import context as otel_context
from opentelemetry.context import Context
from opentelemetry.semconv._incubating.attributes.messaging_attributes import (
    MESSAGING_DESTINATION_NAME,
    MESSAGING_DESTINATION_TEMPLATE,
    MESSAGING_MESSAGE_BODY_SIZE,
    MESSAGING_OPERATION_NAME,
    MESSAGING_OPERATION_TYPE,
    MESSAGING_SYSTEM,
    MessagingOperationTypeValues,
)
from opentelemetry.trace import Link, SpanKind
from opentelemetry.util.types import AttributeValue

from execscope.attributes import MESSAGE
from execscope.instrumentors import _capture
from execscope.processors._correlation import BAGGAGE_KEY, current_correlation_id, valid_correlation_id

_logger = logging.getLogger(__name__)

#: Start of every side key: ``execscope:pubsub:<channel>:<sha256 of the payload, hex>``.
KEY_PREFIX: Final = b"execscope:pubsub:"
#: Lifetime of a side key: long enough for any live subscriber to read it, short enough that
#: keys of messages nobody received do not pile up.
KEY_TTL_SECONDS: Final = 60
#: ``messaging.system`` of these spans (semconv has no enumerated value for Redis).
SYSTEM: Final = "redis"

#: ``(channel, message)`` of a ``publish``/``spublish`` call.
Published = tuple[object, object]
#: ``Encoder.encode`` of the client: the bytes Redis stores or sends for a value.
Encode = Callable[[object], bytes]


@dataclass(frozen=True)
class Options:
    """What the wrappers need from the instrumentor and the settings, fixed at ``instrument()``."""

    tracer: trace.Tracer
    #: The ``redis_pubsub_context`` setting: write the side key on publish, read it on receipt.
    carry_context: bool
    #: Characters of the message kept in ``execscope.message`` (``0``: none).
    preview: int


@dataclass(frozen=True)
class Publication:
    """One ``PUBLISH``/``SPUBLISH`` about to go out: its span, and its side key if it gets one."""

    span_name: str
    attributes: dict[str, AttributeValue]
    key: bytes | None


@dataclass(frozen=True)
class Receipt:
    """One data message as it came off the subscribed connection, before redis-py parses it."""

    kind: str
    channel: object
    #: The subscription pattern that matched (``pmessage`` only).
    pattern: object
    data: object
    #: The payload's bytes, as the publisher sent them (None when they cannot be recovered).
    payload: bytes | None
    key: bytes | None


def context_key(channel: bytes, payload: bytes) -> bytes:
    """The side key of ``payload`` on ``channel``: the same on both ends without talking."""
    return b"".join((KEY_PREFIX, channel, b":", hashlib.sha256(payload).hexdigest().encode("ascii")))


def bind_publish(args: Sequence[Any], kwargs: Mapping[str, Any]) -> Published | None:
    """``(channel, message)`` of ``publish(channel, message)``/``spublish(shard_channel, message)``.

    None for a call that does not match: it goes through unchanged, to fail in redis-py itself.
    """
    values = list(args[:2])
    if not values:
        for name in ("channel", "shard_channel"):
            if name in kwargs:
                values.append(kwargs[name])
                break
    if len(values) == 1 and "message" in kwargs:
        values.append(kwargs["message"])
    if len(values) != 2:
        return None
    return values[0], values[1]


def publication(
    options: Options, encode: Encode, command: str, channel: object, message: object
) -> Publication:
    channel_bytes, payload = _encoded(encode, channel), _encoded(encode, message)
    attributes = _attributes(
        options, channel, payload, message, MessagingOperationTypeValues.SEND.value, command.lower()
    )
    key = None
    if options.carry_context and channel_bytes is not None and payload is not None:
        key = context_key(channel_bytes, payload)
    return Publication(f"{_text(channel)} publish", attributes, key)


@contextmanager
def publish_span(options: Options, published: Publication) -> Iterator[None]:
    """The PRODUCER span around the publish (current, so contrib's command span is its child)."""
    with options.tracer.start_as_current_span(
        published.span_name, kind=SpanKind.PRODUCER, attributes=published.attributes
    ):
        yield


def open_publish(
    scope: ExitStack, options: Options, encode: Encode, command: str, published: Published
) -> tuple[bytes, str] | None:
    """Enter the publish span on ``scope``; the side key and its value to write, if there is one."""
    planned = publication(options, encode, command, *published)
    scope.enter_context(publish_span(options, planned))
    if planned.key is None:
        return None
    document = carrier_document()
    return None if document is None else (planned.key, document)


def queue_publish(
    pipe: Any, write: tuple[bytes, str], command: str, args: Sequence[Any], kwargs: Mapping[str, Any]
) -> None:
    """``SET key context EX 60`` then the caller's own publish call, on a non-transactional
    pipeline: one round trip, and a failing ``SET`` does not hold the message back."""
    pipe.set(write[0], write[1], ex=KEY_TTL_SECONDS)
    getattr(pipe, command)(*args, **kwargs)


def carrier_document() -> str | None:
    """The current context as the global propagator writes it, as JSON; None when it writes nothing.

    Under execscope that is ``traceparent``, ``baggage`` (with the correlation id) and
    ``x-correlation-id``: what an HTTP request would carry.
    """
    carrier: dict[str, str] = {}
    propagate.inject(carrier)
    return json.dumps(carrier, separators=(",", ":")) if carrier else None


_reported: set[str] = set()


def report_context_failure(what: str, error: object) -> None:
    """A context key could not be written or read: the messages concerned lose their link.

    Said once per process at warning level (the link's absence is otherwise silent), then at
    debug level for every further failure.
    """
    if what not in _reported:
        _reported.add(what)
        _logger.warning(
            "execscope: pub/sub context %s (%s); receivers get no link to the publishing span "
            "while this lasts (further failures are logged at debug level)",
            what,
            error,
        )
    else:
        _logger.debug("execscope: pub/sub context %s: %s", what, error)


def publish_reply(results: Sequence[Any]) -> Any:
    """``PUBLISH``'s reply from the ``[SET, PUBLISH]`` pipeline's results, as a bare publish gives it.

    A failed ``SET`` (no permission, out of memory, a read-only replica...) only costs the
    receivers their link; a failed ``PUBLISH`` raises its own error, as it would have unwrapped.
    """
    stored, reply = results[0], results[-1]
    if isinstance(stored, Exception):
        report_context_failure("key not written", stored)
    if isinstance(reply, Exception):
        raise reply
    return reply


def response_argument(args: Sequence[Any], kwargs: Mapping[str, Any]) -> Any:
    """The ``response`` argument of ``PubSub.handle_message(response, ignore_subscribe_messages)``."""
    return args[0] if args else kwargs.get("response")


def parse_receipt(response: object, encode: Encode) -> Receipt | None:
    """The data message in a raw pub/sub ``response``; None for anything else (subscription
    confirmations, pongs), which redis-py handles without a span."""
    if not isinstance(response, (list, tuple)) or len(response) < 3:
        return None
    kind = _text(response[0])
    if kind == "pmessage" and len(response) >= 4:
        pattern, channel, data = response[1], response[2], response[3]
    elif kind in ("message", "smessage"):
        pattern, channel, data = None, response[1], response[2]
    else:
        return None
    # With decode_responses the client decoded the payload; encoding it again gives back the
    # publisher's bytes (the digest must be taken over the same bytes on both ends).
    channel_bytes, payload = _encoded(encode, channel), _encoded(encode, data)
    key = context_key(channel_bytes, payload) if channel_bytes is not None and payload is not None else None
    return Receipt(kind, channel, pattern, data, payload, key)


def has_handler(pubsub: object, receipt: Receipt) -> bool:
    """Whether redis-py will pass this message to a registered callback (looked up as it does)."""
    if receipt.kind == "pmessage":
        table, name = getattr(pubsub, "patterns", None), receipt.pattern
    elif receipt.kind == "smessage":
        table, name = getattr(pubsub, "shard_channels", None), receipt.channel
    else:
        table, name = getattr(pubsub, "channels", None), receipt.channel
    return isinstance(table, Mapping) and table.get(name) is not None


@contextmanager
def receive_span(
    options: Options, receipt: Receipt, document: bytes | str | None, handled: bool
) -> Iterator[None]:
    """The CONSUMER span of one receipt, current (with its context attached) while redis-py parses
    the message and runs its callback, so the callback's spans are its children."""
    parent, links = receive_parent(publisher_context(document))
    operation = MessagingOperationTypeValues.PROCESS if handled else MessagingOperationTypeValues.RECEIVE
    attributes = _attributes(
        options, receipt.channel, receipt.payload, receipt.data, operation.value, "receive"
    )
    if receipt.pattern is not None:
        attributes[MESSAGING_DESTINATION_TEMPLATE] = _text(receipt.pattern)
    token = otel_context.attach(parent)
    try:
        with options.tracer.start_as_current_span(
            f"{_text(receipt.channel)} receive", kind=SpanKind.CONSUMER, links=links, attributes=attributes
        ):
            yield
    finally:
        otel_context.detach(token)


def publisher_context(document: bytes | str | None) -> Context | None:
    """The publisher's context from a side key's value; None when absent or not ours.

    Anyone can write a key, so the value is only trusted as far as the propagators validate it.
    """
    if document is None:
        return None
    try:
        carrier = json.loads(document)
    except ValueError:
        return None
    if not isinstance(carrier, dict):
        return None
    text_carrier = {k: v for k, v in carrier.items() if isinstance(k, str) and isinstance(v, str)}
    return propagate.extract(text_carrier, context=Context())


def receive_parent(publisher: Context | None) -> tuple[Context, list[Link]]:
    """The context to start a receive span in, and its link to the publishing span.

    execscope gives one correlation id to a whole trace (the processor remembers it per trace
    id), so a receive span can only carry the publisher's id in a trace of its own: nested under
    a span of another unit of work (a subscriber loop traced by the auto-instrumentor, a request
    that polls a channel) it would relabel that whole trace. The receive span therefore starts a
    new trace, with the publisher's baggage (and so its correlation id) and a link to the
    publishing span, unless the current span already belongs to the publisher's unit of work,
    where it simply nests. Without a publisher context it nests wherever the receipt happens.
    """
    current = otel_context.get_current()
    if publisher is None:
        return current, []
    origin = trace.get_current_span(publisher).get_span_context()
    if not origin.is_valid:
        return current, []
    links = [Link(origin)]
    carried = valid_correlation_id(baggage.get_baggage(BAGGAGE_KEY, publisher))
    if (
        carried is not None
        and trace.get_current_span(current).get_span_context().is_valid
        and current_correlation_id(current) == carried
    ):
        return current, links
    parent = baggage.clear(trace.set_span_in_context(trace.INVALID_SPAN, current))
    for name, value in baggage.get_all(publisher).items():
        parent = baggage.set_baggage(name, value, parent)
    return parent, links


def _attributes(
    options: Options,
    channel: object,
    payload: bytes | None,
    value: object,
    operation_type: str,
    operation_name: str,
) -> dict[str, AttributeValue]:
    attributes: dict[str, AttributeValue] = {
        MESSAGING_SYSTEM: SYSTEM,
        MESSAGING_DESTINATION_NAME: _text(channel),
        MESSAGING_OPERATION_TYPE: operation_type,
        MESSAGING_OPERATION_NAME: operation_name,
    }
    if payload is not None:
        attributes[MESSAGING_MESSAGE_BODY_SIZE] = len(payload)
    if options.preview > 0 and _capture.values_allowed():
        attributes[MESSAGE] = _capture.render_value(value, cap=options.preview)
    return attributes


def _encoded(encode: Encode, value: object) -> bytes | None:
    try:
        return bytes(encode(value))
    except Exception:  # a value redis-py cannot encode fails in the command itself, with its own error
        return None


def _text(value: object) -> str:
    if isinstance(value, str):
        return value
    if isinstance(value, (bytes, bytearray, memoryview)):
        return bytes(value).decode("utf-8", "replace")
    return str(value)
