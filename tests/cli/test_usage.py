"""`imagegate usage` from the ledger of a real SQLite database (no server running)."""

from __future__ import annotations

import time

from tests.support.cli import Cli


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
