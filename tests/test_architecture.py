"""The house rules, checked on the source: imports point down the layers, and no two modules
import each other (directly or round a loop).

The layer order, bottom first. A module may import modules of its own layer or of any layer
below it, never above:

    0  imagegate (the version), errors, config         what everything may know
    1  domain                                           values and rules; imports only layer 0
    2  db, metrics, logs, plugins, secret_files,        infrastructure with no business logic
       client, testing
    3  net, storage                                     the outside world: network, blobs
    4  ingest, accounts, webhooks                       client inputs; keys, money, limits;
                                                        signed notifications and their outbox
    5  providers, moderation                            upstream adapters and routing; content
                                                        moderation (its model speaks through
                                                        the providers' upstream client)
    6  tasks                                            intake, store, service, worker
    7  api                                              HTTP surfaces and profiles
    8  wiring, app, reload, cli                         composition roots and entry points

Imports inside `if TYPE_CHECKING:` are not counted (they never run). Imports inside functions
are: a function-level import is still a dependency, and hiding a cycle in one is exactly what
this test exists to catch.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "imagegate"

LAYERS: dict[str, int] = {
    "__init__": 0, "errors": 0, "config": 0,
    "domain": 1,
    "db": 2, "metrics": 2, "logs": 2, "plugins": 2, "secret_files": 2, "client": 2,
    "testing": 2,
    "net": 3, "storage": 3,
    "ingest": 4, "accounts": 4, "webhooks": 4,
    "providers": 5, "moderation": 5,
    "tasks": 6,
    "api": 7,
    "wiring": 8, "app": 8, "reload": 8, "cli": 8, "__main__": 8,
}

# Modules only a composition root may import: they run things, they are not libraries.
ENTRY_ONLY = {"imagegate.tasks.worker": {"wiring"}}


def module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def modules() -> dict[str, Path]:
    return {module_name(p): p for p in sorted(PACKAGE.rglob("*.py"))}


def _type_checking_block(node: ast.If) -> bool:
    test = node.test
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING")


def _runtime_imports(tree: ast.AST) -> Iterator[ast.Import | ast.ImportFrom]:
    for node in ast.iter_child_nodes(tree):
        if isinstance(node, ast.If) and _type_checking_block(node):
            yield from (n for child in node.orelse for n in _runtime_imports_of(child))
            continue
        yield from _runtime_imports_of(node)


def _runtime_imports_of(node: ast.AST) -> Iterator[ast.Import | ast.ImportFrom]:
    if isinstance(node, ast.Import | ast.ImportFrom):
        yield node
    else:
        yield from _runtime_imports(node)


def imports_of(name: str, path: Path, known: set[str]) -> set[str]:
    """The imagegate modules `name` imports at run time (a `from package import module`
    counts as the module; `from module import name` as the module)."""
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found: set[str] = set()
    for node in _runtime_imports(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        else:
            base = node.module or ""
            if node.level:
                anchor = package.split(".")
                anchor = anchor[: len(anchor) - node.level + 1]
                base = ".".join([*anchor, base] if base else anchor)
            targets = [f"{base}.{alias.name}" if f"{base}.{alias.name}" in known else base
                       for alias in node.names]
        found.update(t for t in targets if t in known and t != name)
    return found


def graph() -> dict[str, set[str]]:
    mods = modules()
    known = set(mods)
    return {name: imports_of(name, path, known) for name, path in mods.items()}


def layer_of(module: str) -> str:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else "__init__"


def find_cycles(edges: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    cycles: list[list[str]] = []
    counter = 0

    def visit(node: str) -> None:
        nonlocal counter
        index[node] = low[node] = counter
        counter += 1
        stack.append(node)
        on_stack.add(node)
        for nxt in sorted(edges.get(node, ())):
            if nxt not in index:
                visit(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in on_stack:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                cycles.append(sorted(component))

    for node in sorted(edges):
        if node not in index:
            visit(node)
    return cycles


def test_every_top_level_module_has_a_layer() -> None:
    missing = {layer_of(m) for m in modules()} - set(LAYERS)
    assert not missing, f"give these a layer in LAYERS (and the docstring): {sorted(missing)}"


def test_no_import_cycles() -> None:
    assert find_cycles(graph()) == []


def test_imports_point_down_the_layers() -> None:
    upward = [
        f"{importer} ({layer_of(importer)}) imports {imported} ({layer_of(imported)})"
        for importer, targets in graph().items() for imported in sorted(targets)
        if LAYERS[layer_of(imported)] > LAYERS[layer_of(importer)]
    ]
    assert upward == []


def test_domain_imports_only_errors_and_config() -> None:
    outside = {f"{m} -> {t}" for m, targets in graph().items() if layer_of(m) == "domain"
               for t in targets if layer_of(t) not in ("domain", "errors", "config")}
    assert outside == set()


def test_runners_are_imported_only_by_composition_roots() -> None:
    for module, allowed in ENTRY_ONLY.items():
        importers = {m for m, targets in graph().items() if module in targets}
        assert {layer_of(m) for m in importers} <= allowed, importers


def test_fake_upstreams_share_nothing_with_the_gateway() -> None:
    """A fake that used the gateway's rules could never catch a disagreement with the real
    service it stands for."""
    leaks = {f"{m} -> {t}" for m, targets in graph().items() if layer_of(m) == "testing"
             for t in targets if layer_of(t) != "testing"}
    assert leaks == set()


@pytest.mark.parametrize("source, expected", [
    ("import imagegate.errors\n", {"imagegate.errors"}),
    ("from imagegate import errors\n", {"imagegate.errors"}),
    ("from imagegate.errors import NotFoundError\n", {"imagegate.errors"}),
    ("from . import errors\n", {"imagegate.errors"}),
    ("from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    import imagegate.errors\n",
     set()),
    ("def f():\n    from imagegate import errors\n", {"imagegate.errors"}),
])
def test_the_import_reader(tmp_path: Path, source: str, expected: set[str]) -> None:
    path = tmp_path / "probe.py"
    path.write_text(source)
    assert imports_of("imagegate.probe", path, {"imagegate.errors", "imagegate"}) == expected


def test_cycle_finder() -> None:
    assert find_cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
    assert find_cycles({"a": {"b"}, "b": set()}) == []
