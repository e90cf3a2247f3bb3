"""The keys CLI against a real SQLite database (no server running)."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

from typer.testing import CliRunner

from imagegate.accounts.keys import hash_key
from imagegate.cli import cli


def test_keys_create_list_revoke(tmp_path: Path) -> None:
    runner = CliRunner()
    data = ["--data-dir", str(tmp_path)]
    out = runner.invoke(cli, ["keys", "create", "--name", "app", "--json", *data])
    assert out.exit_code == 0, out.output
    created = json.loads(out.stdout)
    assert created["key"].startswith("ig_") and created["id"].startswith("key_")

    # Stored hashed: the plaintext is nowhere in the database file.
    db = sqlite3.connect(tmp_path / "imagegate.db")
    (stored,) = db.execute("SELECT key_hash FROM api_keys").fetchone()
    assert stored == hash_key(created["key"])
    db.close()
    assert created["key"].encode() not in (tmp_path / "imagegate.db").read_bytes()

    listed = runner.invoke(cli, ["keys", "list", "--json", *data])
    rows = [json.loads(line) for line in listed.stdout.splitlines()]
    assert [r["id"] for r in rows] == [created["id"]]
    assert created["key"] not in listed.stdout and rows[0]["prefix"] == created["key"][:10]

    revoked = runner.invoke(cli, ["keys", "revoke", created["id"], *data])
    assert revoked.exit_code == 0 and "revoked" in revoked.stdout
    table = runner.invoke(cli, ["keys", "list", *data])
    assert "revoked" in table.stdout

    missing = runner.invoke(cli, ["keys", "revoke", "key_nope", *data])
    assert missing.exit_code == 1


def test_bad_config_is_a_clear_error(tmp_path: Path) -> None:
    cfg = tmp_path / "c.toml"
    cfg.write_text("port = 'not a number'\n")
    out = CliRunner().invoke(cli, ["keys", "list", "--config", str(cfg)])
    assert out.exit_code == 2 and "configuration error" in out.output
