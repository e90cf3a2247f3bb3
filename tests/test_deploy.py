"""The deployment files in `deploy/` stay true: docs/deployment.md shows each one verbatim,
every `IMAGEGATE_*` they set is a setting, every `imagegate` command they run exists, and
the example environment file makes valid settings."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from imagegate.config import Settings

ROOT = Path(__file__).resolve().parent.parent
DEPLOY = ROOT / "deploy"
FILES = sorted(p for p in DEPLOY.rglob("*") if p.is_file())
COMMANDS = {"serve", "worker", "migrate", "keys", "channels", "usage", "version", "generate"}


def test_there_are_deployment_files() -> None:
    names = {p.relative_to(DEPLOY).as_posix() for p in FILES}
    assert {"Procfile", "compose.yaml", "Dockerfile", "imagegate.env",
            "systemd/imagegate-api@.service", "systemd/imagegate-worker@.service"} <= names


@pytest.mark.parametrize("path", FILES, ids=lambda p: p.relative_to(DEPLOY).as_posix())
def test_the_docs_show_each_file_as_it_is(path: Path) -> None:
    if path.name.endswith(".dockerignore"):
        return  # mentioned by name only
    assert path.read_text() in (ROOT / "docs" / "deployment.md").read_text(), (
        f"docs/deployment.md no longer shows {path.relative_to(ROOT)} as it is")


def commands(path: Path) -> list[str]:
    """The `imagegate` subcommands a Procfile or systemd unit runs."""
    lines = path.read_text().splitlines()
    if path.name == "Procfile":
        runs = [line.split(":", 1)[1] for line in lines if ":" in line and line[0] != "#"]
    elif path.suffix == ".service":
        runs = [line.split("=", 1)[1] for line in lines
                if line.startswith(("ExecStart=", "ExecStartPre="))]
    else:
        return []
    found = [re.search(r"imagegate (\w+)", run) for run in runs]
    assert all(found), runs
    return [m.group(1) for m in found if m]


@pytest.mark.parametrize("path", FILES, ids=lambda p: p.relative_to(DEPLOY).as_posix())
def test_only_real_settings_and_commands(path: Path) -> None:
    text = path.read_text()
    known = {f"IMAGEGATE_{name.upper()}" for name in Settings.model_fields}
    assert set(re.findall(r"IMAGEGATE_[A-Z0-9_]*[A-Z0-9]", text)) <= known
    assert set(commands(path)) <= COMMANDS


def test_the_example_environment_makes_valid_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    for line in (DEPLOY / "imagegate.env").read_text().splitlines():
        if line and not line.startswith("#"):
            name, _, value = line.partition("=")
            monkeypatch.setenv(name, value)
    settings = Settings()
    assert settings.blob_store == "s3" and settings.redis_url and not settings.run_workers
    assert settings.signing_secret and settings.admin_token


def test_the_compose_file_runs_both_roles() -> None:
    yaml = pytest.importorskip("yaml")
    compose = yaml.safe_load((DEPLOY / "compose.yaml").read_text())
    services = compose["services"]
    run = [s.get("command", [None])[0] for s in services.values()]
    assert run.count("serve") == 2 and run.count("worker") == 2 and "migrate" in run
    for name, service in services.items():
        if service.get("command", [None])[0] in COMMANDS:
            env = service["environment"]
            assert env["IMAGEGATE_BLOB_STORE"] == "s3" and env["IMAGEGATE_REDIS_URL"], name
