"""What ``pyproject.toml`` promises a site: every module the package imports comes with it.

A module that is only there because something else happens to pull it in (as Wagtail
pulls in django-filter) breaks the day that something stops, or when its version is one
the package was never tested with. The floors themselves are tested by ``.ci/run``, which
runs the suite with each runtime dependency at its floor.
"""

from __future__ import annotations

import ast
import sys
import tomllib
from importlib.metadata import packages_distributions
from pathlib import Path

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

ROOT = Path(__file__).resolve().parent.parent
PACKAGE = ROOT / "wagtail_client_billing"
#: Shipped, but only loaded by a site's own test run, which installs the ``testing`` extra.
PYTEST_PLUGIN = PACKAGE / "testing" / "pytest_plugin.py"


def _declared(requirements: list[str]) -> set[str]:
    return {canonicalize_name(Requirement(r).name) for r in requirements}


def _top_level_imports(path: Path) -> set[str]:
    names = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            names.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names.add(node.module.split(".")[0])
    return names


def test_every_module_the_package_imports_is_a_declared_dependency():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    runtime = _declared(project["dependencies"])
    testing = runtime | _declared(project["optional-dependencies"].get("testing", []))
    distributions = packages_distributions()

    undeclared = set()
    for path in PACKAGE.rglob("*.py"):
        allowed = testing if path == PYTEST_PLUGIN else runtime
        for module in _top_level_imports(path):
            if module in sys.stdlib_module_names or module == PACKAGE.name:
                continue
            provided_by = {canonicalize_name(d) for d in distributions.get(module, [module])}
            if not provided_by & allowed:
                undeclared.add(f"{module} ({', '.join(sorted(provided_by))}) in {path.name}")

    assert not undeclared, "imported but not declared in pyproject.toml: " + "; ".join(
        sorted(undeclared)
    )
