"""Backends picked by name: a setting names an implementation, a table maps the name to
`"module:attribute"`, and the module is imported only when the name is chosen (uvicorn's
habit), so an unused backend's dependencies are never loaded."""

from __future__ import annotations

import importlib
from collections.abc import Mapping
from typing import Any


def load(spec: str) -> Any:
    """`"package.module:Name"` or `"package.module:Name.attr"` -> the object."""
    module_name, sep, path = spec.partition(":")
    if not sep or not path:
        raise ValueError(f"{spec!r} is not of the form 'module:attribute'")
    target: Any = importlib.import_module(module_name)
    for part in path.split("."):
        target = getattr(target, part)
    return target


def choose(table: Mapping[str, str], name: str, setting: str) -> Any:
    """The implementation `name` stands for in `table`; a ValueError naming `setting` and the
    choices for an unknown name."""
    spec = table.get(name)
    if spec is None:
        raise ValueError(f"{setting} = {name!r} is not one of: {', '.join(sorted(table))}")
    return load(spec)
