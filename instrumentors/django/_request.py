"""One Django request's capture (see :mod:`execscope.instrumentors._dispatch`), read when
``BaseHandler._get_response`` returns or raises, inside every middleware:

- the view's code location (a class-based view's class);
- the URL's parameters (``execscope.http.path.<name>``, positional groups by their index) and
  the query's (``execscope.http.query.<name>``);
- the JSON or form body, up to ``http_capture_body`` bytes (``execscope.http.request.body``),
  only as the application itself read it: the bytes Django kept when the application read
  ``request.body``, or the ``request.POST`` it parsed. The request's stream is never read here,
  so an application that reads ``request`` as a file gets every byte, and its body is not
  captured;
- the response body size (``http.response.body.size``), for a response that is not streamed;
- for an exception a view raised that is not Django answering the request (``Http404``,
  ``PermissionDenied``, ``BadRequest``, ``SuspiciousOperation``), the application frame it was
  raised in (``execscope.error.frame``), whether or not a middleware turns it into a response
  (``process_exception_by_middleware`` sees them all).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from execscope.instrumentors._dispatch import DispatchCapture
from execscope.instrumentors._web import FORM, JSON, read_body_attribute


class RequestCapture(DispatchCapture):
    """Wraps ``BaseHandler._get_response`` (and its async twin) and
    ``BaseHandler.process_exception_by_middleware``."""

    def request_of(self, app: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
        return args[0] if args else kwargs.get("request")

    def view_of(self, app: Any, request: Any) -> object | None:
        match = getattr(request, "resolver_match", None)
        return None if match is None else match.func

    def parameters_of(self, request: Any) -> tuple[Mapping[str, object] | None, bytes | str]:
        path: dict[str, object] = {}
        match = getattr(request, "resolver_match", None)
        if match is not None:
            path.update({str(index): value for index, value in enumerate(match.args)})
            path.update(match.kwargs)
        return path, request.META.get("QUERY_STRING", "")

    def body_of(self, request: Any) -> str | None:
        kind, kept = request.content_type, vars(request)
        if kind == JSON:
            data = kept.get("_body")  # kept by HttpRequest.body once the application read it
            return read_body_attribute(self.body_limit, json_body=data if isinstance(data, bytes) else None)
        if kind == FORM:
            form = kept.get("_post")  # set once the application parsed request.POST
            if form is not None:
                size = int(request.META.get("CONTENT_LENGTH") or 0)
                return read_body_attribute(self.body_limit, form=form.dict(), size=size)
        return None

    def response_size(self, response: Any) -> int | None:
        if getattr(response, "streaming", True):
            return None
        length = response.get("Content-Length")
        if length is not None and str(length).isdigit():
            return int(length)
        # The chunks the response holds (``HttpResponse._container``), measured without joining
        # them: ``response.content`` would copy the whole body.
        chunks = getattr(response, "_container", None)
        if isinstance(chunks, list) and all(isinstance(chunk, bytes) for chunk in chunks):
            return sum(len(chunk) for chunk in chunks)
        return None

    def answers(self, error: BaseException) -> bool:
        from django.core.exceptions import BadRequest, PermissionDenied, SuspiciousOperation
        from django.http import Http404

        return isinstance(error, (Http404, PermissionDenied, BadRequest, SuspiciousOperation))
