#!/usr/bin/env python3
"""Make the UI screenshots of the README and docs/ui.md: docs/images/playground.png and
docs/images/admin.png.

Starts `imagegate serve` on a free loopback port with a fresh data directory (sandbox
provider), makes a few images through the API so the pages have something to show, and
photographs both pages with Playwright driving Debian's Chromium (`/usr/bin/chromium`).

    uv run --locked --extra dev python scripts/screenshots.py
"""

from __future__ import annotations

import os
import re
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx
from playwright.sync_api import Page, sync_playwright

ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT / "docs" / "images"
ADMIN_TOKEN = "iga_screenshots-admin-token-0123456789"
KEY_LINE = re.compile(r"^\s+(ig_[A-Za-z0-9_\-]{20,})\s*$")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def start(data_dir: Path, port: int) -> tuple[subprocess.Popen[str], str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("IMAGEGATE_")}
    env.update({"PYTHONUNBUFFERED": "1", "COLUMNS": "200", "NO_COLOR": "1",
                "IMAGEGATE_SANDBOX_LATENCY": "0.5", "IMAGEGATE_ADMIN_TOKEN": ADMIN_TOKEN,
                "IMAGEGATE_ACCESS_LOG": "false"})
    proc = subprocess.Popen(
        [str(Path(sys.executable).parent / "imagegate"), "serve", "--port", str(port),
         "--data-dir", str(data_dir)],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env)
    assert proc.stdout is not None
    deadline = time.monotonic() + 30
    for line in proc.stdout:
        m = KEY_LINE.match(line)
        if m:
            key = m.group(1)
            break
        if time.monotonic() > deadline:
            break
    else:
        key = ""
    if not key:
        proc.terminate()
        raise SystemExit("no API key in the server's banner")
    base = f"http://127.0.0.1:{port}"
    while time.monotonic() < deadline:
        try:
            if httpx.get(base + "/healthz", timeout=1).status_code == 200:
                return proc, key
        except httpx.TransportError:
            pass
        time.sleep(0.1)
    proc.terminate()
    raise SystemExit("the server did not become healthy")


def seed(base: str, key: str) -> None:
    auth = {"Authorization": f"Bearer {key}"}
    admin = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
    for name, balance in (("shop", "20.00"), ("mobile-app", "5.00")):
        made = httpx.post(base + "/admin/keys", json={"name": name, "balance": balance,
                                                      "rpm": 60}, headers=admin).json()
        for prompt in ("a lighthouse at dusk", "a paper boat"):
            httpx.post(base + "/v1/images/generations",
                       json={"prompt": prompt, "size": "3:2"},
                       headers={"Authorization": f"Bearer {made['key']}"}, timeout=30)
    httpx.post(base + "/v1/images/generations", json={"prompt": "city at night"},
               headers=auth, timeout=30)


def playground(page: Page, base: str, key: str) -> None:
    page.goto(base + "/ui/")
    page.get_by_test_id("api-key").fill(key)
    page.get_by_test_id("sign-in").click()
    page.get_by_test_id("prompt").wait_for()
    page.select_option("[data-testid=ratio]", "16:9")
    page.get_by_test_id("prompt").fill("a lighthouse on a cliff at dusk, watercolour")
    page.get_by_test_id("generate").click()
    page.get_by_test_id("result-image").first.wait_for()
    page.wait_for_timeout(1500)  # the history and balance refresh after the result
    page.screenshot(path=str(OUT / "playground.png"), full_page=True)


def console(page: Page, base: str) -> None:
    page.goto(base + "/ui/admin")
    page.get_by_test_id("admin-token").fill(ADMIN_TOKEN)
    page.get_by_test_id("admin-sign-in").click()
    page.get_by_test_id("usage-bar").first.wait_for()
    page.wait_for_timeout(500)
    page.screenshot(path=str(OUT / "admin.png"), full_page=False)


def main() -> None:
    OUT.mkdir(parents=True, exist_ok=True)
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    with tempfile.TemporaryDirectory() as tmp:
        proc, key = start(Path(tmp) / "data", port)
        try:
            seed(base, key)
            with sync_playwright() as pw:
                browser = pw.chromium.launch(executable_path="/usr/bin/chromium", headless=True,
                                             args=["--no-sandbox",
                                                   "--disable-background-networking"])
                page = browser.new_page(viewport={"width": 1100, "height": 900})
                playground(page, base, key)
                console(page, base)
                browser.close()
        finally:
            proc.terminate()
            proc.wait(timeout=15)
    print(f"wrote {OUT / 'playground.png'} and {OUT / 'admin.png'}")


if __name__ == "__main__":
    main()
