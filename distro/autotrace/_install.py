"""Installing the auto-instrumentor in a process: settings → selection, runtime, import hook."""

from __future__ import annotations

import logging
import os
import sys
import threading
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.sampling import (
    ALWAYS_OFF,
    ALWAYS_ON,
    ParentBased,
    Sampler,
    StaticSampler,
    TraceIdRatioBased,
)

from execscope.autotrace import _code_rewrite, _runtime
from execscope.autotrace._hook import RewritingFinder, imported_too_early, install_finder, remove_finder
from execscope.autotrace._levels import level_number
from execscope.autotrace._recorder import RECORDER, DropsUnmade
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


def _drops_unmade(processor: Any) -> DropsUnmade | None:
    """Execscope's processor's ``drops_unmade`` when it is the only processor (another one must
    see every span: then every recorded call is made into a span)."""
    from execscope.processors._pipeline import ExecscopeSpanProcessor

    processors = getattr(processor, "_span_processors", None)
    if (
        isinstance(processors, tuple)
        and len(processors) == 1
        and isinstance(processors[0], ExecscopeSpanProcessor)
    ):
        return processors[0].drops_unmade
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
                accelerated=settings.autotrace_accelerator,
            )
        )
        if settings.autotrace_accelerator and not _runtime.accelerated():
            _logger.info("execscope: the auto-instrumentor's C fast path is not compiled here; using Python")
        if settings.autotrace_bytecode and not _code_rewrite.AVAILABLE:
            _logger.info(
                "execscope: the bytecode rewrite is not available here (CPython 3.11 with the pass compiled "
                "at install); modules are rewritten through their ast tree (a dearer first import)"
            )
        RECORDER.start(processor.on_end, provider.resource, _drops_unmade(processor))
        early = imported_too_early(selection)
        if early:
            _logger.warning(
                "execscope: these modules were imported before auto-tracing started and are not traced: %s",
                ", ".join(early),
            )
        _finder = install_finder(selection, bytecode=settings.autotrace_bytecode)
        _rewrite_main_script(selection)
        return _finder


def _rewrite_main_script(selection: Selection) -> None:
    """Make ``python app.py`` (started by ``opentelemetry-instrument``) run ``app.py`` rewritten.

    The interpreter compiles the script named on its command line without any import hook.
    While the process is still starting (``__main__`` has not run: no ``__file__`` yet), the
    interpreter is replaced by the same command with the script runner in front
    (``python [options] -m execscope.autotrace app.py args``), which rewrites it. Later (e.g.
    ``execscope.configure()`` called from running code) that is impossible and one warning says so.
    """
    from execscope.autotrace._script import SCRIPT_RUNNER_MODULE, script_index

    args = list(getattr(sys, "orig_argv", []))[1:]
    position = script_index(args)
    if position is None:
        return
    script = args[position]
    if not selection.selects("__main__", script):
        return
    main = sys.modules.get("__main__")
    if main is not None and "__file__" not in vars(main):
        options = [arg for arg in args[:position] if arg != "--"]
        command = [sys.executable, *options, "-m", SCRIPT_RUNNER_MODULE, script, *args[position + 1 :]]
        try:
            sys.stdout.flush()
            sys.stderr.flush()
            os.execve(sys.executable, command, _environment_with_startup_hook())
        except OSError as error:
            _logger.warning("execscope: could not restart %s to rewrite it (%s)", script, error)
    _logger.warning(
        "execscope: %s runs as the main script and is not rewritten (the interpreter compiles it "
        "directly); start it with `execscope run %s` to trace its own functions",
        script,
        script,
    )


def _environment_with_startup_hook() -> dict[str, str]:
    """This process's environment with the start-up hook that is running now back on
    ``PYTHONPATH`` (``opentelemetry-instrument``'s hook removes itself so that child
    processes are not instrumented; the restarted interpreter must be)."""
    env = dict(os.environ)
    hook = getattr(sys.modules.get("sitecustomize"), "__file__", None)
    if isinstance(hook, str):
        folder = str(Path(hook).resolve().parent)
        entries = [entry for entry in env.get("PYTHONPATH", "").split(os.pathsep) if entry]
        if folder not in entries:
            env["PYTHONPATH"] = os.pathsep.join([folder, *entries])
    return env


def uninstall() -> None:
    """Stop rewriting newly imported modules (already rewritten ones keep recording)."""
    global _finder
    with _lock:
        if _finder is not None:
            remove_finder(_finder)
            _finder = None
        _runtime.configure(_runtime.RuntimeConfig())
