"""`imagegate version | migrate` in process, and the command list the app is assembled from
(`serve` and `worker` run servers: tests/e2e starts them as real processes)."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest
from typer.testing import CliRunner

from imagegate import __version__
from imagegate.cli import cli


def test_version() -> None:
    out = CliRunner().invoke(cli, ["version"])
    assert out.exit_code == 0 and out.stdout == f"{__version__}\n"


def test_migrate_creates_the_schema_and_names_the_database(tmp_path: Path) -> None:
    out = CliRunner().invoke(cli, ["migrate", "--data-dir", str(tmp_path)])
    assert out.exit_code == 0, out.output
    assert out.stdout == f"database at head: sqlite:///{tmp_path}/imagegate.db\n"
    db = sqlite3.connect(tmp_path / "imagegate.db")
    tables = {name for (name,) in db.execute("SELECT name FROM sqlite_master")}
    db.close()
    assert {"tasks", "api_keys", "ledger"} <= tables


def test_every_command_is_listed_in_order() -> None:
    out = CliRunner().invoke(cli, ["--help"], env={"COLUMNS": "200"})
    assert out.exit_code == 0, out.output
    listed = [line.strip("│ ").split()[0] for line in out.stdout.splitlines()
              if line.startswith("│ ") and not line.startswith("│ --")]
    assert listed == ["usage", "serve", "worker", "migrate", "version", "generate", "batch",
                      "keys", "channels", "moderation", "tasks"]


def test_commands_are_spelled_as_the_user_types_them(monkeypatch: pytest.MonkeyPatch) -> None:
    from imagegate.cli.server import command

    monkeypatch.delenv("UV", raising=False)
    assert command("keys create NAME") == "imagegate keys create NAME"
    monkeypatch.setenv("UV", "/usr/bin/uv")
    assert command("keys create NAME") == "uv run imagegate keys create NAME"


def test_webhook_payloads_without_a_public_base_url_are_warned_about(tmp_path: Path) -> None:
    from imagegate.cli.server import webhook_base_warning
    from imagegate.config import Settings

    assert "public_base_url" in (webhook_base_warning(Settings(data_dir=tmp_path)) or "")
    assert webhook_base_warning(Settings(data_dir=tmp_path,
                                         public_base_url="https://img.example.com")) is None
    assert webhook_base_warning(Settings(data_dir=tmp_path, url_mode="relative")) is None
