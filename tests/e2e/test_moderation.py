"""Moderation against a real `imagegate serve` process: blocklists from the config file and a
blocklist file refuse before anything is created; `SIGHUP` re-reads both without a restart
(and a broken file keeps the old lists, the server running); `POST /admin/moderation/reload`;
`imagegate moderation test` asking the live server."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest

from tests.support.e2e import IMAGEGATE, Server, ServerFactory, base_env

pytestmark = pytest.mark.e2e


def admin(server: Server) -> dict[str, str]:
    token = (server.data_dir / "admin.token").read_text().strip()
    return {"Authorization": f"Bearer {token}"}


def refused(server: Server, prompt: str) -> bool:
    with httpx.Client(base_url=server.base_url, headers=admin(server), timeout=10) as c:
        resp = c.post("/admin/moderation/test", json={"prompt": prompt})
    assert resp.status_code == 200, resp.text
    verdict: bool = resp.json()["refused"]
    return verdict


def until(check: Callable[[], bool], what: str, timeout: float = 15.0) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.1)


@pytest.fixture
def files(tmp_path: Path) -> tuple[Path, Path]:
    config, listing = tmp_path / "imagegate.toml", tmp_path / "blocklist.txt"
    listing.write_text("[weapons]\nbeta\n", encoding="utf-8")
    config.write_text(f'moderation_blocklist = ["alpha"]\n'
                      f'moderation_blocklist_file = "{listing}"\n', encoding="utf-8")
    return config, listing


def test_refusal_reload_on_sighup_and_the_cli(server_factory: ServerFactory,
                                               files: tuple[Path, Path]) -> None:
    config, listing = files
    server = server_factory.start({"IMAGEGATE_CONFIG": str(config),
                                   "IMAGEGATE_LOG_LEVEL": "info"})
    with server.client() as c:
        resp = c.post("/v1/images/generations", json={"prompt": "an ＡＬＰＨＡ wolf"})
        assert resp.status_code == 400, resp.text
        assert resp.json()["error"]["code"] == "content_policy_violation"
        resp = c.post("/apimart/v1/images/generations", json={"prompt": "beta male"})
        assert resp.status_code == 400
        assert resp.json()["error"] == {"code": 400, "type": "invalid_request_error",
                                        "message": resp.json()["error"]["message"]}
        assert "weapons" in resp.json()["error"]["message"]
    assert server.query("SELECT count(*) FROM tasks")[0][0] == 0
    assert server.query("SELECT count(*) FROM ledger WHERE kind != 'topup'")[0][0] == 0
    assert server.query("SELECT count(*) FROM moderation_refusals")[0][0] == 2
    assert "an ＡＬＰＨＡ wolf" not in server.output()  # never the prompt in the log

    # Both sources change; SIGHUP reads them again, no restart.
    config.write_text(f'moderation_blocklist = ["gamma"]\n'
                      f'moderation_blocklist_file = "{listing}"\n', encoding="utf-8")
    listing.write_text("delta\n", encoding="utf-8")
    os.kill(server.pid, signal.SIGHUP)
    until(lambda: refused(server, "a gamma ray"), "the reloaded config list")
    assert refused(server, "a delta wing") and not refused(server, "an alpha wolf")
    assert server.alive

    # A broken file: the reload fails, the lists in force stay, the server keeps serving.
    listing.write_text("re:(broken\n", encoding="utf-8")
    os.kill(server.pid, signal.SIGHUP)
    until(lambda: "were not reloaded" in server.output(), "the failed reload to be logged")
    assert server.alive and refused(server, "a delta wing")
    with httpx.Client(base_url=server.base_url, headers=admin(server), timeout=10) as c:
        bad = c.post("/admin/moderation/reload")
        assert bad.status_code == 400 and "blocklist.txt line 1" in bad.json()["error"]["message"]
        listing.write_text("epsilon\n", encoding="utf-8")
        assert c.post("/admin/moderation/reload").status_code == 200
    assert refused(server, "epsilon") and not refused(server, "a delta wing")

    # The CLI asks the live server (its lists, not the files': they agree here).
    env = {k: v for k, v in base_env({"IMAGEGATE_CONFIG": str(config)}).items()}
    args = [IMAGEGATE, "moderation", "test", "--url", server.base_url, "--data-dir",
            str(server.data_dir), "--json"]
    out = subprocess.run([*args, "an epsilon"], capture_output=True, text=True, env=env,
                         timeout=60, check=False)
    assert out.returncode == 1, out.stderr
    verdict = json.loads(out.stdout)
    assert verdict["live"] is True and verdict["rule"]["list"] == "file"
    out = subprocess.run([*args, "a calm lake"], capture_output=True, text=True, env=env,
                         timeout=60, check=False)
    assert out.returncode == 0 and json.loads(out.stdout)["refused"] is False


def test_an_unusable_entry_stops_the_start(tmp_path: Path) -> None:
    listing = tmp_path / "blocklist.txt"
    listing.write_text("fine\nre:x*\n", encoding="utf-8")
    out = subprocess.run(
        [IMAGEGATE, "serve", "--port", "1", "--data-dir", str(tmp_path / "data")],
        capture_output=True, text=True, timeout=60, check=False,
        env=base_env({"IMAGEGATE_MODERATION_BLOCKLIST_FILE": str(listing)}))
    assert out.returncode == 2
    assert "blocklist.txt line 2" in out.stderr and "empty prompt" in out.stderr
