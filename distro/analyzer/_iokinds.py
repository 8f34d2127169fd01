"""Classifying a call site as a kind of I/O (file, socket, http, db, subprocess, ...).

I/O is what makes a function worth timing even when it is small; pure computation that is
tiny and hot is where instrumentation costs more than it tells.
"""

from __future__ import annotations

from typing import Final

from ._messaging import MESSAGING_PACKAGES
from ._names import top_package, variants
from ._resolve import ProjectIndex
from ._rules_db import db_call
from ._sites import CallSite

HTTP_PACKAGES: Final = frozenset({"requests", "httpx", "aiohttp", "urllib3", "aiohttp_requests"})
FILE_FUNCS: Final = frozenset({"builtins.open", "io.open", "os.open", "os.read", "os.write", "gzip.open"})
PATH_IO: Final = (".read_text", ".write_text", ".read_bytes", ".write_bytes", ".open", ".unlink", ".mkdir")
SUBPROCESS: Final = frozenset(
    {"os.system", "os.popen", "asyncio.create_subprocess_exec", "asyncio.create_subprocess_shell"}
)
SOCKETS: Final = frozenset(
    {"asyncio.open_connection", "asyncio.start_server", "asyncio.open_unix_connection"}
)
NETWORKISH_METHODS: Final = frozenset(
    {"get", "post", "put", "delete", "patch", "request", "fetch", "send", "recv", "read", "write", "connect"}
)


def io_kind(index: ProjectIndex, call: CallSite, models: set[str]) -> str | None:
    for func in variants(index, call.func):
        top = top_package(func)
        if func in FILE_FUNCS or (top == "pathlib" and func.endswith(PATH_IO)) or top == "shutil":
            return "file"
        if top in ("socket", "ssl") or func in SOCKETS:
            return "socket"
        if top in HTTP_PACKAGES or func.startswith(("urllib.request.", "http.client.")):
            return "http"
        if top == "subprocess" or func in SUBPROCESS:
            return "subprocess"
        if top in MESSAGING_PACKAGES:
            return "messaging"
    if db_call(index, call, models):
        return "db"
    if call.awaited and call.func is None and call.method in NETWORKISH_METHODS:
        return "await-network"
    return None
