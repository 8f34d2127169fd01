"""The trace context in environment variables: written for a child process, read at start-up.

The variable names are the OpenTelemetry specification's for environment carriers
(``TRACEPARENT``, ``TRACESTATE``, ``BAGGAGE``: the W3C header names, upper-cased); whatever else
the configured propagators write (execscope's correlation propagator adds ``X_CORRELATION_ID``)
is carried the same way.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping, MutableMapping
from typing import Any

from opentelemetry import baggage, propagate, trace
from opentelemetry import context as context_api
from opentelemetry.context import Context
from opentelemetry.propagators.textmap import Getter, Setter

_logger = logging.getLogger(__name__)

try:  # the API's own carriers, where this release has them
    from opentelemetry.propagators._envcarrier import EnvironmentGetter, EnvironmentSetter
except ImportError:  # pragma: no cover - older API releases

    def _variable_name(key: str) -> str:
        # The specification's normalisation: characters outside [A-Za-z0-9_] become "_", upper-cased.
        name = "".join(char if char.isalnum() or char == "_" else "_" for char in key).upper()
        return f"_{name}" if not name or name[0].isdigit() else name

    class EnvironmentGetter(Getter[Mapping[str, str]]):  # type: ignore[no-redef]
        def get(self, carrier: Mapping[str, str], key: str) -> list[str] | None:
            value = carrier.get(_variable_name(key))
            return None if value is None else [value]

        def keys(self, carrier: Mapping[str, str]) -> list[str]:
            return list(carrier)

    class EnvironmentSetter(Setter[MutableMapping[str, str]]):  # type: ignore[no-redef]
        def set(self, carrier: MutableMapping[str, str], key: str, value: str) -> None:
            carrier[_variable_name(key)] = value


_GETTER = EnvironmentGetter()
_SETTER = EnvironmentSetter()


def _variable_names() -> set[str]:
    """The environment variables the configured propagators read (their fields, as variables)."""
    names: dict[str, str] = {}
    for field in propagate.get_global_textmap().fields:
        _SETTER.set(names, field, "")
    return set(names)


def context_variables(context: Context | None = None) -> dict[str, str]:
    """The environment variables that carry ``context`` (the current one by default); empty when
    there is no span and no baggage to carry."""
    variables: dict[str, str] = {}
    propagate.inject(variables, context, setter=_SETTER)
    return variables


def child_environment(env: Mapping[Any, Any] | None, variables: Mapping[str, str]) -> dict[Any, Any]:
    """The environment to start a child with: ``env`` (``None``: this process's, as ``subprocess``
    does) with ``variables`` added.

    A variable the caller put in an explicit ``env`` is theirs and kept; one inherited from this
    process's environment describes this process's parent, not the code starting the child, and is
    replaced. Keys may be ``bytes`` on POSIX: a variable is matched in either form.
    """
    explicit = env is not None
    child: dict[Any, Any] = dict(os.environ if env is None else env)
    for name, value in variables.items():
        encoded = os.fsencode(name)
        if explicit and (name in child or encoded in child):
            continue
        child.pop(encoded, None)
        child[name] = value
    return child


def continue_from_environment(environ: Mapping[str, str]) -> bool:
    """Make the trace context found in ``environ`` (if any) current in this thread, for good: the
    process's own root spans become children of the span that started it, with its baggage and
    correlation id. Returns whether there was one."""
    if not any(name in environ for name in _variable_names()):
        return False
    extracted = propagate.extract(environ, getter=_GETTER)
    if not trace.get_current_span(extracted).get_span_context().is_valid and not baggage.get_all(extracted):
        _logger.info("execscope: the trace context in this process's environment is not valid; ignored")
        return False
    context_api.attach(extracted)  # never detached: it is the context the whole process runs in
    return True
