"""What every web framework's request capture shares: where the handler is, and where the
application's own code raised."""

from __future__ import annotations

import functools
import json
import os
import types
from collections.abc import Mapping
from typing import Any, Final
from urllib.parse import parse_qsl

from opentelemetry.trace import Span

from execscope.attributes import HTTP_PATH_PREFIX, HTTP_QUERY_PREFIX
from execscope.instrumentors._capture import arguments_attributes, code_attributes, render_value

__all__ = [
    "FORM",
    "JSON",
    "application_frame",
    "body_over_limit",
    "handler_location",
    "parsed_body",
    "read_body_attribute",
    "set_parameters",
]

#: The request bodies captured: JSON and URL-encoded forms (not multipart: files).
JSON: Final = "application/json"
FORM: Final = "application/x-www-form-urlencoded"


def parsed_body(kind: str, body: bytes) -> object:
    """A JSON or form body as the value it encodes (``ValueError`` for invalid JSON)."""
    if kind == JSON:
        return json.loads(body)
    return dict(parse_qsl(body.decode("utf-8", "replace"), keep_blank_values=True))


def body_over_limit(limit: int, size: int) -> str:
    """What stands for a body larger than the capture limit."""
    return f"<body over the {limit}-byte capture limit: {size}+ bytes>"


def read_body_attribute(
    limit: int, *, json_body: bytes | None = None, form: Mapping[str, object] | None = None, size: int = 0
) -> str | None:
    """The rendered body a WSGI framework kept after the application read it: the JSON bytes,
    or the parsed form (whose encoded ``size`` the request declared); None when there is none."""
    if json_body:
        if len(json_body) > limit:
            return body_over_limit(limit, len(json_body))
        try:
            value: object = parsed_body(JSON, json_body)
        except ValueError:
            value = json_body  # not valid JSON: recorded as the bytes it is, still bounded and masked
        return render_value(value)
    if form is not None:
        if size > limit:
            return body_over_limit(limit, size)
        return render_value(dict(form))
    return None


def set_parameters(span: Span, path: Mapping[str, object] | None, query: bytes | str) -> None:
    """``execscope.http.path.<name>`` and ``execscope.http.query.<name>`` on ``span``, redacted."""
    if path:
        span.set_attributes(arguments_attributes(path, HTTP_PATH_PREFIX))
    if query:
        text = query.decode("latin-1") if isinstance(query, bytes) else query
        span.set_attributes(arguments_attributes(dict(parse_qsl(text)), HTTP_QUERY_PREFIX))


@functools.lru_cache(maxsize=1024)
def _cached_location(endpoint: Any) -> dict[str, str | int]:
    return code_attributes(endpoint)


def handler_location(endpoint: Any) -> dict[str, str | int]:
    """The ``code.*`` attributes of a request handler, remembered per handler."""
    try:
        return _cached_location(endpoint)
    except TypeError:  # an unhashable endpoint object
        return code_attributes(endpoint)


@functools.lru_cache(maxsize=1)
def _library_folders() -> tuple[str, ...]:
    # The auto-instrumentor's own rule for "not the application's" (standard library,
    # site-packages, execscope), imported on the error path only.
    from execscope.autotrace._selection import installed_dirs

    return tuple(folder.rstrip(os.sep) + os.sep for folder in installed_dirs())


def application_frame(traceback: types.TracebackType | None) -> str | None:
    """``file:line in function`` of the innermost traceback frame outside installed packages,
    the standard library and execscope: where the application's own code raised (or called what
    raised)."""
    folders = _library_folders()
    found = None
    while traceback is not None:
        code = traceback.tb_frame.f_code
        if not code.co_filename.startswith("<"):
            path = os.path.normcase(os.path.realpath(code.co_filename))
            if not path.startswith(folders):
                name = getattr(code, "co_qualname", code.co_name)  # co_qualname: Python 3.11+
                found = f"{code.co_filename}:{traceback.tb_lineno} in {name}"
        traceback = traceback.tb_next
    return found
