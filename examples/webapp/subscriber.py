"""The second process: consumes the user events the web application broadcasts over Redis
pub/sub and keeps an audit list of them. Run it with `execscope run subscriber.py`."""

from __future__ import annotations

import json
import signal
import sys
from typing import Any

import redis
from config import AUDIT_LIST, CHANNEL, REDIS_URL


class AuditLog:
    """Records every user event it is given, newest first."""

    def __init__(self, client: redis.Redis) -> None:
        self.client = client
        self.seen = 0

    def record(self, event: dict[str, Any]) -> None:
        self.seen += 1
        self.client.lpush(AUDIT_LIST, json.dumps({"n": self.seen, **event}))


def main() -> int:
    client = redis.Redis.from_url(REDIS_URL)
    audit = AuditLog(client)

    def on_event(message: dict[str, Any]) -> None:
        audit.record(json.loads(message["data"]))

    pubsub = client.pubsub(ignore_subscribe_messages=True)
    pubsub.subscribe(**{CHANNEL: on_event})
    worker = pubsub.run_in_thread(sleep_time=0.05, daemon=True)
    print(f"subscribed to {CHANNEL}", flush=True)
    signal.signal(signal.SIGTERM, lambda *_: worker.stop())
    try:
        worker.join()
    except KeyboardInterrupt:
        worker.stop()
    pubsub.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
