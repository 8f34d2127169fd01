"""Helpers for comparing origins with the names in rule tables.

Libraries re-export classes from several paths (``fastapi.FastAPI`` is also
``fastapi.applications.FastAPI``), so rule tables use a *short* form: top-level package plus
final name. Origins that contain a call or a project reference are never shortened, because
their middle carries meaning.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import Final

from ._resolve import ProjectIndex

QUEUE_CLASSES: Final = frozenset(
    {
        "queue.Queue",
        "queue.SimpleQueue",
        "queue.LifoQueue",
        "queue.PriorityQueue",
        "asyncio.Queue",
        "asyncio.PriorityQueue",
        "asyncio.LifoQueue",
        "multiprocessing.Queue",
        "multiprocessing.JoinableQueue",
        "multiprocessing.SimpleQueue",
        "janus.Queue",
        "eventlet.Queue",
        "eventlet.LightQueue",
        "eventlet.LifoQueue",
        "eventlet.PriorityQueue",
        "gevent.Queue",
        "gevent.JoinableQueue",
        "gevent.SimpleQueue",
        "gevent.LifoQueue",
        "gevent.PriorityQueue",
        "trio.open_memory_channel",
    }
)
_QUEUE_NAME: Final = re.compile(r"(^|_)(q|queue|inbox|outbox|mailbox|jobs|work|tasks|events)$", re.IGNORECASE)


def short(origin: str) -> str:
    """``fastapi.applications.FastAPI`` -> ``fastapi.FastAPI``; calls/project refs unchanged."""
    if "(" in origin or ":" in origin:
        return origin
    parts = origin.split(".")
    return f"{parts[0]}.{parts[-1]}" if len(parts) > 2 else origin


def top_package(origin: str) -> str:
    return origin.split(".", 1)[0].split(":", 1)[0].split("(", 1)[0]


def instance_method(origin: str) -> tuple[str, str] | None:
    """``fastapi.FastAPI().get`` -> (``fastapi.FastAPI``, ``get``) for a method of an instance."""
    head, sep, method = origin.rpartition("().")
    if not sep or not method.isidentifier():
        return None
    return short(head), method


def variants(index: ProjectIndex, origin: str | None) -> list[str]:
    """``origin`` and its readings through external base classes (empty for None)."""
    return index.expand(origin) if origin else []


def is_queue_instance(index: ProjectIndex, origin: str | None) -> bool:
    for v in variants(index, origin):
        if v.endswith("()") and short(v[:-2]) in QUEUE_CLASSES:
            return True
        if v.startswith("multiprocessing.") and v.endswith(".Queue()"):
            return True
    return False


def queue_like_name(text: str | None) -> bool:
    return text is not None and _QUEUE_NAME.search(text.rsplit(".", 1)[-1]) is not None


def any_short_in(index: ProjectIndex, origin: str | None, names: Iterable[str]) -> str | None:
    wanted = frozenset(names)
    return next((v for v in variants(index, origin) if short(v) in wanted), None)
