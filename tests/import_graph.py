"""The package's import graph, read from its source: imports inside functions count too.

Only imports under ``if TYPE_CHECKING:`` are left out (they never run). A module is
a *view module* if it is in ``views`` or its name starts with ``views`` (the viewsets);
besides view modules, only ``urls``, the viewsets and ``wagtail_hooks`` may import one.
"""

from __future__ import annotations

import ast
from dataclasses import dataclass
from pathlib import Path


@dataclass
class ImportGraph:
    #: Each module's dotted name -> its file.
    modules: dict[str, Path]
    #: Each module -> the package modules it imports (packages' ``__init__`` left out).
    edges: dict[str, set[str]]

    def cycles(self) -> list[list[str]]:
        """The strongly connected components of more than one module (Tarjan)."""
        index: dict[str, int] = {}
        low: dict[str, int] = {}
        stack: list[str] = []
        on_stack: set[str] = set()
        found: list[list[str]] = []

        def visit(v: str) -> None:
            index[v] = low[v] = len(index)
            stack.append(v)
            on_stack.add(v)
            for w in sorted(self.edges[v]):
                if w not in index:
                    visit(w)
                    low[v] = min(low[v], low[w])
                elif w in on_stack:
                    low[v] = min(low[v], index[w])
            if low[v] == index[v]:
                component = []
                while True:
                    w = stack.pop()
                    on_stack.discard(w)
                    component.append(w)
                    if w == v:
                        break
                if len(component) > 1:
                    found.append(sorted(component))

        for v in sorted(self.modules):
            if v not in index:
                visit(v)
        return found

    def view_imports_from_below(self) -> list[str]:
        """``"importer -> view module"`` for each view module imported where it may not be."""
        return sorted(
            f"{m} -> {t}"
            for m in self.modules
            for t in self.edges[m]
            if is_view(t) and not is_view(m) and not may_import_views(m)
        )


def is_view(module: str) -> bool:
    return ".views" in module or module.rsplit(".", 1)[-1].startswith("views")


def may_import_views(module: str) -> bool:
    return module.endswith("urls") or "wagtail_hooks" in module or "viewsets" in module


def build(package_dir: Path) -> ImportGraph:
    """The import graph of the package in ``package_dir`` (migrations left out)."""
    base = package_dir.parent
    modules: dict[str, Path] = {}
    for path in package_dir.rglob("*.py"):
        if "migrations" in path.parts or "__pycache__" in path.parts:
            continue
        name = ".".join(path.relative_to(base).with_suffix("").parts)
        modules[name.removesuffix(".__init__")] = path
    edges: dict[str, set[str]] = {m: set() for m in modules}
    for module, path in modules.items():
        for node in _runtime_imports(ast.parse(path.read_text())):
            for target in _targets(module, node, modules):
                while target and target not in modules and "." in target:
                    target = target.rsplit(".", 1)[0]
                if target in modules and target != module and modules[target].name != "__init__.py":
                    edges[module].add(target)
    return ImportGraph(modules, edges)


def _runtime_imports(tree: ast.AST) -> list[ast.Import | ast.ImportFrom]:
    found: list[ast.Import | ast.ImportFrom] = []

    def walk(node: ast.AST) -> None:
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            for child in node.orelse:
                walk(child)
            return
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            found.append(node)
        for child in ast.iter_child_nodes(node):
            walk(child)

    walk(tree)
    return found


def _targets(module: str, node: ast.Import | ast.ImportFrom, modules: dict[str, Path]) -> list[str]:
    if isinstance(node, ast.Import):
        return [alias.name for alias in node.names]
    if node.level:
        parts = module.split(".")
        parent = parts if modules[module].name == "__init__.py" else parts[:-1]
        parent = parent[: len(parent) - (node.level - 1)]
        target = ".".join(parent + ([node.module] if node.module else []))
    else:
        target = node.module or ""
    return [
        f"{target}.{alias.name}" if f"{target}.{alias.name}" in modules else target
        for alias in node.names
    ]
