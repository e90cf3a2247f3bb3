"""What every `imagegate` command shares: the `--config`/`--data-dir`/`--json` options and
reading the settings with one plain refusal. A module of its own so that every command
module of this package can import it at its top."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

from imagegate.config import Settings, load_settings

ConfigOpt = Annotated[
    Path | None,
    typer.Option("--config", "-c", help="TOML settings file (also $IMAGEGATE_CONFIG)."),
]
DataDirOpt = Annotated[
    Path | None,
    typer.Option("--data-dir", help="Data directory (also $IMAGEGATE_DATA_DIR)."),
]
JsonOpt = Annotated[bool, typer.Option("--json", help="Print JSON.")]


def cli_settings(config: Path | None, **overrides: object) -> Settings:
    try:
        return load_settings(config, **overrides)
    except Exception as exc:  # a bad file or value: say so plainly, no traceback
        Console(stderr=True).print(f"[red]configuration error:[/red] {exc}")
        raise typer.Exit(2) from None
