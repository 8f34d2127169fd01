"""What every web framework's request capture shares: where the handler is, and where the
application's own code raised."""

from __future__ import annotations

import functools
import json
import os
import types
from typing import Any, Final
from urllib.parse import parse_qsl

from execscope.instrumentors._capture import code_attributes

__all__ = ["FORM", "JSON", "application_frame", "body_over_limit", "handler_location", "parsed_body"]

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
