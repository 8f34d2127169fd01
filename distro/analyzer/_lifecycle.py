"""Supervision and lifecycle: where concurrent and serving components start and stop.

Knowing where processes, threads, asyncio tasks, executors and servers are created and
torn down tells the runtime where context must be propagated across a boundary and where
a span should end; it is also what an operator asks first about an unfamiliar service.
"""

from __future__ import annotations

from typing import Final

from ._model import LifecycleEvent
from ._names import instance_method, short, top_package, variants
from ._resolve import ProjectIndex
from ._sites import CallSite, ProjectFacts

# (short origin of a callable) -> (action, subject)
CONSTRUCTORS: Final = {
    "multiprocessing.Process": ("create", "process"),
    "multiprocessing.Pool": ("create", "executor"),
    "threading.Thread": ("create", "thread"),
    "threading.Timer": ("create", "thread"),
    "concurrent.ThreadPoolExecutor": ("create", "executor"),
    "concurrent.ProcessPoolExecutor": ("create", "executor"),
    "asyncio.TaskGroup": ("create", "task_group"),
    "anyio.create_task_group": ("create", "task_group"),
    "trio.open_nursery": ("create", "task_group"),
    "http.HTTPServer": ("create", "server"),
    "http.ThreadingHTTPServer": ("create", "server"),
    "socketserver.TCPServer": ("create", "server"),
    "socketserver.ThreadingTCPServer": ("create", "server"),
    "socketserver.UDPServer": ("create", "server"),
    "asyncio.start_server": ("create", "server"),
    "uvicorn.Server": ("create", "server"),
    "asyncio.create_task": ("start", "asyncio_task"),
    "asyncio.ensure_future": ("start", "asyncio_task"),
    "asyncio.gather": ("join", "asyncio_task"),
    "asyncio.wait": ("join", "asyncio_task"),
    "asyncio.run": ("run", "event_loop"),
    "uvicorn.run": ("run", "server"),
    "hypercorn.serve": ("run", "server"),
    "aiohttp.run_app": ("run", "server"),
    "waitress.serve": ("run", "server"),
    "signal.signal": ("signal", "process"),
}
# (short class, method) -> (action, subject), for methods called on instances of the class.
INSTANCE_METHODS: Final = {
    ("multiprocessing.Process", "start"): ("start", "process"),
    ("multiprocessing.Process", "join"): ("join", "process"),
    ("multiprocessing.Process", "terminate"): ("stop", "process"),
    ("multiprocessing.Process", "kill"): ("stop", "process"),
    ("multiprocessing.Pool", "close"): ("shutdown", "executor"),
    ("multiprocessing.Pool", "terminate"): ("shutdown", "executor"),
    ("multiprocessing.Pool", "apply_async"): ("submit", "executor"),
    ("multiprocessing.Pool", "map"): ("submit", "executor"),
    ("threading.Thread", "start"): ("start", "thread"),
    ("threading.Thread", "join"): ("join", "thread"),
    ("threading.Timer", "start"): ("start", "thread"),
    ("threading.Timer", "cancel"): ("cancel", "thread"),
    ("concurrent.ThreadPoolExecutor", "submit"): ("submit", "executor"),
    ("concurrent.ThreadPoolExecutor", "map"): ("submit", "executor"),
    ("concurrent.ThreadPoolExecutor", "shutdown"): ("shutdown", "executor"),
    ("concurrent.ProcessPoolExecutor", "submit"): ("submit", "executor"),
    ("concurrent.ProcessPoolExecutor", "map"): ("submit", "executor"),
    ("concurrent.ProcessPoolExecutor", "shutdown"): ("shutdown", "executor"),
    ("asyncio.TaskGroup", "create_task"): ("start", "asyncio_task"),
    ("asyncio.create_task", "cancel"): ("cancel", "asyncio_task"),
    ("asyncio.ensure_future", "cancel"): ("cancel", "asyncio_task"),
    ("asyncio.get_event_loop", "create_task"): ("start", "asyncio_task"),
    ("asyncio.get_running_loop", "create_task"): ("start", "asyncio_task"),
    ("asyncio.get_running_loop", "run_in_executor"): ("submit", "executor"),
    ("asyncio.get_event_loop", "run_in_executor"): ("submit", "executor"),
    ("asyncio.get_event_loop", "run_until_complete"): ("run", "event_loop"),
    ("asyncio.get_event_loop", "run_forever"): ("run", "event_loop"),
    ("asyncio.new_event_loop", "run_until_complete"): ("run", "event_loop"),
    ("asyncio.new_event_loop", "run_forever"): ("run", "event_loop"),
    ("asyncio.get_running_loop", "add_signal_handler"): ("signal", "event_loop"),
    ("asyncio.get_event_loop", "add_signal_handler"): ("signal", "event_loop"),
    ("asyncio.get_event_loop", "stop"): ("stop", "event_loop"),
    ("anyio.create_task_group", "start_soon"): ("start", "asyncio_task"),
    ("trio.open_nursery", "start_soon"): ("start", "asyncio_task"),
    ("flask.Flask", "run"): ("run", "server"),
    ("quart.Quart", "run"): ("run", "server"),
    ("sanic.Sanic", "run"): ("run", "server"),
    ("uvicorn.Server", "serve"): ("run", "server"),
    ("uvicorn.Server", "run"): ("run", "server"),
    ("http.HTTPServer", "shutdown"): ("shutdown", "server"),
    ("http.ThreadingHTTPServer", "shutdown"): ("shutdown", "server"),
    ("socketserver.TCPServer", "shutdown"): ("shutdown", "server"),
    ("socketserver.ThreadingTCPServer", "shutdown"): ("shutdown", "server"),
    ("http.HTTPServer", "server_close"): ("stop", "server"),
    ("socketserver.TCPServer", "server_close"): ("stop", "server"),
}
# Methods so specific that an unresolved receiver is still telling (zero-argument forms only
# for join/cancel/shutdown: ``", ".join(x)`` always takes an argument).
SHAPE_ONLY: Final = {
    "serve_forever": ("run", "server"),
    "join": ("join", "thread_or_process"),
    "cancel": ("cancel", "task"),
    "shutdown": ("shutdown", "executor_or_server"),
}


