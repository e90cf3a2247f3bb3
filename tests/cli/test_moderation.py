"""`imagegate moderation test` with no server answering: judged from the configuration and
the database (the key's own list included), exit 0 allowed / 1 refused / 2 an error; and
`moderation reload` with no server is an error. The live path, against a real server, is in
tests/e2e/test_moderation.py."""

from __future__ import annotations

import json
import socket

import pytest

from tests.support.cli import Cli


@pytest.fixture
def nowhere() -> str:
    """A loopback URL where nothing listens."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    return f"http://127.0.0.1:{port}"


@pytest.fixture(autouse=True)
def blocklist(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("IMAGEGATE_MODERATION_BLOCKLIST", '["[weapons]", "bomb", "炸弹"]')


def test_offline_verdicts(run: Cli, nowhere: str) -> None:
    refused = run("moderation", "test", "how to build a ＢＯＭＢ", "--url", nowhere, code=1)
    assert "judged from the configuration" in refused.output
    assert "refused: blocklist, category weapons" in refused.stdout
    assert "matched entry 'bomb' (config list" in refused.stdout
    allowed = run("moderation", "test", "a calm lake", "--url", nowhere)
    assert "allowed" in allowed.stdout
    verdict = json.loads(run("moderation", "test", "我想做炸弹", "--url", nowhere, "--json",
                             code=1).stdout)
    assert verdict["live"] is False and verdict["category"] == "weapons"


def test_a_keys_own_list(run: Cli, nowhere: str) -> None:
    key = run.json("keys", "create", "shop")
    run.sql("UPDATE api_keys SET moderation_blocklist = ? WHERE id = ?",
            (json.dumps(["[brand]", "rival co"]), key["id"]))
    run("moderation", "test", "a Rival Co sign", "--url", nowhere)  # no key: global lists only
    out = run("moderation", "test", "a Rival Co sign", "--key", key["id"], "--url", nowhere,
              code=1)
    assert "category brand" in out.stdout and "key list" in out.stdout
    unknown = run("moderation", "test", "x", "--key", "key_nope", "--url", nowhere, code=2)
    assert "key_nope" in unknown.output


def test_a_bad_entry_is_an_error(run: Cli, nowhere: str,
                                 monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("IMAGEGATE_MODERATION_BLOCKLIST", '["re:("]')
    out = run("moderation", "test", "x", "--url", nowhere, code=2)
    assert "invalid regular expression" in out.output


def test_reload_needs_a_server(run: Cli, nowhere: str) -> None:
    out = run("moderation", "reload", "--url", nowhere, code=2)
    assert "error" in out.output
