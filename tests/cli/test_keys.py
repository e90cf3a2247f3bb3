"""`imagegate keys …` against a real SQLite database (no server running): create with limits,
list, top up, adjust, rotate, revoke; keys stored only as hashes."""

from __future__ import annotations

import json
import sqlite3
import time
from pathlib import Path

from typer.testing import CliRunner

from imagegate.accounts.keys import hash_key
from imagegate.cli import cli
from tests.support.cli import Cli


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


def test_create_with_limits_and_list(run: Cli) -> None:
    created = run.json("keys", "create", "shop", "--models", "gpt-image-2,dall-e-3",
                       "--rpm", "60", "--concurrency", "4", "--balance", "10.5",
                       "--expires", "30d", "--webhook-url", "https://example.com/h")
    assert created["key"].startswith("ig_") and created["name"] == "shop"
    assert created["models"] == ["gpt-image-2", "dall-e-3"] and created["balance"] == "10.50"
    assert created["rpm"] == 60 and created["concurrency"] == 4
    assert created["expires_at"] > time.time() + 29 * 86_400
    assert created["webhook_secret"].startswith("whsec_")
    assert run.sql("SELECT kind, amount FROM ledger") == [("topup", 10_500_000)]

    text = run("keys", "create", "--name", "other").stdout
    assert "key:" in text and "postpaid" in text and "shown only now" in text

    lines = [json.loads(x) for x in run("keys", "list", "--json").stdout.splitlines()]
    assert [x["name"] for x in lines] == ["shop", "other"]
    assert created["key"] not in str(lines) and "key_hash" not in str(lines)
    table = run("keys", "list").stdout
    for word in (created["id"], created["prefix"], "10.50", "postpaid", "gpt-image-2",
                 "active"):
        assert word in table


def test_topup_rotate_revoke(run: Cli) -> None:
    kid = run.json("keys", "create", "a", "--balance", "1")["id"]
    out = run("keys", "topup", kid, "2.25", "--note", "invoice 3").stdout
    assert "+2.25" in out and "balance 3.25" in out
    assert run.json("keys", "topup", kid, "0.75")["balance"] == "4.00"
    assert "balance 2.50" in run("keys", "adjust", kid, "-1.5", "--note", "fix").stdout
    (total,) = run.sql("SELECT SUM(amount) FROM ledger WHERE key_id = ?", (kid,))[0]
    (balance,) = run.sql("SELECT balance FROM api_keys WHERE id = ?", (kid,))[0]
    assert total == balance == 2_500_000

    old_hash = run.sql("SELECT key_hash FROM api_keys")[0][0]
    rotated = run.json("keys", "rotate", kid)
    assert rotated["id"] == kid and rotated["balance"] == "2.50"
    assert run.sql("SELECT key_hash FROM api_keys")[0][0] != old_hash
    assert "revoked" in run("keys", "revoke", kid).stdout
    assert "revoked" in run("keys", "list").stdout