def _subject_class(origin: str) -> str:
    """``threading.Thread()`` -> ``threading.Thread``; ``asyncio.get_event_loop()`` likewise."""
    return short(origin[:-2]) if origin.endswith("()") else short(origin)


def _classify(index: ProjectIndex, call: CallSite) -> tuple[str, str, float] | None:
    for func in variants(index, call.func):
        if short(func) in CONSTRUCTORS:
            return (*CONSTRUCTORS[short(func)], 0.95)
        found = instance_method(func)
        if found and found in INSTANCE_METHODS:
            return (*INSTANCE_METHODS[found], 0.95)
    method = call.method or ""
    for receiver in variants(index, call.receiver):
        key = (_subject_class(receiver), method)
        if key in INSTANCE_METHODS:
            return (*INSTANCE_METHODS[key], 0.9)
        if method == "start" and top_package(receiver) in ("threading", "multiprocessing"):
            return ("start", "thread" if receiver.startswith("threading") else "process", 0.85)
    not_project = call.func is None or index.split_ref(call.func) is None
    unresolved_zero_arg = not call.node.args and call.receiver is None
    if method in SHAPE_ONLY and not_project and (method == "serve_forever" or unresolved_zero_arg):
        return (*SHAPE_ONLY[method], 0.6)
    return None


def lifecycle_events(facts: ProjectFacts) -> list[LifecycleEvent]:
    events = []
    for unit_facts in facts.units:
        for call in unit_facts.calls:
            found = _classify(facts.index, call)
            if found is None:
                continue
            action, subject, confidence = found
            detail = call.func or f"{call.receiver_text or '?'}.{call.method}"
            unit = call.unit
            events.append(
                LifecycleEvent(
                    unit.path, call.line, unit.module, unit.qualname, action, subject, detail, confidence
                )
            )
    return sorted(set(events))
