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
#: Older semantic-convention name for the function, still emitted by some instrumentations.
LEGACY_CODE_FUNCTION: Final = "code.function"

__all__ = [
    "ARGS_PREFIX",
    "CODE_FUNCTION_NAME",
    "CORRELATION_ID",
    "LEGACY_CODE_FUNCTION",
    "RETURN_VALUE",
    "STATE_DIFF",
]
