"""One Flask request's capture: what contrib's server span lacks, read once the request has
been dispatched.

Everything is read after ``full_dispatch_request`` (the ``before_request`` hooks, the view or an
error handler, the ``after_request`` hooks), while contrib's server span is still the current
span (it ends at the request's teardown, later):

- the handler's code location (``code.*``, as the auto-instrumentor writes them);
- query and path parameters (``execscope.http.query.<name>``, ``execscope.http.path.<name>``);
- the JSON or form body, up to ``http_capture_body`` bytes (``execscope.http.request.body``),
  only as the application itself read it: the JSON bytes werkzeug kept when the application
  read ``request.json``/``get_data()``, or the form it parsed. The request's stream is never
  read here, so an application that reads ``request.stream`` itself gets every byte, and its
  body is not captured;
- the response body size (``http.response.body.size``) when the response has a length;
- for an exception that is not an ``HTTPException`` (the application answering), the
  application frame it was raised in (``execscope.error.frame``), whether or not an error
  handler turns it into a response.

Values go through the capture renderer, so sensitive names (``password=``, ``"token": ...``)
are redacted before they are set.
"""

from __future__ import annotations

from typing import Any

from opentelemetry import trace
from opentelemetry.semconv._incubating.attributes.http_attributes import HTTP_RESPONSE_BODY_SIZE
from opentelemetry.trace import Span

from execscope.attributes import ERROR_FRAME, HTTP_REQUEST_BODY
from execscope.instrumentors._capture import values_allowed
from execscope.instrumentors._failsafe import internal_error
from execscope.instrumentors._web import (
    FORM,
    JSON,
    application_frame,
    handler_location,
    read_body_attribute,
    set_parameters,
)

Wrapped = Any


def _recording_span() -> Span | None:
    span = trace.get_current_span()
    return span if span.is_recording() else None


class RequestCapture:
    """The wrappers of ``Flask.full_dispatch_request`` and ``Flask.handle_user_exception``."""

    def __init__(self, body_limit: int) -> None:
        self._body_limit = body_limit

    def full_dispatch_request(
        self, wrapped: Wrapped, instance: Any, args: tuple[Any, ...], kwargs: dict[str, Any]
    ) -> Any:
        try:
            response = wrapped(*args, **kwargs)
        except BaseException as error:
            self._describe(instance, None, error)
            raise
        self._describe(instance, response, None)
        return response

    def handle_user_exception(
        self, wrapped: Wrapped, instance: Any, args: tuple[Any, ...], kwargs: dict[str, Any]
    ) -> Any:
        error = args[0] if args else kwargs.get("e")
        if isinstance(error, BaseException):
            self._note_error(error)
        return wrapped(*args, **kwargs)

    def _note_error(self, error: BaseException) -> None:
        try:
            from werkzeug.exceptions import HTTPException

            span = _recording_span()
            if span is None or isinstance(error, HTTPException):
                return
            frame = application_frame(error.__traceback__)
            if frame is not None:
                span.set_attribute(ERROR_FRAME, frame)
        except Exception:
            internal_error("flask error capture")

    def _describe(self, app: Any, response: Any, error: BaseException | None) -> None:
        try:
            span = _recording_span()
            if span is None:
                return
            from flask import request

            rule = request.url_rule
            if rule is not None:
                view = app.view_functions.get(rule.endpoint)
                if view is not None:
                    span.set_attributes(handler_location(getattr(view, "view_class", view)))
            if values_allowed():
                self._describe_values(span, request)
            if error is not None:
                self._note_error(error)
            elif response is not None and not getattr(response, "is_streamed", True):
                size = response.content_length
                if size is not None:
                    span.set_attribute(HTTP_RESPONSE_BODY_SIZE, size)
        except Exception:
            internal_error("flask request capture")

    def _describe_values(self, span: Span, request: Any) -> None:
        set_parameters(span, request.view_args, request.query_string)
        if self._body_limit <= 0:
            return
        kind, kept = request.mimetype, vars(request)
        body = None
        if kind == JSON:
            # Kept by werkzeug's get_data(), which request.json and get_json() call too.
            data = kept.get("_cached_data")
            body = read_body_attribute(self._body_limit, json_body=data if isinstance(data, bytes) else None)
        elif kind == FORM:
            form = kept.get("form")  # werkzeug's cached property, set once the form was parsed
            if form is not None:
                body = read_body_attribute(
                    self._body_limit, form=form.to_dict(), size=request.content_length or 0
                )
        if body is not None:
            span.set_attribute(HTTP_REQUEST_BODY, body)
