"""`imagegate.testing` stands apart from the gateway it tests: it imports nothing else of
imagegate (a fake sharing the gateway's rules could never catch it disagreeing with the real
service), and its fakes run on their own with `python -m imagegate.testing.upstreams`."""

from __future__ import annotations

import ast
import importlib
import importlib.util
import subprocess
import sys
from pathlib import Path

import pytest

import imagegate.testing
from imagegate.testing.upstreams import DIALECTS, FakeUpstream

PACKAGE = Path(imagegate.testing.__file__).parent


def imported_modules(path: Path) -> list[str]:
    names: list[str] = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            names += [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            assert node.level == 0, f"{path}: relative import"
            names.append(node.module or "")
    return names


def test_imports_nothing_else_of_imagegate() -> None:
    files = sorted(PACKAGE.rglob("*.py"))
    assert len(files) >= 10
    for path in files:
        for name in imported_modules(path):
            if name == "imagegate" or name.startswith("imagegate."):
                assert name.startswith("imagegate.testing"), f"{path.name} imports {name}"


@pytest.mark.parametrize("dialect", sorted(DIALECTS))
def test_every_dialect_names_a_fake(dialect: str) -> None:
    module_name, _, class_name = DIALECTS[dialect].partition(":")
    cls = getattr(importlib.import_module(module_name), class_name)
    assert issubclass(cls, FakeUpstream)


def test_run_as_a_module() -> None:
    done = subprocess.run([sys.executable, "-m", "imagegate.testing.upstreams", "--help"],
                          capture_output=True, text=True, timeout=60, check=True)
    assert "python -m imagegate.testing.upstreams" in done.stdout
    assert "{apimart,dimilinks,openai}" in done.stdout


def test_the_old_path_is_gone() -> None:
    assert importlib.util.find_spec("imagegate.fakes") is None
