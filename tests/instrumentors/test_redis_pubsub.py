"""Redis pub/sub: every receipt of a message is linked to its publish and shares its correlation id.

Against a real Redis. The publisher and the subscribers run in this process (threads, asyncio)
and in a second process under ``execscope run``; the payload every subscriber sees is the one
published, byte for byte.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import queue
import socket
import subprocess
import threading
import uuid
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import Any

import pytest
import redis
import redis.asyncio
import redis.asyncio.client
import redis.client
from instrumentor_helpers import Traced, child_environment, correlation_of, traced
from opentelemetry import propagate
from opentelemetry.instrumentation.redis import RedisInstrumentor
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.trace import SpanKind, StatusCode
from otlp_receiver import Receiver, attributes_of

from conftest import BIN, require_service
from execscope.attributes import CORRELATION_ID, MESSAGE
from execscope.instrumentors import INSTRUMENTORS, _failsafe
from execscope.instrumentors.redis_pubsub import RedisPubSubInstrumentor, _core
from execscope.processors import install_correlation_propagator

SUBSCRIBER = Path(__file__).with_name("pubsub_subscriber_for_tests.py")
WAIT_S = 10.0
#: The methods the instrumentor wraps: (owner, attribute).
WRAPPED = (
    (redis.client.Redis, "publish"),
    (redis.client.Redis, "spublish"),
    (redis.client.PubSub, "handle_message"),
    (redis.asyncio.client.Redis, "publish"),
    (redis.asyncio.client.Redis, "spublish"),
    (redis.asyncio.client.PubSub, "handle_message"),
)


# -- fixtures and helpers ---------------------------------------------------------------------


@pytest.fixture
def client() -> Iterator[redis.Redis]:
    require_service("Redis", 6379)
    connection = redis.Redis()
    yield connection
    connection.close()


@pytest.fixture
def channel() -> str:
    return f"execscope-test.{uuid.uuid4().hex}"


@contextmanager
def instrumented(tmp_path: Path, **settings: Any) -> Iterator[Traced]:
    """execscope's pipeline and propagators, contrib's Redis instrumentation, then this one (the
    order ``execscope run`` loads them in)."""
    with traced(tmp_path, **settings) as tracing:
        previous_propagator = propagate.get_global_textmap()
        install_correlation_propagator({})
        contrib = RedisInstrumentor()
        ours_contrib = not contrib.is_instrumented_by_opentelemetry
        if ours_contrib:
            contrib.instrument(tracer_provider=tracing.provider)
        RedisPubSubInstrumentor().instrument(tracer_provider=tracing.provider)
        try:
            yield tracing
        finally:
            RedisPubSubInstrumentor().uninstrument()
            if ours_contrib:
                contrib.uninstrument()
            propagate.set_global_textmap(previous_propagator)


@pytest.fixture
def tracing(tmp_path: Path, client: redis.Redis) -> Iterator[Traced]:
    with instrumented(tmp_path) as spans:
        yield spans


def subscribed(
    client: redis.Redis, *, channels: Sequence[str] = (), patterns: Sequence[str] = (), **handlers: Any
) -> Any:
    """A PubSub whose subscriptions Redis has confirmed (so a publish now reaches it)."""
    pubsub = client.pubsub()
    if channels or handlers:
        pubsub.subscribe(*channels, **handlers)
    if patterns:
        pubsub.psubscribe(*patterns)
    for _ in range(len(channels) + len(handlers) + len(patterns)):
        confirmation = pubsub.get_message(timeout=WAIT_S)
        assert confirmation is not None and confirmation["type"] in ("subscribe", "psubscribe")
    return pubsub


def next_message(pubsub: Any) -> dict[str, Any]:
    message = pubsub.get_message(ignore_subscribe_messages=True, timeout=WAIT_S)
    assert message is not None, "no message arrived"
    return dict(message)


def publish_in_request(tracing: Traced, client: redis.Redis, channel: str, payload: Any) -> ReadableSpan:
    """Publish inside a request span, as a web handler would; the request span, once ended.

    No flush here: a subscriber thread may be ending its span at this very moment.
    """
    with tracing.provider.get_tracer("tests").start_as_current_span("handle request") as request:
        assert client.publish(channel, payload) >= 1
    assert isinstance(request, ReadableSpan)
    return request


def assert_linked(receive: ReadableSpan, publish: ReadableSpan) -> None:
    assert receive.kind is SpanKind.CONSUMER and publish.kind is SpanKind.PRODUCER
    assert [(link.context.trace_id, link.context.span_id) for link in receive.links] == [
        (publish.context.trace_id, publish.context.span_id)
    ]
    assert correlation_of(receive) == correlation_of(publish)


def context_keys(client: redis.Redis, channel: str) -> list[bytes]:
    return list(client.scan_iter(match=f"execscope:pubsub:{channel}:*"))


def resp(*parts: bytes) -> bytes:
    """A RESP2 array of bulk strings, as Redis writes a pub/sub push."""
    return b"".join([b"*%d\r\n" % len(parts), *(b"$%d\r\n%s\r\n" % (len(part), part) for part in parts)])


class PlainSubscriber:
    """A subscriber on a bare socket, below redis-py (nothing of it is instrumented): it reads the
    bytes exactly as Redis delivers them."""

    def __init__(self, channel: str) -> None:
        self.channel = channel.encode()
        self._socket = socket.create_connection(("127.0.0.1", 6379), timeout=WAIT_S)
        self._socket.sendall(resp(b"SUBSCRIBE", self.channel))
        confirmation = b"*3\r\n$9\r\nsubscribe\r\n$%d\r\n%s\r\n:1\r\n" % (len(self.channel), self.channel)
        assert self.read(len(confirmation)) == confirmation

    def read(self, size: int) -> bytes:
        received = b""
        while len(received) < size:
            chunk = self._socket.recv(size - len(received))
            assert chunk, "Redis closed the connection"
            received += chunk
        return received

    def expect_message(self, payload: bytes) -> bytes:
        """The next push, which should be ``payload`` on the channel, as raw bytes."""
        return self.read(len(resp(b"message", self.channel, payload)))

    def close(self) -> None:
        self._socket.close()


# -- publish -----------------------------------------------------------------------------------


def test_publish_makes_a_producer_span_and_leaves_the_message_as_it_was(
    tracing: Traced, client: redis.Redis, channel: str
) -> None:
    plain = PlainSubscriber(channel)
    # What the application passes, and the bytes Redis must deliver for it.
    payloads = [
        (b"\x00\xff binary \xe2\x9c\x93", b"\x00\xff binary \xe2\x9c\x93"),
        ("héllo ✓", "héllo ✓".encode()),
        (42, b"42"),
    ]
    try:
        for payload, _ in payloads:
            assert client.publish(channel, payload) == 1  # PUBLISH's own reply: one receiver
        delivered = [plain.expect_message(sent) for _, sent in payloads]
    finally:
        plain.close()
    assert delivered == [resp(b"message", channel.encode(), sent) for _, sent in payloads]

    spans = tracing.named(f"{channel} publish")
    assert [(span.attributes or {}).get("messaging.message.body.size") for span in spans] == [
        len(sent) for _, sent in payloads
    ]
    publish = spans[0]
    assert publish.kind is SpanKind.PRODUCER
    assert publish.attributes is not None
    assert publish.attributes["messaging.system"] == "redis"
    assert publish.attributes["messaging.destination.name"] == channel
    assert publish.attributes["messaging.operation.type"] == "send"
    assert "binary" in str(publish.attributes[MESSAGE])  # a bounded preview of the message


def test_the_context_goes_beside_the_message_in_one_round_trip(
    tracing: Traced, client: redis.Redis, channel: str
) -> None:
    payload = b'{"order": 17}'
    client.publish(channel, payload)

    publish = tracing.one(f"{channel} publish")
    key = f"execscope:pubsub:{channel}:{hashlib.sha256(payload).hexdigest()}".encode()
    assert context_keys(client, channel) == [key]
    assert 0 < client.ttl(key) <= 60
    carrier = json.loads(client.get(key) or b"")
    _, trace_id, span_id, _ = carrier["traceparent"].split("-")
    assert (int(trace_id, 16), int(span_id, 16)) == (publish.context.trace_id, publish.context.span_id)
    assert carrier["x-correlation-id"] == correlation_of(publish)
    # SET and PUBLISH went out together: one client span (contrib's) under the publish span.
    commands = [
        span for span in tracing.spans() if span.parent and span.parent.span_id == publish.context.span_id
    ]
    assert len(commands) == 1


def test_without_the_context_setting_no_key_is_written(
    tmp_path: Path, client: redis.Redis, channel: str
) -> None:
    with instrumented(tmp_path, redis_pubsub_context=False) as tracing:
        pubsub = subscribed(client, channels=[channel])
        publish_in_request(tracing, client, channel, b"quiet")
        assert next_message(pubsub)["data"] == b"quiet"
        pubsub.close()

        assert context_keys(client, channel) == []
        assert tracing.one(f"{channel} publish").kind is SpanKind.PRODUCER
        assert tracing.one(f"{channel} receive").links == ()


def test_a_key_that_cannot_be_written_does_not_hold_the_message_back_and_is_said_once(
    tracing: Traced, client: redis.Redis, channel: str, caplog: pytest.LogCaptureFixture
) -> None:
    _core._reported.clear()
    user = f"execscope-test-{uuid.uuid4().hex}"
    # May publish on any channel, and may not touch any key.
    client.acl_setuser(user, enabled=True, nopass=True, commands=["+publish", "+ping"], channels=["*"])
    publisher = redis.Redis(username=user, password="unused")
    plain = PlainSubscriber(channel)
    try:
        assert publisher.publish(channel, b"still delivered") == 1
        assert plain.expect_message(b"still delivered") == resp(
            b"message", channel.encode(), b"still delivered"
        )
        assert publisher.publish(channel, b"again") == 1
        assert plain.expect_message(b"again") == resp(b"message", channel.encode(), b"again")
    finally:
        plain.close()
        publisher.close()
        client.acl_deluser(user)
    assert context_keys(client, channel) == []
    assert {span.status.status_code for span in tracing.named(f"{channel} publish")} == {StatusCode.UNSET}
    warnings = [record for record in caplog.records if record.levelname == "WARNING"]
    assert len(warnings) == 1 and "key not written" in warnings[0].getMessage()


def test_an_internal_error_never_reaches_the_application(
    tracing: Traced, client: redis.Redis, channel: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    def broken(*args: Any, **kwargs: Any) -> Any:
        raise RuntimeError("a bug of execscope's")

    monkeypatch.setattr(_failsafe, "RAISE_INTERNAL_ERRORS", False)  # as in production
    monkeypatch.setattr(_core, "carrier_document", broken)
    monkeypatch.setattr(_core, "parse_receipt", broken)
    pubsub = subscribed(client, channels=[channel])
    assert client.publish(channel, b"regardless") == 1
    assert next_message(pubsub)["data"] == b"regardless"
    pubsub.close()
    assert context_keys(client, channel) == []


# -- receipt -----------------------------------------------------------------------------------


def test_a_subscriber_thread_links_its_receipt_to_the_publish(
    tracing: Traced, client: redis.Redis, channel: str
) -> None:
    pubsub = subscribed(client, channels=[channel])
    received: list[dict[str, Any]] = []
    arrived, stop = threading.Event(), threading.Event()

    def poll() -> None:
        while not stop.is_set() and not received:
            message = pubsub.get_message(ignore_subscribe_messages=True, timeout=1.0)
            if message is not None:
                received.append(message)
                arrived.set()

    thread = threading.Thread(target=poll)
    thread.start()
    try:
        request = publish_in_request(tracing, client, channel, b"\x00payload\xff")
        assert arrived.wait(WAIT_S)
    finally:
        stop.set()
        thread.join(WAIT_S)
        pubsub.close()

    assert received[0]["data"] == b"\x00payload\xff"
    receive, publish = tracing.one(f"{channel} receive"), tracing.one(f"{channel} publish")
    assert_linked(receive, publish)
    assert correlation_of(receive) == correlation_of(request)
    # Another unit of work in another thread: the receipt is a trace of its own.
    assert receive.parent is None
    assert receive.attributes is not None
    assert receive.attributes["messaging.operation.type"] == "receive"
    assert receive.attributes["messaging.destination.name"] == channel
    # Reading the side key made no span of its own (contrib's GET span would be a stray trace).
    assert not [span for span in tracing.spans() if span.name == "GET"]


def test_a_handler_run_in_a_thread_runs_inside_the_receive_span(
    tracing: Traced, client: redis.Redis, channel: str
) -> None:
    handled, seen = threading.Event(), []
    tracer = tracing.provider.get_tracer("tests")

    def on_order(message: dict[str, Any]) -> None:
        with tracer.start_as_current_span("handle order"):
            seen.append(message["data"])
        handled.set()

    pubsub = subscribed(client, **{channel: on_order})
    worker = pubsub.run_in_thread(sleep_time=0.2, daemon=True)
    try:
        publish_in_request(tracing, client, channel, b"order 17")
        assert handled.wait(WAIT_S)
    finally:
        worker.stop()
        worker.join(WAIT_S)

    assert seen == [b"order 17"]
    receive, publish = tracing.one(f"{channel} receive"), tracing.one(f"{channel} publish")
    handler = tracing.one("handle order")
    assert_linked(receive, publish)
    assert handler.parent is not None and handler.parent.span_id == receive.context.span_id
    assert correlation_of(handler) == correlation_of(publish)
    assert receive.attributes is not None and receive.attributes["messaging.operation.type"] == "process"


def test_a_handler_exception_reaches_the_caller_unchanged(
    tracing: Traced, client: redis.Redis, channel: str
) -> None:
    failure = ValueError("bad order")

    def on_order(message: dict[str, Any]) -> None:
        raise failure

    pubsub = subscribed(client, **{channel: on_order})
    client.publish(channel, b"order")
    with pytest.raises(ValueError) as caught:
        pubsub.get_message(ignore_subscribe_messages=True, timeout=WAIT_S)
    pubsub.close()

    assert caught.value is failure
    receive = tracing.one(f"{channel} receive")
    assert receive.status.status_code is StatusCode.ERROR
    assert [event.name for event in receive.events] == ["exception"]


def test_a_receipt_within_the_publishers_own_work_nests_in_it(
    tracing: Traced, client: redis.Redis, channel: str
) -> None:
    pubsub = subscribed(client, channels=[channel])
    with tracing.provider.get_tracer("tests").start_as_current_span("round trip"):
        client.publish(channel, b"echo")
        assert next_message(pubsub)["data"] == b"echo"
    pubsub.close()

    receive, round_trip = tracing.one(f"{channel} receive"), tracing.one("round trip")
    assert_linked(receive, tracing.one(f"{channel} publish"))
    assert receive.parent is not None and receive.parent.span_id == round_trip.context.span_id


def test_a_receipt_inside_other_work_starts_a_trace_of_its_own(
    tracing: Traced, client: redis.Redis, channel: str
) -> None:
    """A correlation id belongs to a whole trace: nested in the poll loop's trace, the receipt would
    relabel it with the publisher's id."""
    pubsub = subscribed(client, channels=[channel])
    request = publish_in_request(tracing, client, channel, b"work")
    tracer = tracing.provider.get_tracer("tests")
    with tracer.start_as_current_span("poll loop"):
        assert next_message(pubsub)["data"] == b"work"
        with tracer.start_as_current_span("after the receipt"):
            pass
    pubsub.close()

    receive, loop = tracing.one(f"{channel} receive"), tracing.one("poll loop")
    assert_linked(receive, tracing.one(f"{channel} publish"))
    assert receive.parent is None and receive.context.trace_id != loop.context.trace_id
    assert correlation_of(receive) == correlation_of(request) != correlation_of(loop)
    assert correlation_of(tracing.one("after the receipt")) == correlation_of(loop)


