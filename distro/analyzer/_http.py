"""Linking HTTP client calls to the project's own routes.

A service calling its own endpoints (or a worker calling the API) is a message flow just
like a queue; matching literal client paths against declared route templates makes those
hops visible in the graph.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Final
from urllib.parse import urlsplit

from ._model import Route
from ._names import top_package, variants
from ._resolve import ProjectIndex
from ._sites import CallSite

CLIENT_PACKAGES: Final = frozenset({"requests", "httpx", "aiohttp"})
VERBS: Final = frozenset({"get", "post", "put", "delete", "patch", "options", "head"})
_PARAM: Final = re.compile(r"^(<[^>]+>|\{[^}]*\})$")


@dataclass(frozen=True)
class HttpCall:
    call: CallSite
    method: str
    path: str


def _client_origin(index: ProjectIndex, call: CallSite) -> bool:
    for origin in variants(index, call.func):
        # test clients count; ``app.get("/x")`` on a FastAPI app registers a route instead
        if (
            top_package(origin) in CLIENT_PACKAGES
            or ".TestClient()." in origin
            or ".test_client()." in origin
        ):
            return True
    return False


def http_call(index: ProjectIndex, call: CallSite) -> HttpCall | None:
    method = call.method or ""
    if method not in VERBS | {"request"} or not _client_origin(index, call):
        return None
    args = call.node.args
    position = 1 if method == "request" else 0
    if len(args) <= position:
        return None
    url = index.const_str(args[position], call.scope)
    if url is None:
        return None
    verb = method.upper()
    if method == "request":
        verb = (index.const_str(args[0], call.scope) or "ANY").upper()
    path = urlsplit(url).path if "://" in url else url.split("?", 1)[0]
    return HttpCall(call, verb, path)


def _segments(path: str) -> list[str]:
    return [s for s in path.strip("/").split("/") if s]


def route_matches(route: Route, verb: str, path: str) -> bool:
    if route.method not in ("ANY", verb) and verb != "ANY":
        return False
    template, actual = _segments(route.path), _segments(path)
    if len(template) != len(actual):
        return False
    return all(t == a or _PARAM.match(t) or "{}" in a for t, a in zip(template, actual, strict=True))
