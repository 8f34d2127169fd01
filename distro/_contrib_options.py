"""Options execscope passes to contrib instrumentations when it loads them.

``opentelemetry-instrument`` calls every instrumentor's ``instrument()`` with no options; the
distro adds these, chosen from the settings:

- ASGI frameworks (FastAPI, Starlette): no span per low-level ASGI ``send``/``receive`` event.
  A request is one server span; WebSocket messages get one span each from execscope's own
  instrumentor instead of one per ASGI event.
- DB-API drivers: statement parameters recorded only when ``db_parameters`` is on (they are
  redacted by column name in the span pipeline).
"""

from __future__ import annotations

from typing import Any, Final

from execscope.settings import Settings

_ASGI_FRAMEWORKS: Final = frozenset({"fastapi", "starlette"})
#: Contrib instrumentations built on its DB-API integration, which accept ``capture_parameters``.
_DBAPI_DRIVERS: Final = frozenset(
    {"psycopg", "psycopg2", "sqlite3", "mysql", "mysqlclient", "pymysql", "pymssql"}
)


def contrib_options(name: str, settings: Settings) -> dict[str, Any]:
    """Extra ``instrument()`` keyword arguments for the contrib instrumentation ``name``."""
    if name in _ASGI_FRAMEWORKS:
        return {"exclude_spans": ["receive", "send"]}
    if name in _DBAPI_DRIVERS and settings.db_parameters:
        return {"capture_parameters": True}
    return {}
