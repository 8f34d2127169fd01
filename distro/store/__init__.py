"""The embedded trace store: where spans go when no backend is configured.

One SQLite database per store folder (default ``./.execscope/traces.db``), written by
:class:`StoreSpanExporter` from any number of processes and read by :class:`TraceStore`.
"""

from execscope.store._reader import SpanFilter, TraceStore
from execscope.store._schema import DATABASE_NAME, SCHEMA_VERSION
from execscope.store._writer import StoreSpanExporter, enforce_retention

__all__ = [
    "DATABASE_NAME",
    "SCHEMA_VERSION",
    "SpanFilter",
    "StoreSpanExporter",
    "TraceStore",
    "enforce_retention",
]
