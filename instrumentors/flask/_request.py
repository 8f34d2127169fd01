"""One Flask request's capture (see :mod:`execscope.instrumentors._dispatch`), read after
``full_dispatch_request`` (the ``before_request`` hooks, the view or an error handler, the
``after_request`` hooks), before contrib ends its span at the request's teardown:

- the view's code location (a class-based view's class);
- the URL's and the query's parameters (``execscope.http.path.<name>``,
  ``execscope.http.query.<name>``);
- the JSON or form body, up to ``http_capture_body`` bytes (``execscope.http.request.body``),
  only as the application itself read it: the JSON bytes werkzeug kept when the application
  read ``request.json``/``get_data()``, or the form it parsed. The request's stream is never
  read here, so an application that reads ``request.stream`` itself gets every byte, and its
  body is not captured;
- the response body size (``http.response.body.size``) when the response has a length;
- for an exception that is not an ``HTTPException`` (the application answering), the
  application frame it was raised in (``execscope.error.frame``), whether or not an error
  handler turns it into a response (``handle_user_exception`` sees them all).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from execscope.instrumentors._dispatch import DispatchCapture
from execscope.instrumentors._web import FORM, JSON, read_body_attribute


class RequestCapture(DispatchCapture):
    """Wraps ``Flask.full_dispatch_request`` and ``Flask.handle_user_exception``."""

    def request_of(self, app: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
        from flask import request

        return request

    def view_of(self, app: Any, request: Any) -> object | None:
        rule = request.url_rule
        return None if rule is None else app.view_functions.get(rule.endpoint)

    def parameters_of(self, request: Any) -> tuple[Mapping[str, object] | None, bytes | str]:
        return request.view_args, request.query_string

    def body_of(self, request: Any) -> str | None:
        kind, kept = request.mimetype, vars(request)
        if kind == JSON:
            # Kept by werkzeug's get_data(), which request.json and get_json() call too.
            data = kept.get("_cached_data")
            return read_body_attribute(self.body_limit, json_body=data if isinstance(data, bytes) else None)
        if kind == FORM:
            form = kept.get("form")  # werkzeug's cached property, set once the form was parsed
            if form is not None:
                return read_body_attribute(
                    self.body_limit, form=form.to_dict(), size=request.content_length or 0
                )
        return None

    def response_size(self, response: Any) -> int | None:
        if getattr(response, "is_streamed", True):
            return None
        size: int | None = response.content_length
        return size

    def answers(self, error: BaseException) -> bool:
        from werkzeug.exceptions import HTTPException

        return isinstance(error, HTTPException)
