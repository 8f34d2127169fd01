"""Recognising web entry points: routes, views, app objects, WebSocket endpoints.

Request handlers are where latency is felt, so they get argument-level recording; the
rules therefore insist on resolved framework origins (a decorator from a real ``FastAPI()``
or ``Blueprint()``), not on decorator spellings like ``.get``.
"""

from __future__ import annotations

import ast
from typing import Final

from ._book import RoleBook
from ._model import Evidence, Route
from ._names import instance_method, short, variants
from ._resolve import ProjectIndex, Scope
from ._sites import CallSite, DecoratorSite, ProjectFacts, UnitFacts, dotted

APP_CLASSES: Final = frozenset(
    {
        "fastapi.FastAPI",
        "fastapi.APIRouter",
        "flask.Flask",
        "flask.Blueprint",
        "quart.Quart",
        "quart.Blueprint",
        "starlette.Starlette",
        "starlette.Router",
        "aiohttp.RouteTableDef",
        "aiohttp.Application",
        "sanic.Sanic",
        "sanic.Blueprint",
        "litestar.Litestar",
        "litestar.Router",
    }
)
APP_FACTORIES: Final = frozenset({"django.get_asgi_application", "django.get_wsgi_application"})
ROUTE_DECORATORS: Final = frozenset(
    {"get", "post", "put", "delete", "patch", "options", "head", "trace", "route", "api_route", "view"}
    | {"websocket", "websocket_route"}
)
ROUTE_REGISTRATIONS: Final = frozenset(
    {"add_api_route", "add_url_rule", "add_websocket_route", "add_api_websocket_route", "add_route"}
    | {"add_get", "add_post", "add_put", "add_delete", "add_patch", "add_view"}
)
ROUTE_FUNCTIONS: Final = frozenset(
    {"django.path", "django.re_path", "django.url", "starlette.Route", "starlette.WebSocketRoute"}
)
VIEW_BASE_PREFIXES: Final = (
    "django.views.",
    "rest_framework.views.",
    "rest_framework.generics.",
    "rest_framework.viewsets.",
    "flask.views.",
    "starlette.endpoints.",
    "channels.generic.",
    "tornado.web.RequestHandler",
    "tornado.websocket.",
    "aiohttp.web.View",
    "aiohttp.web_urldispatcher.View",
)
VIEW_BASE_SHORT: Final = frozenset(
    {"django.View", "flask.MethodView", "flask.View", "starlette.HTTPEndpoint"}
)
_HTTP_VERBS: Final = frozenset({"get", "post", "put", "delete", "patch", "options", "head", "trace"})


def _route_prefix(index: ProjectIndex, receiver: ast.expr, scope: Scope) -> str:
    """``APIRouter(prefix="/users")`` / ``Blueprint(url_prefix=...)`` prefix of a route's receiver."""
    if not isinstance(receiver, ast.Name):
        return ""
    found = index.value_of(receiver.id, scope)
    if not found or not isinstance(found[0], ast.Call):
        return ""
    for kw in found[0].keywords:
        if kw.arg in ("prefix", "url_prefix"):
            return index.const_str(kw.value, found[1]) or ""
    return ""


def _first_str(index: ProjectIndex, call: ast.Call, scope: Scope, keywords: tuple[str, ...]) -> str | None:
    for arg in call.args:
        text = index.const_str(arg, scope)
        if text is not None:
            return text
    for kw in call.keywords:
        if kw.arg in keywords:
            return index.const_str(kw.value, scope)
    return None


def _decorator_route(index: ProjectIndex, facts: UnitFacts, deco: DecoratorSite) -> Route | None:
    for origin in variants(index, deco.origin):
        found = instance_method(origin)
        if not found or found[0] not in APP_CLASSES or found[1] not in ROUTE_DECORATORS:
            continue
        method = found[1]
        path = ""
        if deco.call is not None:
            path = _first_str(index, deco.call, facts.scope, ("path", "rule")) or ""
            receiver = deco.call.func.value if isinstance(deco.call.func, ast.Attribute) else None
            if receiver is not None:
                path = _route_prefix(index, receiver, facts.scope) + path
        verb = method.upper() if method in _HTTP_VERBS else "WS" if "websocket" in method else "ANY"
        return Route(verb, path, facts.unit.name, deco.line)
    return None