def test_a_pattern_subscription_links_each_matching_channel(
    tracing: Traced, client: redis.Redis, channel: str
) -> None:
    pattern = f"{channel}.*"
    pubsub = subscribed(client, patterns=[pattern])
    publish_in_request(tracing, client, f"{channel}.created", b"new order")
    message = next_message(pubsub)
    pubsub.close()

    assert (message["type"], message["pattern"], message["data"]) == (
        "pmessage",
        pattern.encode(),
        b"new order",
    )
    receive = tracing.one(f"{channel}.created receive")
    assert_linked(receive, tracing.one(f"{channel}.created publish"))
    assert receive.attributes is not None
    assert receive.attributes["messaging.destination.name"] == f"{channel}.created"
    assert receive.attributes["messaging.destination.template"] == pattern


def test_a_sharded_publish_links_its_receipt(tracing: Traced, client: redis.Redis, channel: str) -> None:
    if int(str(client.info("server")["redis_version"]).split(".")[0]) < 7:
        pytest.skip("sharded pub/sub needs Redis 7")
    pubsub = client.pubsub()
    pubsub.ssubscribe(channel)
    assert (pubsub.get_sharded_message(timeout=WAIT_S) or {}).get("type") == "ssubscribe"
    assert client.spublish(channel, b"sharded") == 1
    message = pubsub.get_sharded_message(ignore_subscribe_messages=True, timeout=WAIT_S)
    pubsub.close()

    assert message is not None and (message["type"], message["data"]) == ("smessage", b"sharded")
    publish = tracing.one(f"{channel} publish")
    assert publish.attributes is not None and publish.attributes["messaging.operation.name"] == "spublish"
    assert_linked(tracing.one(f"{channel} receive"), publish)


