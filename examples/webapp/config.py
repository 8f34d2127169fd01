"""Where the example application finds its services: environment variables with local defaults.

Each name (database schema, Celery queue, pub/sub channel) can be set per run, so several runs
(tests in parallel, say) share one PostgreSQL, RabbitMQ and Redis without seeing each other.
"""

from __future__ import annotations

import os

DATABASE_URL = os.environ.get("WEBAPP_DATABASE_URL", "host=127.0.0.1 port=5432 user=postgres dbname=test")
SCHEMA = os.environ.get("WEBAPP_SCHEMA", "webapp")
BROKER_URL = os.environ.get("WEBAPP_BROKER_URL", "amqp://guest:guest@127.0.0.1:5672//")
REDIS_URL = os.environ.get("WEBAPP_REDIS_URL", "redis://127.0.0.1:6379/0")
QUEUE = os.environ.get("WEBAPP_QUEUE", "webapp")
CHANNEL = os.environ.get("WEBAPP_CHANNEL", "webapp:user-events")
AUDIT_LIST = f"{CHANNEL}:audit"


def conninfo() -> str:
    """The database connection string, with the schema as the search path."""
    return f"{DATABASE_URL} options='-c search_path={SCHEMA}'"
