"""Background jobs, run by a Celery worker: `celery -A tasks worker` in this folder."""

from __future__ import annotations

import db
from celery import Celery
from config import BROKER_URL, QUEUE, REDIS_URL

celery_app = Celery("webapp", broker=BROKER_URL, backend=REDIS_URL)
celery_app.conf.task_default_queue = QUEUE
celery_app.conf.broker_connection_retry_on_startup = True


@celery_app.task(bind=True, max_retries=3)
def send_welcome(self: object, user_id: int, email: str) -> dict[str, object]:
    """Send the welcome mail (here: note it in the database) for a new user."""
    user = db.mark_welcomed(user_id)
    if user is None:
        raise LookupError(f"no user {user_id}")
    return {"user_id": user_id, "email": email, "welcomed": True}
