"""Redis pub/sub: each receipt of a message linked to its publish, with the publisher's correlation id.

Contrib's Redis instrumentation makes one client span per command, so a ``PUBLISH`` and the
receipt of its message in another process are unrelated. A pub/sub message has no headers to
carry a trace context in, and its payload is the application's: changing it would break every
subscriber that is not instrumented. So the context travels *beside* the message:

- **publish** (``Redis.publish``/``spublish``, sync and asyncio): a PRODUCER span
  ``<channel> publish`` with the messaging attributes and a preview of the message. While it is
  current, the global propagator's carrier (under execscope: ``traceparent``, ``baggage`` with
  the correlation id, ``x-correlation-id``) is written as JSON to the key
  ``execscope:pubsub:<channel>:<sha256 of the payload>``, expiring after 60 s, in the same round
  trip as the publish (a non-transactional pipeline ``SET`` + ``PUBLISH``). The caller gets
  ``PUBLISH``'s reply unchanged; a failed ``SET`` only costs the link.
- **receipt** (``PubSub.handle_message``, which ``get_message``, ``listen``, ``run_in_thread``
  and the asyncio ``run`` all call): for each data message (``message``/``pmessage``/
  ``smessage``) the subscriber reads that key on its pool and makes a CONSUMER span
  ``<channel> receive`` linked to the publishing span, carrying the publisher's baggage and so
  its correlation id. Because execscope gives a whole trace one correlation id, that span starts
  a trace of its own, unless the current span already belongs to the publisher's unit of work
  (see :func:`._core.receive_parent`). A callback registered for the channel or pattern runs
  inside it (its spans are children); without one the span marks the receipt. No key (publisher
  not instrumented, key expired or unreadable): a receive span without link, where it happens.

Known limit: identical payloads published on one channel by different traces within the key's
lifetime share one key; the latest publish wins, so receivers of an earlier one may link to a
later publisher. The setting ``redis_pubsub_context`` (default true) turns the side key off in a
process: no key is written on publish nor read on receipt; spans are still made. Cluster clients
(``RedisCluster``) do not go through these methods and are not covered.
"""

from __future__ import annotations

from collections.abc import Collection
from typing import Any, Final

from opentelemetry import trace
from opentelemetry.instrumentation.instrumentor import BaseInstrumentor  # type: ignore[attr-defined]

from execscope._version import __version__
from execscope.instrumentors._patches import Patch, unwrap_all, wrap_all
from execscope.instrumentors.redis_pubsub._core import Options
from execscope.settings import get_settings

__all__ = ["RedisPubSubInstrumentor"]

# redis-py 5 is the first with asyncio handle_message and spublish on both clients as used here.
_instruments: Final = ("redis >= 5",)


class RedisPubSubInstrumentor(BaseInstrumentor):  # type: ignore[misc]  # untyped upstream
    """Correlates Redis pub/sub receipts with their publish (see the module docstring)."""

    # BaseInstrumentor is a singleton whose __init__ runs again on every construction, so the
    # handles are not reset there: uninstrument() on a new handle must still find them.
    _handles: list[Patch] = []

    def instrumentation_dependencies(self) -> Collection[str]:
        return _instruments

    def _instrument(self, **kwargs: Any) -> None:
        import redis.asyncio.client
        import redis.client

        from execscope.instrumentors.redis_pubsub._asyncio import AsyncHooks
        from execscope.instrumentors.redis_pubsub._sync import SyncHooks

        settings = get_settings().settings
        options = Options(
            tracer=trace.get_tracer(__name__, __version__, kwargs.get("tracer_provider")),
            carry_context=settings.redis_pubsub_context,
            # No preview setting of its own: the WebSocket one bounds every message preview.
            preview=settings.websocket_preview,
        )
        sync, aio = SyncHooks(options), AsyncHooks(options)
        targets = (
            (redis.client.Redis, "publish", sync.publish),
            (redis.client.Redis, "spublish", sync.publish),
            (redis.client.PubSub, "handle_message", sync.handle_message),
            (redis.asyncio.client.Redis, "publish", aio.publish),
            (redis.asyncio.client.Redis, "spublish", aio.publish),
            (redis.asyncio.client.PubSub, "handle_message", aio.handle_message),
        )
        # All or nothing (wrap_all): no half-instrumented client.
        self._handles = wrap_all(target for target in targets if hasattr(target[0], target[1]))

    def _uninstrument(self, **kwargs: Any) -> None:
        unwrap_all(self._handles)
        self._handles = []
