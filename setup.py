"""Maps the design's top-level folders onto the single `execscope` import namespace.

pyproject.toml cannot express a remapped package tree with automatic discovery, so the
package list is computed here: `distro/` is `execscope`, and each other code folder is
a sub-package of it. Every sub-package below those folders is found automatically.
"""

from setuptools import find_packages, setup

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

setup(packages=packages, package_dir=package_dir)
