from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from imagegate.config import Settings, load_settings


def test_precedence_flags_env_file_defaults(tmp_path: Path,
                                            monkeypatch: pytest.MonkeyPatch) -> None:
    cfg = tmp_path / "imagegate.toml"
    cfg.write_text('port = 9100\nhost = "0.0.0.0"\nsandbox_latency = 2.5\n'
                   'worker_concurrency = 7\n')
    monkeypatch.setenv("IMAGEGATE_SANDBOX_LATENCY", "1.5")
    s = load_settings(cfg, port=9200)
    assert s.port == 9200  # flag beats file
    assert s.sandbox_latency == 1.5  # env beats file
    assert s.host == "0.0.0.0" and s.worker_concurrency == 7  # file beats default
    assert s.retention_seconds == 7 * 86_400  # default


def test_config_from_env_var(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    cfg = tmp_path / "c.toml"
    cfg.write_text("port = 9300\n")
    monkeypatch.setenv("IMAGEGATE_CONFIG", str(cfg))
    assert load_settings().port == 9300


def test_data_dir_env_and_derived_paths(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("IMAGEGATE_DATA_DIR", str(tmp_path / "d"))
    s = load_settings()
    assert s.data_dir == tmp_path / "d"
    assert s.effective_database_url.endswith(f"{tmp_path}/d/imagegate.db")
    assert s.effective_blob_dir == tmp_path / "d" / "blobs"


def test_bad_values_and_unknown_keys(tmp_path: Path) -> None:
    cfg = tmp_path / "bad.toml"
    cfg.write_text("no_such_setting = 1\n")
    with pytest.raises(ValueError):
        load_settings(cfg)
    with pytest.raises(ValueError):
        load_settings(sandbox_failure_rate=2)
    with pytest.raises(FileNotFoundError):
        load_settings(tmp_path / "missing.toml")


def test_signing_secret_is_not_printed() -> None:
    s = load_settings(signing_secret="super-secret-value-123456")
    assert "super-secret-value" not in repr(s)


@pytest.mark.parametrize(("values", "message"), [
    ({"moderation_channel": "nope"}, "names no channel"),
    ({"moderation_channel": "d", "channels": [
        {"name": "d", "adapter": "dimilinks", "base_url": "https://d.example", "models": []}]},
     "must use the openai"),
    ({"channels": [{"name": "x", "adapter": "openai", "models": []}]}, "serves no models"),
    ({"moderation_thresholds": {"violence": 1.5}}, "between 0 and 1"),
])
def test_a_moderation_setup_that_cannot_work_is_refused(values: dict[str, Any],
                                                             message: str) -> None:
    with pytest.raises(ValueError, match=message):
        Settings(**values)
