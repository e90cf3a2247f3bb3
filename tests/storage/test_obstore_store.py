"""The local blob store keeps images owner-only: folders 0700, files 0600, whatever the umask;
a root folder the operator made keeps its own mode."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from imagegate.storage.obstore_store import ObstoreBlobStore
from tests.support.files import mode, umask

pytestmark = pytest.mark.anyio


async def test_local_blobs_are_owner_only(tmp_path: Path) -> None:
    root = tmp_path / "blobs"
    with umask(0):
        store = ObstoreBlobStore.local(root)
        await store.put("tasks/img_a/refs/0.png", b"one", "image/png")
        await store.put("tasks/img_a/refs/0.png", b"two", "image/png")  # replaced: still 0600
        await store.put("top.png", b"x", "image/png")
    assert await store.get("tasks/img_a/refs/0.png") == b"two"
    refs = root / "tasks" / "img_a" / "refs"
    for folder in (root, root / "tasks", refs.parent, refs):
        assert mode(folder) == 0o700, folder
    assert mode(root / "tasks" / "img_a" / "refs" / "0.png") == mode(root / "top.png") == 0o600


async def test_an_existing_root_keeps_its_mode(tmp_path: Path) -> None:
    os.chmod(tmp_path, 0o750)
    store = ObstoreBlobStore.local(tmp_path)
    await store.put("tasks/img_a/1/0.png", b"x", "image/png")
    assert mode(tmp_path) == 0o750
    assert mode(tmp_path / "tasks") == 0o700
