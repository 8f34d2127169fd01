"""The Celery application of the Celery instrumentor's tests, imported by the test and its worker.

The worker runs it under ``execscope run`` on a queue of its own per test run (given with
``-Q``; the test sends there with ``apply_async(queue=...)``), so parallel runs on one broker do
not take each other's tasks. Each task exercises one thing the instrumentor records.
"""

from __future__ import annotations

from typing import Any

from celery import Celery, Task
from opentelemetry import trace

BROKER = "amqp://guest:guest@127.0.0.1:5672//"
BACKEND = "redis://127.0.0.1:6379/14"
#: The span each task opens in its body, to check that it joins the run span's trace.
BODY_SPAN = "task body"

app = Celery("celery_app_for_tests", broker=BROKER, backend=BACKEND)
app.conf.update(
    task_serializer="json",
    result_serializer="json",
    accept_content=["json"],
    result_expires=600,
    broker_connection_retry_on_startup=True,
    worker_hijack_root_logger=False,
)


@app.task
def add(x: int, y: int, *, label: str = "sum") -> dict[str, Any]:
    with trace.get_tracer(__name__).start_as_current_span(BODY_SPAN):
        return {label: x + y}


@app.task
def fail(reason: str) -> None:
    raise ValueError(reason)


@app.task(bind=True, max_retries=3)
def flaky(self: Task, attempts: int) -> int:
    """Retries until it runs for the ``attempts``-th time; returns how many retries that took."""
    retries = int(self.request.retries)
    if retries + 1 < attempts:
        raise self.retry(exc=RuntimeError(f"attempt {retries + 1} failed"), countdown=0)
    return retries


@app.task
def login(user: str, password: str) -> str:
    return f"{user} logged in"
