"""One request's capture around a WSGI framework's dispatch, shared by the Flask and Django
instrumentors: what contrib's server span lacks, read once the view has answered.

A framework's capture says how to find, in its own request and response objects, the view, the
URL's and the query's parameters, the body the application read and the response's size, and
which exceptions are the framework answering rather than failing. Everything is read while
contrib's server span is the current span; with none recording, nothing is done. Values go
through the capture renderer, so sensitive names are redacted before they are set.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Mapping
from typing import Any

from opentelemetry import trace
from opentelemetry.semconv._incubating.attributes.http_attributes import HTTP_RESPONSE_BODY_SIZE
from opentelemetry.trace import Span

from execscope.attributes import ERROR_FRAME, HTTP_REQUEST_BODY
from execscope.instrumentors._capture import values_allowed
from execscope.instrumentors._failsafe import internal_error
from execscope.instrumentors._web import application_frame, handler_location, set_parameters

__all__ = ["DispatchCapture"]


def _recording_span() -> Span | None:
    span = trace.get_current_span()
    return span if span.is_recording() else None


class DispatchCapture(ABC):
    """The wrappers of a framework's dispatch (:meth:`dispatched`) and of the method its views'
    exceptions pass through (:meth:`error_seen`), for ``wrapt``."""

    def __init__(self, body_limit: int) -> None:
        self.body_limit = body_limit

    # -- what a framework tells ----------------------------------------------------------------

    @abstractmethod
    def request_of(self, app: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
        """The request being dispatched, from the dispatch method's arguments."""

    @abstractmethod
    def view_of(self, app: Any, request: Any) -> object | None:
        """The function (or class) that handled the request, if one was found."""

    @abstractmethod
    def parameters_of(self, request: Any) -> tuple[Mapping[str, object] | None, bytes | str]:
        """The URL's parameters by name, and the query string."""

    @abstractmethod
    def body_of(self, request: Any) -> str | None:
        """The rendered body the application read, if it read one that is captured."""

    @abstractmethod
    def response_size(self, response: Any) -> int | None:
        """The response body's size, when it is known without reading a stream."""

    @abstractmethod
    def answers(self, error: BaseException) -> bool:
        """Is ``error`` the framework answering the request (a 4xx), rather than a failure?"""

    # -- the wrappers --------------------------------------------------------------------------

    def _request(self, app: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
        try:
            return self.request_of(app, args, kwargs)
        except Exception:
            internal_error("request lookup")
            return None

    def dispatched(self, wrapped: Any, app: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
        request = self._request(app, args, kwargs)
        try:
            response = wrapped(*args, **kwargs)
        except BaseException as error:
            self._describe(app, request, None, error)
            raise
        self._describe(app, request, response, None)
        return response

    async def dispatched_async(
        self, wrapped: Any, app: Any, args: tuple[Any, ...], kwargs: dict[str, Any]
    ) -> Any:
        request = self._request(app, args, kwargs)
        try:
            response = await wrapped(*args, **kwargs)
        except BaseException as error:
            self._describe(app, request, None, error)
            raise
        self._describe(app, request, response, None)
        return response

    def error_seen(self, wrapped: Any, app: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
        error = args[0] if args else next(iter(kwargs.values()), None)
        if isinstance(error, BaseException):
            self._note_error(error)
        return wrapped(*args, **kwargs)

    # -- recording -----------------------------------------------------------------------------

    def _note_error(self, error: BaseException) -> None:
        try:
            span = _recording_span()
            if span is None or self.answers(error):
                return
            frame = application_frame(error.__traceback__)
            if frame is not None:
                span.set_attribute(ERROR_FRAME, frame)
        except Exception:
            internal_error("request error capture")

    def _describe(self, app: Any, request: Any, response: Any, error: BaseException | None) -> None:
        try:
            span = _recording_span()
            if span is None or request is None:
                return
            view = self.view_of(app, request)
            if view is not None:
                span.set_attributes(handler_location(getattr(view, "view_class", view)))
            if values_allowed():
                set_parameters(span, *self.parameters_of(request))
                body = self.body_of(request) if self.body_limit > 0 else None
                if body is not None:
                    span.set_attribute(HTTP_REQUEST_BODY, body)
            if error is not None:
                self._note_error(error)
            elif response is not None:
                size = self.response_size(response)
                if size is not None:
                    span.set_attribute(HTTP_RESPONSE_BODY_SIZE, size)
        except Exception:
            internal_error("request capture")
