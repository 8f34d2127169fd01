"""The wrappers of redis-py's asyncio client: ``redis.asyncio`` ``Redis.publish``/``spublish`` and
``PubSub.handle_message`` (which ``get_message``, ``listen`` and ``run`` all go through).

The twin of :mod:`._sync`; only the awaits differ.
"""

from __future__ import annotations

import threading
import weakref
from contextlib import ExitStack
from typing import Any

import redis
import redis.asyncio
import redis.asyncio.client
from opentelemetry.instrumentation.utils import is_instrumentation_enabled, suppress_instrumentation

from execscope.instrumentors._failsafe import internal_error
from execscope.instrumentors.redis_pubsub import _core as core


class AsyncHooks:
    """The wrapper functions, bound to the instrumentor's options."""

    def __init__(self, options: core.Options) -> None:
        self._options = options
        # See SyncHooks: one reading client per subscriber, forgotten with it.
        self._readers: weakref.WeakKeyDictionary[Any, redis.asyncio.Redis] = weakref.WeakKeyDictionary()
        self._readers_lock = threading.Lock()

    def publish(self, wrapped: Any, instance: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
        # Not a coroutine function itself: a pipeline's publish returns the pipeline at once.
        published = core.bind_publish(args, kwargs)
        if (
            published is None
            or isinstance(instance, redis.asyncio.client.Pipeline)
            or not is_instrumentation_enabled()
        ):
            return wrapped(*args, **kwargs)
        return self._publish(published, wrapped, instance, args, kwargs)

    async def _publish(
        self,
        published: core.Published,
        wrapped: Any,
        instance: Any,
        args: tuple[Any, ...],
        kwargs: dict[str, Any],
    ) -> Any:
        with ExitStack() as scope:
            write = None
            try:
                write = core.open_publish(
                    scope, self._options, instance.get_encoder().encode, wrapped.__name__, published
                )
            except Exception:
                internal_error("redis pubsub publish")
            if write is None:
                return await wrapped(*args, **kwargs)
            try:
                pipe = instance.pipeline(transaction=False)
                core.queue_publish(pipe, write, wrapped.__name__, args, kwargs)
            except Exception:
                internal_error("redis pubsub publish")
                return await wrapped(*args, **kwargs)
            return core.publish_reply(await pipe.execute(raise_on_error=False))

    async def handle_message(
        self, wrapped: Any, instance: Any, args: tuple[Any, ...], kwargs: dict[str, Any]
    ) -> Any:
        with ExitStack() as scope:
            try:
                await self._enter_receipt(scope, instance, args, kwargs)
            except Exception:
                internal_error("redis pubsub receive")
            return await wrapped(*args, **kwargs)

    async def _enter_receipt(
        self, scope: ExitStack, pubsub: Any, args: tuple[Any, ...], kwargs: dict[str, Any]
    ) -> None:
        if not is_instrumentation_enabled():
            return
        receipt = core.parse_receipt(core.response_argument(args, kwargs), pubsub.encoder.encode)
        if receipt is None:
            return
        document = None
        if self._options.carry_context and receipt.key is not None:
            document = await self._read_context(pubsub, receipt.key)
        scope.enter_context(
            core.receive_span(self._options, receipt, document, core.has_handler(pubsub, receipt))
        )

    async def _read_context(self, pubsub: Any, key: bytes) -> bytes | str | None:
        pool = getattr(pubsub, "connection_pool", None)
        if pool is None:
            return None
        try:
            with suppress_instrumentation():
                value: bytes | str | None = await self._reader(pubsub, pool).get(key)
            return value
        except redis.RedisError as error:
            core.report_context_failure("key not read", error)
            return None

    def _reader(self, pubsub: Any, pool: Any) -> redis.asyncio.Redis:
        with self._readers_lock:
            reader = self._readers.get(pubsub)
            if reader is None or reader.connection_pool is not pool:
                reader = self._readers[pubsub] = redis.asyncio.Redis(connection_pool=pool)
            return reader
