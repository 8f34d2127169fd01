"""Span attribute names that execscope writes and reads.

One place for every ``execscope.*`` key, so the producers (instrumentation, processors) and the
consumers (the store's indexes, ``execscope show``) cannot drift apart. Standard names come from
``opentelemetry.semconv``.
"""

from typing import Final

from opentelemetry.semconv.attributes.code_attributes import CODE_FUNCTION_NAME

#: Identifier shared by every span of one unit of work (a request, a task, a CLI run).
CORRELATION_ID: Final = "execscope.correlation_id"
#: Prefix of captured call arguments: ``execscope.args.<parameter name>``.
ARGS_PREFIX: Final = "execscope.args."
#: The captured return value of a call.
RETURN_VALUE: Final = "execscope.return"
#: The difference of an object's state before and after a call (a JSON document).
STATE_DIFF: Final = "execscope.state.diff"
#: A message an actor, a WebSocket or a pub/sub channel received or sent (a bounded preview).
MESSAGE: Final = "execscope.message"
#: What an actor answered to the message it handled.
REPLY: Final = "execscope.reply"
#: Prefix of a web request's captured query parameters: ``execscope.http.query.<name>``.
HTTP_QUERY_PREFIX: Final = "execscope.http.query."
#: Prefix of a web request's captured path parameters: ``execscope.http.path.<name>``.
HTTP_PATH_PREFIX: Final = "execscope.http.path."
#: A web request's JSON or form body, captured and redacted.
HTTP_REQUEST_BODY: Final = "execscope.http.request.body"
#: Where an unhandled exception was raised in the application's own code: ``file:line in function``.
ERROR_FRAME: Final = "execscope.error.frame"
#: Older semantic-convention name for the function, still emitted by some instrumentations.
LEGACY_CODE_FUNCTION: Final = "code.function"

__all__ = [
    "ARGS_PREFIX",
    "CODE_FUNCTION_NAME",
    "CORRELATION_ID",
    "ERROR_FRAME",
    "HTTP_PATH_PREFIX",
    "HTTP_QUERY_PREFIX",
    "HTTP_REQUEST_BODY",
    "LEGACY_CODE_FUNCTION",
    "MESSAGE",
    "REPLY",
    "RETURN_VALUE",
    "STATE_DIFF",
]
