"""Installing the auto-instrumentor in a process: settings → selection, runtime, import hook."""

from __future__ import annotations

import logging
import sys
import threading
from collections.abc import Callable
from dataclasses import replace

from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.sampling import (
    ALWAYS_OFF,
    ALWAYS_ON,
    ParentBased,
    Sampler,
    StaticSampler,
    TraceIdRatioBased,
)

from execscope.autotrace import _runtime
from execscope.autotrace._hook import RewritingFinder, imported_too_early, install_finder, remove_finder
from execscope.autotrace._levels import level_number
from execscope.autotrace._recorder import RECORDER
from execscope.autotrace._selection import Selection, default_roots
from execscope.capture import CaptureLimits, Redactor
from execscope.capture._redact import DEFAULT_NAME_PATTERNS
from execscope.plan import Plan, PlanError, load_plan
from execscope.settings import Settings

_logger = logging.getLogger("execscope.autotrace")
_lock = threading.Lock()
_finder: RewritingFinder | None = None


def active_finder() -> RewritingFinder | None:
    return _finder


def root_sampler(sampler: Sampler) -> Callable[[int, str], bool]:
    """The head-sampling decision for a local root, as cheap as the sampler allows.

    The SDK's standard samplers are decided without calling them (a ratio sampler compares the
    trace id's low 64 bits with its bound, as ``TraceIdRatioBased`` does); any other sampler is
    asked through ``should_sample``.
    """
    root = sampler
    if isinstance(root, ParentBased):
        root = getattr(root, "_root", root)
    if root is ALWAYS_ON:
        return lambda trace_id, name: True
    if root is ALWAYS_OFF:
        return lambda trace_id, name: False
    if isinstance(root, TraceIdRatioBased):
        bound = root.bound
        mask = TraceIdRatioBased.TRACE_ID_LIMIT
        return lambda trace_id, name: (trace_id & mask) < bound
    if isinstance(root, StaticSampler):
        decision = bool(root.should_sample(None, 1, "").decision.is_sampled())  # type: ignore[no-untyped-call]
        return lambda trace_id, name: decision

    def ask(trace_id: int, name: str) -> bool:
        return bool(sampler.should_sample(None, trace_id, name).decision.is_sampled())  # type: ignore[no-untyped-call]

    return ask


def limits_from(settings: Settings) -> CaptureLimits:
    return replace(
        CaptureLimits(),
        max_depth=settings.capture_max_depth,
        max_items=settings.capture_max_items,
        max_string=settings.capture_max_string,
        span_budget=settings.capture_span_budget,
    )


def redactor_from(settings: Settings) -> Redactor:
    return Redactor(DEFAULT_NAME_PATTERNS, extra_name_patterns=settings.redact_names)


def selection_from(settings: Settings, plan: Plan | None, roots: tuple[str, ...] | None = None) -> Selection:
    return Selection(
        roots=roots if roots is not None else default_roots(),
        include=settings.autotrace_modules,
        exclude=settings.autotrace_exclude,
        plan=plan,
        default_level=level_number(settings.autotrace_level),
    )


def load_configured_plan(settings: Settings) -> Plan | None:
    if settings.plan is None:
        return None
    try:
        return load_plan(settings.plan)
    except (OSError, PlanError) as error:
        _logger.warning(
            "execscope: plan %s cannot be used (%s); using the default selection instead",
            settings.plan,
            error,
        )
        return None


def install(
    settings: Settings, provider: TracerProvider, *, roots: tuple[str, ...] | None = None
) -> RewritingFinder | None:
    """Rewrite selected modules imported from now on and record their calls into ``provider``."""
    global _finder
    with _lock:
        if _finder is not None:
            return _finder
        processor = getattr(provider, "_active_span_processor", None)
        if processor is None:
            _logger.warning("execscope: this tracer provider has no span processors; auto-tracing is off")
            return None
        plan = load_configured_plan(settings)
        selection = selection_from(settings, plan, roots)
        _runtime.configure(
            _runtime.RuntimeConfig(
                limits=limits_from(settings),
                redactor=redactor_from(settings),
                root_sampled=root_sampler(provider.sampler),
                recorder=RECORDER,
                active=True,
            )
        )
        RECORDER.start(processor.on_end, provider.resource)
        early = imported_too_early(selection)
        if early:
            _logger.warning(
                "execscope: these modules were imported before auto-tracing started and are not traced: %s",
                ", ".join(early),
            )
        _finder = install_finder(selection)
        _warn_if_main_not_rewritten(selection)
        return _finder


def _warn_if_main_not_rewritten(selection: Selection) -> None:
    from execscope.autotrace._script import script_index

    args = list(getattr(sys, "orig_argv", []))[1:]
    position = script_index(args)
    script = args[position] if position is not None else None
    if script and selection.selects("__main__", script):
        _logger.warning(
            "execscope: %s runs as the main script and is not rewritten (the interpreter compiles it "
            "directly); start it with `execscope run %s` to trace its own functions",
            script,
            script,
        )


def uninstall() -> None:
    """Stop rewriting newly imported modules (already rewritten ones keep recording)."""
    global _finder
    with _lock:
        if _finder is not None:
            remove_finder(_finder)
            _finder = None
        _runtime.configure(_runtime.RuntimeConfig())
