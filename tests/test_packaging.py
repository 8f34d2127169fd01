"""`pip install .` builds one wheel that maps the design's folders onto the `execscope` namespace."""

from __future__ import annotations

import subprocess
import sys
import zipfile
from pathlib import Path

from conftest import REPO


def test_the_wheel_holds_one_execscope_namespace_with_its_entry_points(tmp_path: Path) -> None:
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", str(tmp_path), str(REPO)],
        check=True,
        capture_output=True,
        timeout=300,
    )
    (wheel,) = tmp_path.glob("execscope-*.whl")
    names = set(zipfile.ZipFile(wheel).namelist())

    for expected in (
        "execscope/__init__.py",
        "execscope/py.typed",
        "execscope/instrumentors/__init__.py",
        "execscope/processors/__init__.py",
        "execscope/_bootstrap/sitecustomize.py",
        "execscope/store/_writer.py",
        "execscope/cli/_main.py",
    ):
        assert expected in names
    assert not any(name.startswith(("distro/", "instrumentors/", "processors/", "tests/")) for name in names)
    (entry_points,) = [name for name in names if name.endswith(".dist-info/entry_points.txt")]
    text = zipfile.ZipFile(wheel).read(entry_points).decode()
    assert "[opentelemetry_distro]\nexecscope = execscope.distro:ExecscopeDistro" in text
    assert "[opentelemetry_configurator]\nexecscope = execscope.configurator:ExecscopeConfigurator" in text
    assert "[console_scripts]\nexecscope = execscope.cli:main" in text
