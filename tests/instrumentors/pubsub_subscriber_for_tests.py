"""A Redis subscriber that test_redis_pubsub.py runs in a second process, under ``execscope run``.

Usage: ``pubsub_subscriber_for_tests.py CHANNEL``. Subscribes to CHANNEL with a handler, prints
``ready`` once Redis confirmed the subscription, handles one message (the handler makes a span
``handle message`` and prints ``received <payload as hex>``), then exits 0. It gives up with exit
status 1 after a deadline, so a failing test never leaves it behind.
"""

from __future__ import annotations

import sys
import threading
import time
from typing import Any

import redis
from opentelemetry import trace

DEADLINE_S = 20.0


def main(channel: str) -> int:
    handled = threading.Event()

    def on_message(message: dict[str, Any]) -> None:
        with trace.get_tracer("pubsub-subscriber").start_as_current_span("handle message"):
            print(f"received {message['data'].hex()}", flush=True)
        handled.set()

    pubsub = redis.Redis().pubsub()
    pubsub.subscribe(**{channel: on_message})
    confirmation = pubsub.get_message(timeout=DEADLINE_S)
    if confirmation is None or confirmation["type"] != "subscribe":
        return 1
    print("ready", flush=True)
    deadline = time.monotonic() + DEADLINE_S
    while not handled.is_set() and time.monotonic() < deadline:
        # Blocks until a message arrives (or a second passes); the handler runs inside.
        pubsub.get_message(ignore_subscribe_messages=True, timeout=1.0)
    pubsub.close()
    return 0 if handled.is_set() else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1]))
