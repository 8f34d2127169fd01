"""Throwaway virtual environments: execscope from this checkout, one library, its test requirements.

Why a wheel built from a copy of the checkout: ``pip install /work/main`` builds in place and
writes ``build/`` and ``*.egg-info`` into a repository that other work shares; copying only the
packaging inputs and building one wheel leaves the checkout alone, and every library's
environment installs the very same execscope. Why one environment per library, outside the
repository: the suites pin different test requirements, a library under test must not be
shadowed by another version, and nothing is ever installed into the repository's ``.venv``.
"""

from __future__ import annotations

import shutil
import sys
import venv
from pathlib import Path

from bench.corpus._commands import check_logged, clean_environment

REPO = Path(__file__).resolve().parents[2]
#: What setup.py and pyproject.toml need to build execscope's wheel.
_PACKAGING_INPUTS = ("setup.py", "pyproject.toml", "README.md", "distro", "instrumentors", "processors")


def build_execscope_wheel(workdir: Path, log: Path) -> Path:
    """Build execscope's wheel from a copy of the checkout's packaging inputs; returns the wheel."""
    source = workdir / "execscope-src"
    wheels = workdir / "wheels"
    if source.exists():
        shutil.rmtree(source)
    source.mkdir(parents=True)
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc", "*.egg-info")
    for name in _PACKAGING_INPUTS:
        origin = REPO / name
        if origin.is_dir():
            shutil.copytree(origin, source / name, ignore=ignore)
        else:
            shutil.copy2(origin, source / name)
    command = [sys.executable, "-m", "pip", "wheel", "--no-deps", "--wheel-dir", str(wheels), str(source)]
    check_logged(
        command, log, env=clean_environment(Path(sys.prefix)), cwd=workdir, what="building execscope"
    )
    built = sorted(wheels.glob("execscope-*.whl"))
    if not built:
        raise FileNotFoundError(f"no execscope wheel in {wheels}; see {log}")
    return built[-1]


def create_environment(
    path: Path, requirements: list[str], log: Path, *, extra_paths: list[Path] | None = None
) -> Path:
    """A new virtual environment at ``path`` with ``requirements`` installed; returns its python.

    ``extra_paths`` (the execscope wheel, the library's source folder) are installed in the same
    pip call, so pip resolves one consistent set and the pinned versions win.
    """
    venv.EnvBuilder(with_pip=True, clear=True, symlinks=True).create(path)
    python = path / "bin" / "python"
    command = [
        str(python),
        "-m",
        "pip",
        "install",
        "--disable-pip-version-check",
        *(str(p) for p in extra_paths or []),
        *requirements,
    ]
    check_logged(command, log, env=clean_environment(path), cwd=path, what=f"installing into {path}")
    return python
