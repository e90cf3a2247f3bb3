"""Helpers for the CLI tests: `Cli`, the `imagegate` command run in process against one data
directory.
"""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path
from typing import Any

from typer.testing import CliRunner

from imagegate.cli import cli


class Cli:
    def __init__(self, data_dir: Path) -> None:
        self.runner = CliRunner()
        self.data_dir = data_dir

    def __call__(self, *args: str, code: int = 0) -> Any:
        result = self.runner.invoke(cli, [*args, "--data-dir", str(self.data_dir)])
        assert result.exit_code == code, (result.output, result.exception)
        assert "Traceback" not in result.output
        return result

    def json(self, *args: str) -> Any:
        return json.loads(self(*args, "--json").stdout)

    def sql(self, query: str, params: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
        db = sqlite3.connect(self.data_dir / "imagegate.db")
        try:
            rows = db.execute(query, params).fetchall()
            db.commit()
            return rows
        finally:
            db.close()
