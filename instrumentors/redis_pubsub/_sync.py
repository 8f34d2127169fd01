"""The wrappers of redis-py's synchronous client: ``Redis.publish``/``spublish`` and
``PubSub.handle_message`` (which ``get_message``, ``listen`` and ``run_in_thread`` all go through)."""

from __future__ import annotations

import threading
import weakref
from contextlib import ExitStack
from typing import Any

import redis
import redis.client
from opentelemetry.instrumentation.utils import is_instrumentation_enabled, suppress_instrumentation

from execscope.instrumentors._failsafe import internal_error
from execscope.instrumentors.redis_pubsub import _core as core


class SyncHooks:
    """The wrapper functions, bound to the instrumentor's options."""

    def __init__(self, options: core.Options) -> None:
        self._options = options
        # One plain client per subscriber for reading side keys: building a client costs about
        # as much as the GET itself. Weak keys, so a subscriber that goes away takes it along.
        self._readers: weakref.WeakKeyDictionary[Any, redis.Redis] = weakref.WeakKeyDictionary()
        self._readers_lock = threading.Lock()

    def publish(self, wrapped: Any, instance: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
        published = core.bind_publish(args, kwargs)
        # A pipeline only queues the command (it runs at execute()), and its results must stay
        # exactly the ones the caller queued: pipelines are left alone.
        if (
            published is None
            or isinstance(instance, redis.client.Pipeline)
            or not is_instrumentation_enabled()
        ):
            return wrapped(*args, **kwargs)
        with ExitStack() as scope:
            write = None
            try:
                write = core.open_publish(
                    scope, self._options, instance.get_encoder().encode, wrapped.__name__, published
                )
            except Exception:
                internal_error("redis pubsub publish")
            if write is None:
                return wrapped(*args, **kwargs)
            try:
                pipe = instance.pipeline(transaction=False)
                core.queue_publish(pipe, write, wrapped.__name__, args, kwargs)
            except Exception:
                internal_error("redis pubsub publish")
                return wrapped(*args, **kwargs)
            return core.publish_reply(pipe.execute(raise_on_error=False))

    def handle_message(
        self, wrapped: Any, instance: Any, args: tuple[Any, ...], kwargs: dict[str, Any]
    ) -> Any:
        with ExitStack() as scope:
            try:
                self._enter_receipt(scope, instance, args, kwargs)
            except Exception:
                internal_error("redis pubsub receive")
            return wrapped(*args, **kwargs)

    def _enter_receipt(
        self, scope: ExitStack, pubsub: Any, args: tuple[Any, ...], kwargs: dict[str, Any]
    ) -> None:
        if not is_instrumentation_enabled():
            return
        receipt = core.parse_receipt(core.response_argument(args, kwargs), pubsub.encoder.encode)
        if receipt is None:
            return
        document = None
        if self._options.carry_context and receipt.key is not None:
            document = self._read_context(pubsub, receipt.key)
        scope.enter_context(
            core.receive_span(self._options, receipt, document, core.has_handler(pubsub, receipt))
        )

    def _read_context(self, pubsub: Any, key: bytes) -> bytes | str | None:
        """The side key's value, read on the subscriber's pool (the subscribed connection only
        accepts subscription commands); None when Redis cannot give it."""
        pool = getattr(pubsub, "connection_pool", None)
        if pool is None:
            return None
        try:
            # Suppressed: contrib would otherwise make a stray GET span, a trace of its own, per message.
            with suppress_instrumentation():
                value: bytes | str | None = self._reader(pubsub, pool).get(key)
            return value
        except redis.RedisError as error:
            core.report_context_failure("key not read", error)
            return None

    def _reader(self, pubsub: Any, pool: Any) -> redis.Redis:
        with self._readers_lock:
            reader = self._readers.get(pubsub)
            if reader is None or reader.connection_pool is not pool:
                reader = self._readers[pubsub] = redis.Redis(connection_pool=pool)
            return reader