def test_a_subscriber_that_decodes_responses_finds_the_publisher_too(
    tracing: Traced, client: redis.Redis, channel: str
) -> None:
    decoding = redis.Redis(decode_responses=True)
    pubsub = subscribed(decoding, channels=[channel])
    publish_in_request(tracing, client, channel, "héllo ✓".encode())
    assert next_message(pubsub)["data"] == "héllo ✓"
    pubsub.close()
    decoding.close()

    assert_linked(tracing.one(f"{channel} receive"), tracing.one(f"{channel} publish"))


@pytest.mark.parametrize(
    ("key_content", "meaning"),
    [(None, "publisher not instrumented"), ("not json", "not our value"), ([b"x"], "unreadable: a list")],
)
def test_a_receipt_without_a_usable_context_is_still_recorded(
    tracing: Traced, client: redis.Redis, channel: str, key_content: Any, meaning: str
) -> None:
    payload = b"from elsewhere"
    key = f"execscope:pubsub:{channel}:{hashlib.sha256(payload).hexdigest()}"
    if isinstance(key_content, str):
        client.set(key, key_content, ex=60)
    elif isinstance(key_content, list):
        client.rpush(key, *key_content)
        client.expire(key, 60)
    pubsub = subscribed(client, channels=[channel])
    client.execute_command("PUBLISH", channel, payload)  # below Redis.publish: no span, no key
    assert next_message(pubsub)["data"] == payload, meaning
    pubsub.close()

    receive = tracing.one(f"{channel} receive")
    assert receive.links == ()
    assert (receive.attributes or {}).get(CORRELATION_ID)
    assert not tracing.named(f"{channel} publish")


