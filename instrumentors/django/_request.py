"""One Django request's capture: what contrib's server span lacks, read once the view has
answered.

Everything is read when ``BaseHandler._get_response`` returns (or raises), inside the
middleware, while contrib's server span is the current span:

- the view's code location (``code.*``, as the auto-instrumentor writes them; a class-based
  view's class);
- the URL's and the query's parameters (``execscope.http.path.<name>``, positional ones by
  their index, and ``execscope.http.query.<name>``);
- the JSON or form body, up to ``http_capture_body`` bytes (``execscope.http.request.body``),
  only as the application itself read it: the bytes Django kept when the application read
  ``request.body``, or the ``request.POST`` it parsed. The request's stream is never read here,
  so an application that reads ``request`` as a file gets every byte, and its body is not
  captured;
- the response body size (``http.response.body.size``), for a response that is not streamed;
- for an exception a view raised that is not Django answering the request (``Http404``,
  ``PermissionDenied``, ``BadRequest``, ``SuspiciousOperation``), the application frame it was
  raised in (``execscope.error.frame``), whether or not a middleware turns it into a response.

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


def _answers(error: BaseException) -> bool:
    """Is ``error`` Django's way of answering a request (a 4xx), rather than a failure?"""
    from django.core.exceptions import BadRequest, PermissionDenied, SuspiciousOperation
    from django.http import Http404

    return isinstance(error, (Http404, PermissionDenied, BadRequest, SuspiciousOperation))


def _response_size(response: Any) -> int | None:
    if getattr(response, "streaming", True):
        return None
    length = response.get("Content-Length")
    if length is not None and str(length).isdigit():
        return int(length)
    return len(response.content)


class RequestCapture:
    """The wrappers of ``BaseHandler._get_response`` (and its async twin) and of
    ``BaseHandler.process_exception_by_middleware``."""

    def __init__(self, body_limit: int) -> None:
        self._body_limit = body_limit

    def get_response(
        self, wrapped: Wrapped, instance: Any, args: tuple[Any, ...], kwargs: dict[str, Any]
    ) -> Any:
        request = args[0] if args else kwargs.get("request")
        try:
            response = wrapped(*args, **kwargs)
        except BaseException as error:
            self._describe(request, None, error)
            raise
        self._describe(request, response, None)
        return response

    async def _get_response_async(
        self, wrapped: Wrapped, args: tuple[Any, ...], kwargs: dict[str, Any]
    ) -> Any:
        request = args[0] if args else kwargs.get("request")
        try:
            response = await wrapped(*args, **kwargs)
        except BaseException as error:
            self._describe(request, None, error)
            raise
        self._describe(request, response, None)
        return response

    def get_response_async(
        self, wrapped: Wrapped, instance: Any, args: tuple[Any, ...], kwargs: dict[str, Any]
    ) -> Any:
        return self._get_response_async(wrapped, args, kwargs)

    def process_exception_by_middleware(
        self, wrapped: Wrapped, instance: Any, args: tuple[Any, ...], kwargs: dict[str, Any]
    ) -> Any:
        error = args[0] if args else kwargs.get("exception")
        if isinstance(error, BaseException):
            self._note_error(error)
        return wrapped(*args, **kwargs)

    def _note_error(self, error: BaseException) -> None:
        try:
            span = _recording_span()
            if span is None or _answers(error):
                return
            frame = application_frame(error.__traceback__)
            if frame is not None:
                span.set_attribute(ERROR_FRAME, frame)
        except Exception:
            internal_error("django error capture")

    def _describe(self, request: Any, response: Any, error: BaseException | None) -> None:
        try:
            span = _recording_span()
            if span is None or request is None:
                return
            match = getattr(request, "resolver_match", None)
            if match is not None:
                view = match.func
                span.set_attributes(handler_location(getattr(view, "view_class", view)))
            if values_allowed():
                self._describe_values(span, request, match)
            if error is not None:
                self._note_error(error)
            elif response is not None:
                size = _response_size(response)
                if size is not None:
                    span.set_attribute(HTTP_RESPONSE_BODY_SIZE, size)
        except Exception:
            internal_error("django request capture")

    def _describe_values(self, span: Span, request: Any, match: Any) -> None:
        path: dict[str, object] = {}
        if match is not None:
            path.update({str(index): value for index, value in enumerate(match.args)})
            path.update(match.kwargs)
        set_parameters(span, path, request.META.get("QUERY_STRING", ""))
        if self._body_limit <= 0:
            return
        kind, kept = request.content_type, vars(request)
        body = None
        if kind == JSON:
            data = kept.get("_body")  # kept by HttpRequest.body once the application read it
            body = read_body_attribute(self._body_limit, json_body=data if isinstance(data, bytes) else None)
        elif kind == FORM:
            form = kept.get("_post")  # set once the application parsed request.POST
            if form is not None:
                size = int(request.META.get("CONTENT_LENGTH") or 0)
                body = read_body_attribute(self._body_limit, form=form.dict(), size=size)
        if body is not None:
            span.set_attribute(HTTP_REQUEST_BODY, body)
