"""Maps the design's top-level folders onto the single `execscope` import namespace.

pyproject.toml cannot express a remapped package tree with automatic discovery, so the
package list is computed here: `distro/` is `execscope`, and each other code folder is
a sub-package of it. Every sub-package below those folders is found automatically.
"""

from setuptools import Extension, find_packages, setup

ROOTS = {
    "execscope": "distro",
    "execscope.instrumentors": "instrumentors",
    "execscope.processors": "processors",
}

packages: list[str] = []
package_dir: dict[str, str] = {}
for name, folder in ROOTS.items():
    packages.append(name)
    package_dir[name] = folder
    for sub in find_packages(folder):
        packages.append(f"{name}.{sub}")
        package_dir[f"{name}.{sub}"] = f"{folder}/{sub.replace('.', '/')}"

# The auto-instrumentor's per-call fast path. Optional: where it cannot be compiled (no C
# compiler, an interpreter without the C API) the package installs without it and the
# pure-Python implementation of the same path is used; `execscope config` tells which one runs.
speedups = Extension(
    "execscope.autotrace._speedups",
    sources=["distro/autotrace/_speedups.c"],
    optional=True,
)

# The bytecode rewrite's pass over each selected function (the import hook's cold path), optional
# in the same way: without it selected modules are rewritten through their `ast` tree.
bytecode = Extension(
    "execscope.autotrace._bytecode_speedups",
    sources=["distro/autotrace/_bytecode_speedups.c"],
    optional=True,
)

# The export worker's per-span encoding and masking check, optional in the same way: without it
# the pure-Python encoder (the specification it is tested against) runs.
accelerated = Extension(
    "execscope.processors._accelerated",
    sources=["processors/_accelerated.c"],
    optional=True,
)

setup(packages=packages, package_dir=package_dir, ext_modules=[speedups, bytecode, accelerated])
