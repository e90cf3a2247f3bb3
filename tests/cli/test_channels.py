"""`imagegate channels`: live from a served app (with the admin token the server kept), one
line and exit 1 when the server refuses, the configuration alone when no server answers."""

from __future__ import annotations

import json
import socket
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from imagegate.cli import cli
from imagegate.cli.channels import channels_app
from imagegate.secret_files import ADMIN_TOKEN_FILE

SECRET = "sk-channel-secret-value"
CHANNEL = {"name": "resale", "adapter": "openai_compatible",
           "base_url": "https://resale.example/v1", "api_key": SECRET,
           "models": ["gpt-image-2"], "concurrency": 2}
NO_SERVER = "http://127.0.0.1:9"  # a port nothing listens on: the connection is refused at once


@pytest.fixture(autouse=True)
def _no_official_channel(monkeypatch: pytest.MonkeyPatch) -> None:
    # An OPENAI_API_KEY in the environment would add the official channel to the list.
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    monkeypatch.delenv("IMAGEGATE_ADMIN_TOKEN", raising=False)


def channels(*args: str, env: dict[str, str] | None = None) -> Any:
    return CliRunner().invoke(cli, ["channels", *args], env={"COLUMNS": "200", **(env or {})})


def test_live_with_the_token_the_server_kept(serve_app: Any, tmp_path: Path) -> None:
    url = serve_app(channels=[CHANNEL])  # no admin_token configured: kept in the data dir
    shown = channels("--url", url, "--json", "--data-dir", str(tmp_path))
    assert shown.exit_code == 0, (shown.output, shown.exception)
    body = json.loads(shown.stdout)
    assert body["live"] is True and body["url"] == url
    assert [(c["name"], c["breaker"], c["in_flight"]) for c in body["channels"]] == [
        ("resale", "closed", 0)]
    table = channels("--url", url, "--data-dir", str(tmp_path))
    assert table.exit_code == 0 and table.stderr == ""
    assert "channels (live)" in table.stdout and "resale.example" in table.stdout
    assert SECRET not in shown.output + table.output


def test_a_refusal_is_one_line_and_exit_1(serve_app: Any, tmp_path: Path) -> None:
    url = serve_app(admin_token="iga_the-real-one")
    shown = channels("--url", url, "--data-dir", str(tmp_path),
                     env={"IMAGEGATE_ADMIN_TOKEN": "iga_a-wrong-one"})
    assert shown.exit_code == 1 and shown.stdout == ""
    assert shown.stderr == f"error: {url} answered 403: The admin token is not valid.\n"


def test_cli_without_a_server_shows_the_configuration(tmp_path: Path) -> None:
    config = tmp_path / "c.toml"
    config.write_text(f'''
[[channels]]
name = "resale"
adapter = "openai_compatible"
base_url = "https://resale.example/v1"
api_key = "{SECRET}"
models = ["gpt-image-2"]
''')
    result = CliRunner().invoke(channels_app, ["--url", NO_SERVER, "--json",
                                               "--config", str(config),
                                               "--data-dir", str(tmp_path)])
    assert result.exit_code == 0, result.output
    shown = json.loads(result.stdout)
    assert shown["live"] is False and shown["mode"] == "channels"
    assert [c["name"] for c in shown["channels"]] == ["resale"]
    assert SECRET not in result.output


def test_without_a_server_the_text_says_live_state_needs_one(tmp_path: Path) -> None:
    with socket.socket() as sock:  # a port that was just free: nothing listens there now
        sock.bind(("127.0.0.1", 0))
        url = f"http://127.0.0.1:{sock.getsockname()[1]}"
    shown = channels("--url", url, "--data-dir", str(tmp_path))
    assert shown.exit_code == 0, shown.output
    assert shown.stderr == (f"No server answered at {url}: showing the configuration only; "
                            "health, breaker, in-flight and error rates need a running server.\n")
    assert shown.stdout == "No upstream channels configured: the sandbox serves every model.\n"
    assert not (tmp_path / ADMIN_TOKEN_FILE).exists()  # asking never creates the server's token
