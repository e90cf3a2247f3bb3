"""What every command shares (options.py): a bad settings file is one plain refusal, exit 2."""

from __future__ import annotations

from pathlib import Path

from typer.testing import CliRunner

from imagegate.cli import cli


def test_bad_config_is_a_clear_error(tmp_path: Path) -> None:
    cfg = tmp_path / "c.toml"
    cfg.write_text("port = 'not a number'\n")
    out = CliRunner().invoke(cli, ["keys", "list", "--config", str(cfg)])
    assert out.exit_code == 2 and "configuration error" in out.output
