"""Backends by name: `"module:attribute"` tables and the error for an unknown name."""

from __future__ import annotations

import pytest

from imagegate import plugins
from imagegate.storage.obstore_store import ObstoreBlobStore, memory_store
from imagegate.wiring import BLOB_STORES, EVENT_BUSES, RATE_LIMITERS


def test_load_resolves_modules_and_dotted_attributes() -> None:
    assert plugins.load("imagegate.storage.obstore_store:memory_store") is memory_store
    assert plugins.load("imagegate.storage.obstore_store:ObstoreBlobStore.memory") == (
        ObstoreBlobStore.memory)


@pytest.mark.parametrize("spec", ["imagegate.storage.obstore_store", "nothing:", ":x"])
def test_load_refuses_malformed_specs(spec: str) -> None:
    with pytest.raises((ValueError, ModuleNotFoundError)):
        plugins.load(spec)


def test_choose_names_the_setting_and_the_choices() -> None:
    with pytest.raises(ValueError) as info:
        plugins.choose(BLOB_STORES, "floppy", "blob_store")
    assert str(info.value) == "blob_store = 'floppy' is not one of: local, memory, s3"


@pytest.mark.parametrize("table", [BLOB_STORES, EVENT_BUSES, RATE_LIMITERS])
def test_every_table_entry_loads(table: dict[str, str]) -> None:
    for spec in table.values():
        assert callable(plugins.load(spec))
