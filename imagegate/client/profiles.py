"""Named connection profiles, kept in `~/.config/imagegate/client.toml` (or
`$XDG_CONFIG_HOME/imagegate/client.toml`, or the file `$IMAGEGATE_CLIENT_CONFIG` names):

    default = "local"            # the profile used when none is named

    [profiles.local]
    url = "http://127.0.0.1:8000"
    api_key = "ig_…"

    [profiles.dimi]
    url = "https://dimilinks.com"
    api_key = "sk-…"
    dialect = "dimilinks"
"""

from __future__ import annotations

import os
import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from imagegate.client.errors import InputError
from imagegate.client.settings import CONFIG_ENV

KEYS = ("url", "api_key", "dialect")


@dataclass(frozen=True)
class Profile:
    name: str
    url: str | None = None
    api_key: str | None = None
    dialect: str | None = None


def config_path() -> Path:
    named = os.environ.get(CONFIG_ENV)
    if named:
        return Path(named)
    base = os.environ.get("XDG_CONFIG_HOME") or str(Path.home() / ".config")
    return Path(base) / "imagegate" / "client.toml"


def load_profiles(path: Path | None = None) -> tuple[str | None, dict[str, Profile]]:
    """(the default profile's name, the profiles by name); nothing when there is no file."""
    path = path or config_path()
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return None, {}
    except OSError as exc:
        raise InputError(f"cannot read {path}: {exc.strerror or exc}") from None
    try:
        doc = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise InputError(f"{path} is not valid TOML: {exc}") from None
    default = doc.get("default")
    tables = doc.get("profiles", {})
    if not isinstance(tables, dict) or (default is not None and not isinstance(default, str)):
        raise InputError(f"{path}: expected `default = \"name\"` and [profiles.NAME] tables")
    return default, {name: _profile(path, name, table) for name, table in tables.items()}


def _profile(path: Path, name: str, table: Any) -> Profile:
    if not isinstance(table, dict):
        raise InputError(f"{path}: [profiles.{name}] must be a table")
    unknown = set(table) - set(KEYS)
    if unknown:
        raise InputError(f"{path}: [profiles.{name}] has unknown keys {sorted(unknown)} "
                         f"(known: {', '.join(KEYS)})")
    values = {k: table.get(k) for k in KEYS}
    for key, value in values.items():
        if value is not None and not isinstance(value, str):
            raise InputError(f"{path}: [profiles.{name}] {key} must be a string")
    return Profile(name, **values)


def profile_named(name: str, path: Path | None = None) -> Profile:
    _, profiles = load_profiles(path)
    found = profiles.get(name)
    if found is None:
        where = path or config_path()
        known = ", ".join(sorted(profiles)) or "none"
        raise InputError(f"no profile {name!r} in {where} (profiles: {known})")
    return found
