"""Helpers for the CLI tests: `Cli`, the `imagegate` command run in process against one data
directory; `ClientCli`, its client commands run in process against a server.
"""

from __future__ import annotations

import json
import os
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


class ClientCli:
    """The client commands (generate, batch, tasks) run in process against a server, with
    only the environment given: no IMAGEGATE_* of the developer's, and no profile file
    unless a test writes one (`config`)."""

    def __init__(self, url: str, key: str | None, config: Path) -> None:
        self.runner = CliRunner()
        self.env: dict[str, str | None] = {
            name: None for name in os.environ if name.startswith("IMAGEGATE_")}
        self.env.update({"IMAGEGATE_URL": url, "IMAGEGATE_API_KEY": key,
                         "IMAGEGATE_CLIENT_CONFIG": str(config), "COLUMNS": "200",
                         "NO_COLOR": "1"})

    def __call__(self, *args: str, code: int = 0, **env: str | None) -> Any:
        result = self.runner.invoke(cli, list(args), env={**self.env, **env})
        assert result.exit_code == code, (result.output, result.exception)
        assert "Traceback" not in result.output
        return result

    def error(self, *args: str, code: int, **env: str | None) -> str:
        """A refusal: exactly one line on stderr, nothing on stdout; the line."""
        result = self(*args, code=code, **env)
        assert result.stdout == "", result.stdout
        lines = result.stderr.splitlines()
        assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr
        line: str = lines[0]
        return line