def _view_reference(index: ProjectIndex, arg: ast.expr, scope: Scope) -> str | None:
    """A view argument: ``views.user_list``, ``UserView.as_view()`` or a dotted string."""
    if isinstance(arg, ast.Call) and isinstance(arg.func, ast.Attribute) and arg.func.attr == "as_view":
        arg = arg.func.value
    if isinstance(arg, ast.Constant) and isinstance(arg.value, str) and "." in arg.value:
        return index.canonical(arg.value)
    found = index.origin(arg, scope)
    return found if found and index.split_ref(found) else None


def _registration(index: ProjectIndex, call: CallSite) -> bool:
    if call.func and short(call.func) in ROUTE_FUNCTIONS:
        return True
    if call.method not in ROUTE_REGISTRATIONS:
        return False
    for receiver in variants(index, call.receiver):
        if receiver.endswith("()") and short(receiver[:-2]) in APP_CLASSES:
            return True  # app.add_url_rule(...)
        owner = instance_method(receiver)
        if owner is not None and owner[0] in APP_CLASSES:
            return True  # app.router.add_get(...)
    return False


def _recognise_registrations(facts: ProjectFacts, book: RoleBook, routes: list[Route]) -> None:
    index = facts.index
    for unit_facts in facts.units:
        for call in unit_facts.calls:
            if not _registration(index, call):
                continue
            args = list(call.node.args) + [
                kw.value
                for kw in call.node.keywords
                if kw.arg in ("view", "endpoint", "view_func", "handler")
            ]
            path = _first_str(index, call.node, call.scope, ("path", "rule", "route")) or ""
            label = dotted(call.node.func) or call.method or "route"
            for arg in args:
                ref = _view_reference(index, arg, call.scope)
                if ref is None:
                    continue
                evidence = Evidence(
                    call.line, "call", f"{label}({path!r}, ...) -> {call.func or call.method}"
                )
                if book.add_ref("web_entry", ref, evidence, 0.9, call.unit.path):
                    verb = (
                        call.method[4:].upper() if call.method and call.method[4:] in _HTTP_VERBS else "ANY"
                    )
                    routes.append(Route(verb, path, ref, call.line))


def _recognise_app_objects(facts: ProjectFacts, book: RoleBook) -> None:
    index = facts.index
    for module in index.modules.values():
        scope = index.module_scope(module.name)
        for name, value in module.assigns.items():
            found = index.origin(value, scope)
            for origin in variants(index, found):
                cls = origin[:-2] if origin.endswith("()") else None
                if cls is not None and (short(cls) in APP_CLASSES or short(cls) in APP_FACTORIES):
                    evidence = Evidence(value.lineno, "assignment", f"{name} = {short(cls)}(...)")
                    book.add_target(
                        "web_entry", module.name, name, "object", module.path, value.lineno, evidence, 0.95
                    )
                    break


def _is_view_base(origin: str) -> bool:
    return origin.startswith(VIEW_BASE_PREFIXES) or short(origin) in VIEW_BASE_SHORT


def _gateway_params(unit_facts: UnitFacts) -> str | None:
    node = unit_facts.unit.node
    if unit_facts.unit.kind != "function" or unit_facts.unit.function is None:
        return None
    if unit_facts.unit.function.class_qualname or unit_facts.unit.function.parent_function:
        return None
    assert isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef))
    params = tuple(a.arg for a in node.args.args)
    if isinstance(node, ast.AsyncFunctionDef) and params == ("scope", "receive", "send"):
        return "ASGI"
    if params == ("environ", "start_response"):
        return "WSGI"
    return None


def recognise_web(facts: ProjectFacts, book: RoleBook) -> list[Route]:
    """Add web_entry recognitions; return the project's declared routes."""
    index = facts.index
    routes: list[Route] = []
    for unit_facts in facts.units:
        unit = unit_facts.unit
        for deco in unit_facts.decorators:
            route = _decorator_route(index, unit_facts, deco)
            if route is not None:
                routes.append(route)
                book.add(
                    "web_entry", unit, Evidence(deco.line, "decorator", f"{deco.text} -> {deco.origin}"), 0.95
                )
        for origin, line, text in unit_facts.bases:
            if _is_view_base(origin):
                book.add("web_entry", unit, Evidence(line, "base_class", f"{text} -> {origin}"), 0.95)
                break
        gateway = _gateway_params(unit_facts)
        if gateway:
            evidence = Evidence(unit.line, "signature", f"{gateway} callable signature")
            book.add("web_entry", unit, evidence, 0.8)
    _recognise_registrations(facts, book, routes)
    _recognise_app_objects(facts, book)
    return sorted(set(routes), key=lambda r: (r.path, r.method, r.handler, r.line))
