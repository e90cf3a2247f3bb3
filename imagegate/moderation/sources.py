"""Where the global blocklist comes from: the `moderation_blocklist` setting, the
`moderation_blocklist_file`, and the entries the admin API keeps in the database. Read at
start and on every reload (SIGHUP, `POST /admin/moderation/reload`); a source that cannot be
read or holds an unusable entry is an error naming the file and line, and a reload that
meets one keeps the lists it had."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from imagegate.config import Settings
from imagegate.moderation.blocklist import BlocklistError, Rule, parse_entries


class BlocklistSourceError(ValueError):
    """A blocklist source that cannot be used; the message names it (never its entries)."""


@dataclass(frozen=True, slots=True)
class GlobalSources:
    """The entries of each global source, as written, and their compiled rules."""

    config: tuple[str, ...]
    file: Path | None
    file_entries: tuple[str, ...]
    admin: tuple[str, ...]
    rules: tuple[Rule, ...]


def _parse(lines: Sequence[str], origin: str, where: str) -> list[Rule]:
    try:
        return parse_entries(lines, origin)
    except BlocklistError as exc:
        raise BlocklistSourceError(f"{where} {exc.index + 1}: {exc.message}") from None


def read_file(path: Path) -> list[str]:
    try:
        return path.read_text(encoding="utf-8").splitlines()
    except OSError as exc:
        raise BlocklistSourceError(f"moderation_blocklist_file {path}: cannot read it "
                                   f"({exc.strerror or exc})") from None
    except UnicodeDecodeError:
        raise BlocklistSourceError(f"moderation_blocklist_file {path}: not UTF-8 text"
                                   ) from None


def global_sources(settings: Settings, admin: Sequence[str] = ()) -> GlobalSources:
    """Read and compile every global source (raises BlocklistSourceError)."""
    config = tuple(settings.moderation_blocklist)
    rules = _parse(config, "config", "moderation_blocklist item")
    path = settings.moderation_blocklist_file
    file_entries: tuple[str, ...] = ()
    if path is not None:
        file_entries = tuple(read_file(path))
        rules += _parse(file_entries, "file", f"moderation_blocklist_file {path} line")
    rules += _parse(admin, "admin", "the admin blocklist (database) item")
    return GlobalSources(config, path, file_entries, tuple(admin), tuple(rules))