# -- asyncio -----------------------------------------------------------------------------------


def test_asyncio_publish_and_receipt_are_linked(tracing: Traced, client: redis.Redis, channel: str) -> None:
    tracer = tracing.provider.get_tracer("tests")

    async def scenario() -> list[bytes]:
        seen: list[bytes] = []
        handled = asyncio.Event()

        async def on_message(message: dict[str, Any]) -> None:
            with tracer.start_as_current_span("handle async"):
                seen.append(message["data"])
            handled.set()

        connection = redis.asyncio.Redis()
        pubsub = connection.pubsub()
        await pubsub.subscribe(**{channel: on_message})
        assert (await pubsub.get_message(timeout=WAIT_S) or {}).get("type") == "subscribe"
        runner = asyncio.create_task(pubsub.run(poll_timeout=0.2))
        try:
            with tracer.start_as_current_span("handle request"):
                assert await connection.publish(channel, b"async order") == 1
            await asyncio.wait_for(handled.wait(), WAIT_S)
        finally:
            runner.cancel()
            with suppress(asyncio.CancelledError):
                await runner
            await pubsub.aclose()
            await connection.aclose()
        return seen

    assert asyncio.run(scenario()) == [b"async order"]
    receive, publish = tracing.one(f"{channel} receive"), tracing.one(f"{channel} publish")
    assert_linked(receive, publish)
    handler = tracing.one("handle async")
    assert handler.parent is not None and handler.parent.span_id == receive.context.span_id
    assert correlation_of(handler) == correlation_of(tracing.one("handle request"))


