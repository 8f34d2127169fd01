"""Start-up hook of ``execscope run``: set up tracing, then run the application's own sitecustomize.

Python imports exactly one module named ``sitecustomize``. ``opentelemetry-instrument`` puts its
own first on the path and so hides an application's; this one initialises execscope the same way
and then imports the next ``sitecustomize`` on the path, so the application's still runs (and
an error in it is reported by ``site`` as it would be without execscope).
"""

import importlib
import os
import sys

_HERE = os.path.dirname(os.path.abspath(__file__))


def _initialise() -> None:
    try:
        from opentelemetry.instrumentation.auto_instrumentation import initialize
    except ImportError as error:
        # Another interpreter than the one execscope is installed in: run untraced, say why once.
        sys.stderr.write(
            f"execscope: tracing is off: {sys.executable} cannot import OpenTelemetry ({error}); "
            "run the program with the Python environment execscope is installed in\n"
        )
        return
    try:
        initialize()
    except Exception as error:  # fail open: the program must start
        sys.stderr.write(f"execscope: tracing could not be set up ({error}); the program runs untraced\n")


def _run_next_sitecustomize() -> None:
    ours = sys.modules.pop("sitecustomize", None)
    sys.path[:] = [entry for entry in sys.path if os.path.abspath(entry or os.curdir) != _HERE]
    try:
        importlib.import_module("sitecustomize")
    except ImportError as error:
        if error.name != "sitecustomize":
            raise
        if ours is not None:
            sys.modules["sitecustomize"] = ours


_initialise()
_run_next_sitecustomize()
