"""build_providers: the sandbox default, the OpenAI quick start, channels from a TOML config
(keys from env and files, never shown), and configuration errors."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from imagegate.api.metrics import channel_info
from imagegate.config import ChannelConfig, Settings, load_settings
from imagegate.domain.catalog import load_catalog
from imagegate.errors import ServiceUnavailableError
from imagegate.metrics import Metrics
from imagegate.providers.apimart import ApimartProvider
from imagegate.providers.factory import build_providers, plan_routes
from imagegate.providers.openai import OpenAIProvider
from imagegate.providers.openai_compatible import OpenAICompatibleProvider
from imagegate.providers.routing import RoutedProvider
from imagegate.providers.sandbox import SandboxProvider
from tests.support.routing import Scripted, make_job, no_progress

pytestmark = pytest.mark.anyio

CATALOG = load_catalog()
OPENAI_MODELS = {"gpt-image-2", "gpt-image-2-pro", "gpt-image-2-2026-04-21", "gpt-image-1.5",
                 "gpt-image-1", "gpt-image-1-mini", "dall-e-3", "dall-e-2"}


@pytest.fixture(autouse=True)
def _no_ambient_keys(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("OPENAI_API_KEY", "IMAGEGATE_OPENAI_API_KEY", "IMAGEGATE_CONFIG",
                 "IMAGEGATE_CHANNELS"):
        monkeypatch.delenv(name, raising=False)


def settings(tmp_path: Path, **values: object) -> Settings:
    return load_settings(None, data_dir=tmp_path, **values)


async def test_sandbox_serves_everything_by_default(tmp_path: Path) -> None:
    registry = build_providers(settings(tmp_path), CATALOG)
    try:
        assert set(registry.describe()) == set(CATALOG.names())
        assert set(registry.describe().values()) == {"sandbox"}
        assert isinstance(registry.for_model("dall-e-3"), SandboxProvider)
        assert registry.serves("gpt-image-2")
        assert registry.channels() == [] and registry.notes == []
    finally:
        await registry.aclose()


async def test_openai_quick_start(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", "sk-quick-start-secret")
    s = settings(tmp_path)
    registry = build_providers(s, CATALOG)
    try:
        assert set(registry.describe()) == OPENAI_MODELS <= set(CATALOG.names())
        assert set(registry.describe().values()) == {"openai (official)"}
        [channel] = registry.channels()
        assert channel.name == "openai" and channel.config.official
        assert channel.config.base_url == "https://api.openai.com/v1"
        assert isinstance(channel.provider, OpenAIProvider)
        assert channel.config.secret() == "sk-quick-start-secret"
        route = registry.for_model("gpt-image-1")
        assert isinstance(route, RoutedProvider) and route.channels == [channel]
        [note] = registry.notes
        assert note.startswith("OpenAI quick start: OPENAI_API_KEY set, models ")
        assert "api.openai.com" in note and "dall-e-3" in note
        shown = json.dumps([registry.describe(), registry.notes, channel_info(channel)])
        assert "sk-quick-start-secret" not in shown
    finally:
        await registry.aclose()


def write_config(tmp_path: Path) -> Path:
    key_file = tmp_path / "apimart.key"
    key_file.write_text("sk-from-file-secret\n")
    config = tmp_path / "imagegate.toml"
    config.write_text(f'''
breaker_failures = 2

[[channels]]
name = "resale"
adapter = "openai_compatible"
base_url = "https://user:pw@resale.example/v1"
api_key_env = "RESALE_KEY"
models = ["gpt-image-2"]
model_map = {{ "gpt-image-2" = "gpt-image-2-all" }}
weight = 3
priority = 5
concurrency = 4

[[channels]]
name = "mart"
adapter = "apimart"
base_url = "https://api.apimart.example"
api_key_file = "{key_file}"
models = ["gpt-image-2", "gpt-image-1"]

[[channels]]
name = "official"
adapter = "openai"
api_key = "sk-inline-secret"
models = ["gpt-image-2"]
official = true
''')
    return config


async def test_channels_from_a_toml_config(tmp_path: Path,
                                           monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RESALE_KEY", "sk-from-env-secret")
    s = load_settings(write_config(tmp_path), data_dir=tmp_path)
    registry = build_providers(s, CATALOG, metrics=Metrics())
    try:
        by_name = {c.name: c for c in registry.channels()}
        assert list(by_name) == ["resale", "mart", "official"]
        assert isinstance(by_name["resale"].provider, OpenAICompatibleProvider)
        assert isinstance(by_name["mart"].provider, ApimartProvider)
        assert isinstance(by_name["official"].provider, OpenAIProvider)
        assert by_name["resale"].config.secret() == "sk-from-env-secret"
        assert by_name["mart"].config.secret() == "sk-from-file-secret"
        assert by_name["resale"].config.upstream_model("gpt-image-2") == "gpt-image-2-all"
        assert by_name["resale"].breaker.failures == 2

        route = registry.for_model("gpt-image-2")
        assert isinstance(route, RoutedProvider)
        assert [c.name for c in route.channels] == ["resale", "mart", "official"]
        assert registry.describe()["gpt-image-2"] == "resale, mart, official (official)"
        assert registry.describe()["gpt-image-1"] == "mart"
        assert not registry.serves("dall-e-3")
        with pytest.raises(ServiceUnavailableError):
            registry.for_model("dall-e-3")
        assert any("not served" in n and "dall-e-3" in n for n in registry.notes)

        shown = json.dumps([registry.describe(), registry.notes,
                            [channel_info(c) for c in registry.channels()]])
        for secret in ("sk-from-env-secret", "sk-from-file-secret", "sk-inline-secret", "pw"):
            assert secret not in shown
        assert channel_info(by_name["resale"])["host"] == "resale.example"
    finally:
        await registry.aclose()


async def test_adapters_can_be_overridden_and_routes_share_channels(tmp_path: Path) -> None:
    fake = Scripted("shared")
    s = settings(tmp_path, channels=[
        {"name": "shared", "adapter": "dimilinks", "base_url": "https://d.example",
         "api_key": "k", "models": ["gpt-image-2", "gpt-image-1"]},
    ])
    registry = build_providers(s, CATALOG, adapters={"dimilinks": lambda ch, dl: fake})
    try:
        r1, r2 = registry.for_model("gpt-image-2"), registry.for_model("gpt-image-1")
        assert isinstance(r1, RoutedProvider) and isinstance(r2, RoutedProvider)
        assert r1.channels[0] is r2.channels[0]
        await r1.generate(make_job(), no_progress)
        assert len(fake.calls) == 1
    finally:
        await registry.aclose()
    assert fake.closed == 1


def test_a_channel_naming_an_unknown_model_is_a_start_up_error(tmp_path: Path) -> None:
    s = settings(tmp_path, channels=[
        {"name": "x", "adapter": "sandbox", "models": ["gpt-image-9"]}])
    with pytest.raises(ValueError, match=r"channel 'x' serves model 'gpt-image-9', which is "
                                         r"not in the model catalog"):
        build_providers(s, CATALOG)


def test_duplicate_channel_names_are_refused(tmp_path: Path) -> None:
    one = {"name": "x", "adapter": "sandbox", "models": ["gpt-image-2"]}
    with pytest.raises(ValueError, match="two channels are named 'x'"):
        plan_routes(settings(tmp_path, channels=[one, one]), CATALOG)


def test_unreadable_key_file_is_a_start_up_error(tmp_path: Path) -> None:
    s = settings(tmp_path, channels=[
        {"name": "x", "adapter": "apimart", "base_url": "https://a.example",
         "api_key_file": str(tmp_path / "missing.key"), "models": ["gpt-image-2"]}])
    with pytest.raises(ValueError, match="cannot read api_key_file"):
        plan_routes(s, CATALOG)


async def test_sandbox_adapter_channel_is_flagged(tmp_path: Path) -> None:
    s = settings(tmp_path, channels=[
        {"name": "local", "adapter": "sandbox", "models": ["gpt-image-2"]}])
    registry = build_providers(s, CATALOG)
    try:
        assert isinstance(registry.channels()[0].provider, SandboxProvider)
        assert any("PLACEHOLDER" in n for n in registry.notes)
    finally:
        await registry.aclose()


def test_missing_key_is_noted_not_fatal(tmp_path: Path) -> None:
    cfg = ChannelConfig.model_validate({"name": "nokey", "adapter": "apimart",
                                        "base_url": "https://a.example",
                                        "models": ["gpt-image-2"]})
    plan = plan_routes(settings(tmp_path, channels=[cfg]), CATALOG)
    assert any("'nokey' has no API key" in n for n in plan.notes)
