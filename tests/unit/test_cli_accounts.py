"""`imagegate keys …` (limits, balances, rotation) and `imagegate usage`, against a real SQLite
database with no server running. Refusals are one line on stderr and exit status 1."""

from __future__ import annotations

import json
import sqlite3
import time
from pathlib import Path
from typing import Any

import pytest
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


@pytest.fixture
def run(tmp_path: Path) -> Cli:
    return Cli(tmp_path)


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


@pytest.mark.parametrize(
    ("args", "message"),
    [(("keys", "topup", "{id}", "-3"), "must not be negative"),
     (("keys", "topup", "{id}", "ten"), "must be a decimal number"),
     (("keys", "topup", "{id}", "0"), "greater than 0"),
     (("keys", "topup", "{id}", "0.0000001"), "more than 6 decimal places"),
     (("keys", "topup", "key_nope", "5"), "No API key with id 'key_nope'"),
     (("keys", "adjust", "{id}", "-99", "--note", "x"), "below 0"),
     (("keys", "rotate", "key_nope"), "No API key"),
     (("keys", "revoke", "key_nope"), "No API key"),
     (("keys", "create", "x", "--balance", "-1"), "must not be negative"),
     (("keys", "create", "x", "--balance", "1,5"), "decimal number"),
     (("keys", "create", "x", "--models", "nope"), "unknown model(s): nope"),
     (("keys", "create", "x", "--webhook-url", "ftp://h/x"), "http or https"),
     (("keys", "create", "x", "--expires", "soonish"), "expires must be"),
     (("keys", "create",), "a name is needed"),
     (("usage", "--since", "last tuesday"), "since must be"),
     (("usage", "--since", "1d", "--until", "2d"), "until must be later"),
     (("usage", "--key", "key_nope"), "No API key")],
)
def test_bad_input_is_one_line_and_exit_1(run: Cli, args: tuple[str, ...],
                                          message: str) -> None:
    kid = run.json("keys", "create", "base", "--balance", "2")["id"]
    before = run.sql("SELECT * FROM api_keys"), run.sql("SELECT * FROM ledger")
    result = run(*(a.replace("{id}", kid) for a in args), code=1)
    assert message in result.stderr and result.stderr.startswith("error:")
    assert len(result.stderr.strip().splitlines()) == 1
    assert (run.sql("SELECT * FROM api_keys"), run.sql("SELECT * FROM ledger")) == before


def test_usage_table_and_json(run: Cli) -> None:
    kid = run.json("keys", "create", "alice", "--balance", "5")["id"]
    now = time.time()
    rows = [("img_1", "hold", -80_000, "gpt-image-2", 2, now - 100),
            ("img_1", "settle", 40_000, "gpt-image-2", -1, now - 90),
            ("img_2", "hold", -50_000, "dall-e-3", 1, now - 80),
            ("img_2", "refund", 50_000, "dall-e-3", -1, now - 70),
            ("img_0", "hold", -10_000, "dall-e-3", 1, now - 30 * 86_400)]
    for task, kind, amount, model, images, at in rows:
        run.sql("INSERT INTO ledger (key_id, task_id, kind, amount, model, images, created_at)"
                " VALUES (?, ?, ?, ?, ?, ?, ?)", (kid, task, kind, amount, model, images, at))
    report = run.json("usage", "--since", "7d")
    assert report["currency"] == "USD"
    assert [(r["model"], r["tasks"], r["images"], r["spend"], r["refunds"])
            for r in report["data"]] == [("dall-e-3", 1, 0, "0.00", "0.05"),
                                         ("gpt-image-2", 1, 1, "0.04", "0.00")]
    everything = run.json("usage", "--key", kid)
    assert sum(r["tasks"] for r in everything["data"]) == 3
    table = run("usage", "--key", kid, "--model", "gpt-image-2").stdout
    assert "balance 5.00" in table and "gpt-image-2" in table and "dall-e-3" not in table
    assert "0.04" in table and "total" in table
