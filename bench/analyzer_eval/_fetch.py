"""Fetching pinned sdists with pip and extracting them safely into a cache directory."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tarfile
import zipfile
from pathlib import Path, PurePosixPath

DEFAULT_CACHE = Path("~/.cache/execscope-analyzer-eval").expanduser()
CACHE_ENV = "EXECSCOPE_ANALYZER_EVAL_CACHE"


def cache_dir(override: str | None = None) -> Path:
    raw = override or os.environ.get(CACHE_ENV)
    return Path(raw).expanduser() if raw else DEFAULT_CACHE


def _safe_member(name: str) -> bool:
    path = PurePosixPath(name.replace("\\", "/"))
    return not path.is_absolute() and ".." not in path.parts and bool(path.parts)


def _extract_tar(archive: Path, dest: Path) -> None:
    with tarfile.open(archive) as tar:
        members = []
        for member in tar.getmembers():
            if not _safe_member(member.name):
                raise ValueError(f"unsafe path in {archive.name}: {member.name!r}")
            if member.isfile() or member.isdir():  # links and devices are never needed for source
                members.append(member)
        tar.extractall(dest, members=members, filter="data")


def _extract_zip(archive: Path, dest: Path) -> None:
    with zipfile.ZipFile(archive) as zf:
        for name in zf.namelist():
            if not _safe_member(name):
                raise ValueError(f"unsafe path in {archive.name}: {name!r}")
        zf.extractall(dest)


def _download(requirement: str, into: Path) -> Path:
    into.mkdir(parents=True, exist_ok=True)
    found = sorted(p for p in into.iterdir() if p.suffix in (".gz", ".zip", ".bz2"))
    if found:
        return found[0]
    command = [sys.executable, "-m", "pip", "download", "--quiet", "--no-deps", "--no-binary", ":all:"]
    subprocess.run([*command, "-d", str(into), requirement], check=True)
    found = sorted(p for p in into.iterdir() if p.suffix in (".gz", ".zip", ".bz2"))
    if not found:
        raise RuntimeError(f"pip download produced no sdist for {requirement}")
    return found[0]


def fetch(requirement: str, cache: Path) -> Path:
    """The extracted top directory of ``requirement``'s sdist (downloaded once, then cached)."""
    slug = requirement.replace("==", "-").lower()
    base = cache / slug
    done = base / ".extracted"
    if not done.exists():
        archive = _download(requirement, base / "sdist")
        tree = base / "src"
        if tree.exists():
            shutil.rmtree(tree)
        tree.mkdir(parents=True)
        if archive.name.endswith(".zip"):
            _extract_zip(archive, tree)
        else:
            _extract_tar(archive, tree)
        done.write_text(archive.name)
    tops = [p for p in (base / "src").iterdir() if p.is_dir()]
    if len(tops) != 1:
        raise RuntimeError(f"expected one top directory in the {requirement} sdist, found {len(tops)}")
    return tops[0]
