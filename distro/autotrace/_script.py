"""Running the entry script rewritten: ``python -m execscope.autotrace script.py args...``.

The interpreter compiles the script named on its command line itself, without any import
hook, so ``execscope run script.py`` starts it through this runner instead. The runner
recreates what the interpreter does for a script: ``sys.argv``, ``sys.path[0]`` (the script's
real folder), a fresh ``__main__`` module with ``__file__``, ``__builtins__`` and a
``SourceFileLoader``, and an uncaught exception printed by ``sys.excepthook`` without the
runner's own frames, then exit status 1.
"""

from __future__ import annotations

import os
import sys
import types
from importlib.machinery import SourceFileLoader
from pathlib import Path
from types import CodeType

SCRIPT_RUNNER_MODULE = "execscope.autotrace"


def _code_for(path: str) -> CodeType:
    with open(path, "rb") as handle:
        data = handle.read()
    from execscope.autotrace import _install

    finder = _install.active_finder()
    if finder is not None and finder.selection.selects("__main__", path):
        code = finder.rewrite("__main__", data, path, finder.selection.by_default("__main__", path))
        if code is not None:
            return code
    from importlib.util import decode_source

    return compile(decode_source(data), path, "exec", dont_inherit=True)


def run(argv: list[str]) -> int:
    if not argv:
        sys.stderr.write("usage: python -m execscope.autotrace SCRIPT [ARGS...]\n")
        return 2
    script = argv[0]
    # As the interpreter does since 3.9: __file__ and the code's filename are absolute, the
    # working directory joined to the path as given ("./" and ".." kept, symlinks not resolved).
    path = os.path.join(os.getcwd(), script)  # noqa: PTH109, PTH118 - pathlib would normalise it
    sys.argv[:] = argv
    if sys.path and not getattr(sys.flags, "safe_path", False):
        sys.path[0] = str(Path(script).resolve().parent)
    try:
        code = _code_for(path)
    except OSError as error:
        sys.stderr.write(
            f"{sys.executable}: can't open file {path!r}: [Errno {error.errno}] {error.strerror}\n"
        )
        return 2
    except SyntaxError as error:
        # Printed like the interpreter prints a script's syntax error: no traceback.
        sys.excepthook(type(error), error.with_traceback(None), None)
        return 1
    main = types.ModuleType("__main__")
    main.__file__ = path
    main.__builtins__ = __builtins__  # type: ignore[attr-defined]
    main.__loader__ = SourceFileLoader("__main__", path)
    main.__spec__ = None
    main.__cached__ = None  # type: ignore[attr-defined]
    sys.modules["__main__"] = main
    try:
        exec(code, main.__dict__)
    except (SystemExit, KeyboardInterrupt):
        raise  # the interpreter's own exit status for these (130 / SIGINT for Ctrl-C)
    except BaseException:
        kind, value, tb = sys.exc_info()
        # Drop this runner's frame so the traceback starts at the script, as without execscope.
        # The default hook prints the exception's own __traceback__, so it is replaced there too.
        script_tb = tb.tb_next if tb is not None else None
        sys.excepthook(kind, value.with_traceback(script_tb), script_tb)  # type: ignore[arg-type, union-attr]
        return 1
    return 0


_OPTIONS_WITH_VALUE = frozenset({"-W", "-X", "--check-hash-based-pycs"})


def script_index(args: list[str]) -> int | None:
    """Position of the script among an interpreter's arguments (``args`` excludes the
    interpreter itself); None for ``-c``, ``-m``, standard input or no script."""
    index = 0
    while index < len(args):
        arg = args[index]
        if arg == "--":  # "-- -" still reads the program from standard input
            return index + 1 if index + 1 < len(args) and args[index + 1] != "-" else None
        if arg == "-" or not arg:
            return None
        if not arg.startswith("-"):
            return index
        if arg in _OPTIONS_WITH_VALUE:
            index += 2
            continue
        if arg.startswith("--"):
            index += 1
            continue
        letters = arg[1:]
        for position, letter in enumerate(letters):
            if letter in "cm":
                return None
            if letter in "WX":
                if position == len(letters) - 1:
                    index += 1  # its value is the next argument
                break
        index += 1
    return None
