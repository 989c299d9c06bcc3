"""The import structure of both packages: no circles, zoo never imports ensemble, no private names
imported across modules.

Every import statement counts, also those inside functions (a lazy import that closes a circle is
still a circle for a reader). A package's ``__init__`` counts only where it is imported by name
(``from ensemble import X``); modules inside a package must not do that (it is the public API,
which imports them).
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("ensemble", "zoo")


def _modules() -> dict[str, Path]:
    mods = {}
    for pkg in PACKAGES:
        for path in sorted((ROOT / pkg).rglob("*.py")):
            parts = list(path.relative_to(ROOT).with_suffix("").parts)
            if parts[-1] == "__init__":
                parts = parts[:-1]
            mods[".".join(parts)] = path
    return mods


MODULES = _modules()


def _imports(name: str, path: Path) -> list[tuple[str, list[str], int]]:
    """``(target module, imported names, line)`` for every import of one of our packages."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    is_pkg = path.name == "__init__.py"
    out = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for a in node.names:
                if a.name.split(".")[0] in PACKAGES:
                    out.append((a.name, [], node.lineno))
        elif isinstance(node, ast.ImportFrom):
            mod = node.module or ""
            if node.level:
                base = name.split(".") if is_pkg else name.split(".")[:-1]
                base = base[: len(base) - node.level + 1]
                mod = ".".join(base + ([mod] if mod else []))
            if mod.split(".")[0] not in PACKAGES:
                continue
            names = [a.name for a in node.names]
            subs = [n for n in names if f"{mod}.{n}" in MODULES]
            for n in subs:
                out.append((f"{mod}.{n}", [], node.lineno))
            rest = [n for n in names if n not in subs]
            if rest or not subs:
                out.append((mod, rest, node.lineno))
    return out


def _graph() -> dict[str, set[str]]:
    graph = {m: set() for m in MODULES}
    for m, path in MODULES.items():
        for target, _, _ in _imports(m, path):
            if target in MODULES and target != m:
                graph[m].add(target)
    return graph


def test_modules_found():
    assert "ensemble.pipeline.run" in MODULES and "zoo.registry" in MODULES


def test_no_import_circle():
    graph = _graph()
    cycles, state, stack = [], {}, []

    def visit(m: str) -> None:
        state[m] = 1
        stack.append(m)
        for t in sorted(graph[m]):
            if state.get(t) == 1:
                cycles.append(stack[stack.index(t):] + [t])
            elif t not in state:
                visit(t)
        stack.pop()
        state[m] = 2

    for m in sorted(graph):
        if m not in state:
            visit(m)
    assert not cycles, "import circles:\n" + "\n".join(" -> ".join(c) for c in cycles)


def test_zoo_never_imports_ensemble():
    bad = [f"{m}:{line} imports {t}" for m, p in MODULES.items() if m.split(".")[0] == "zoo"
           for t, _, line in _imports(m, p) if t.split(".")[0] == "ensemble"]
    assert not bad, bad


def test_modules_do_not_import_their_own_package_api():
    """A module inside a package imports siblings by module path, never the package's __init__."""
    bad = []
    for m, p in MODULES.items():
        if p.name == "__init__.py":
            continue
        parents = {".".join(m.split(".")[:i]) for i in range(1, m.count(".") + 1)}
        bad += [f"{m}:{line} imports from {t}" for t, _, line in _imports(m, p) if t in parents]
    assert not bad, bad


def test_no_private_name_imported_across_modules():
    bad = []
    for m, p in MODULES.items():
        for target, names, line in _imports(m, p):
            bad += [f"{m}:{line} imports {target}.{n}" for n in names
                    if n.startswith("_") and not n.startswith("__")]
            leaf = target.rsplit(".", 1)[-1]
            if leaf.startswith("_") and leaf != "__init__" and leaf != "__main__":
                bad.append(f"{m}:{line} imports private module {target}")
    assert not bad, bad


@pytest.mark.parametrize("pkg", PACKAGES)
def test_public_api_names_exist(pkg):
    import importlib

    mod = importlib.import_module(pkg)
    missing = [n for n in mod.__all__ if not hasattr(mod, n)]
    assert not missing, missing