# -- across processes --------------------------------------------------------------------------


def lines_of(process: subprocess.Popen[str]) -> queue.Queue[str]:
    """The process's stdout lines as they come (a reader thread), to wait on with a timeout."""
    lines: queue.Queue[str] = queue.Queue()

    def read() -> None:
        assert process.stdout is not None
        for line in process.stdout:
            lines.put(line.strip())

    threading.Thread(target=read, daemon=True).start()
    return lines


def next_line(lines: queue.Queue[str], stderr: Path, accept: Callable[[str], bool]) -> str:
    while True:
        try:
            line = lines.get(timeout=30)
        except queue.Empty:
            raise AssertionError(
                f"the subscriber said nothing expected; stderr:\n{stderr.read_text()}"
            ) from None
        if accept(line):
            return line


def test_a_subscriber_in_another_process_links_to_the_publish(
    tracing: Traced, client: redis.Redis, channel: str, tmp_path: Path
) -> None:
    receiver = Receiver().start()
    stderr = tmp_path / "subscriber.stderr"
    with stderr.open("w") as errors:
        subscriber = subprocess.Popen(
            [str(BIN / "execscope"), "run", str(SUBSCRIBER), channel],
            env=child_environment(receiver.endpoint, tmp_path),
            cwd=tmp_path,
            stdout=subprocess.PIPE,
            stderr=errors,
            text=True,
        )
    try:
        lines = lines_of(subscriber)
        next_line(lines, stderr, lambda line: line == "ready")
        payload = b"\x00cross-process \xe2\x9c\x93"
        request = publish_in_request(tracing, client, channel, payload)
        assert (
            next_line(lines, stderr, lambda line: line.startswith("received ")) == f"received {payload.hex()}"
        )
        assert subscriber.wait(timeout=WAIT_S) == 0, stderr.read_text()

        name = f"{channel} receive"
        spans = receiver.wait_until(
            lambda spans: {name, "handle message"} <= {span.name for span in spans}, timeout=WAIT_S
        )
    finally:
        if subscriber.poll() is None:
            subscriber.kill()
            subscriber.wait()
        receiver.stop()

    publish = tracing.one(f"{channel} publish")
    receive = next(span for span in spans if span.name == name)
    handler = next(span for span in spans if span.name == "handle message")
    assert [(link.trace_id, link.span_id) for link in receive.links] == [
        (publish.context.trace_id.to_bytes(16, "big"), publish.context.span_id.to_bytes(8, "big"))
    ]
    assert attributes_of(receive)[CORRELATION_ID] == correlation_of(publish) == correlation_of(request)
    assert receive.parent_span_id == b""  # a trace of its own in the subscriber
    assert handler.trace_id == receive.trace_id
    assert attributes_of(handler)[CORRELATION_ID] == correlation_of(publish)


# -- instrumenting -----------------------------------------------------------------------------


def test_uninstrument_restores_publish_and_handle_message(
    tmp_path: Path, client: redis.Redis, channel: str
) -> None:
    originals = [vars(owner).get(name) for owner, name in WRAPPED]
    with instrumented(tmp_path) as tracing:
        instrumented_now = [vars(owner).get(name) for owner, name in WRAPPED]
        assert all(now is not before for now, before in zip(instrumented_now, originals, strict=True))
        # A new handle: BaseInstrumentor is a singleton, and uninstrument must still find the wrappers.
        RedisPubSubInstrumentor().uninstrument()
        assert [vars(owner).get(name) for owner, name in WRAPPED] == originals

        pubsub = subscribed(client, channels=[channel])
        client.publish(channel, b"untraced")
        assert next_message(pubsub)["data"] == b"untraced"
        pubsub.close()
        assert not [span for span in tracing.spans() if span.name.startswith(channel)]
        assert context_keys(client, channel) == []


def test_the_registry_loads_it_with_contribs_redis() -> None:
    entry = next(entry for entry in INSTRUMENTORS if entry.name == "execscope-redis-pubsub")
    assert entry.extends == "redis"
    instrumentor = entry.load()
    assert isinstance(instrumentor, RedisPubSubInstrumentor)
    assert list(instrumentor.instrumentation_dependencies()) == ["redis >= 5"]
