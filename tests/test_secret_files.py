"""The secrets kept in the data dir: created once, owner-only, reused; a configured value wins;
the CLI's read never creates anything; the server and the CLI agree on the admin token."""

from __future__ import annotations

import stat
from collections.abc import Callable
from pathlib import Path

import pytest

from imagegate import secret_files
from imagegate.config import Settings
from imagegate.secret_files import (
    ADMIN_TOKEN_FILE,
    SIGNING_KEY_FILE,
    admin_token,
    private_dir,
    private_file,
    read_admin_token,
    signing_secret,
)
from tests.support.files import umask


def settings(data_dir: Path, **values: str) -> Settings:
    return Settings(data_dir=data_dir, **values)


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


@pytest.mark.parametrize(("read", "name"), [(admin_token, ADMIN_TOKEN_FILE),
                                            (signing_secret, SIGNING_KEY_FILE)])
def test_kept_secret_is_created_once_owner_only_and_reused(
        tmp_path: Path, read: Callable[[Settings], object], name: str) -> None:
    data_dir = tmp_path / "not-yet"  # created on first use, like a fresh data dir
    first = read(settings(data_dir))
    path = data_dir / name
    assert mode(path) == 0o600
    before = path.stat()
    assert read(settings(data_dir)) == first  # a restart gets the same secret
    after = path.stat()
    assert (after.st_ino, after.st_mtime_ns) == (before.st_ino, before.st_mtime_ns)
    assert [p.name for p in data_dir.iterdir()] == [name]  # no temporary file left behind


def test_generated_secrets_are_long_and_distinct(tmp_path: Path) -> None:
    token = admin_token(settings(tmp_path / "a"))
    assert token.startswith("iga_") and len(token) > 40
    assert token != admin_token(settings(tmp_path / "b"))
    assert len(signing_secret(settings(tmp_path / "a"))) >= 48


def test_an_existing_file_is_read_not_replaced(tmp_path: Path) -> None:
    (tmp_path / ADMIN_TOKEN_FILE).write_text("iga_from-an-earlier-start\n")
    (tmp_path / SIGNING_KEY_FILE).write_text("kept-signing-key-0123456789\n")
    assert admin_token(settings(tmp_path)) == "iga_from-an-earlier-start"
    assert signing_secret(settings(tmp_path)) == b"kept-signing-key-0123456789"


def test_configured_values_win_and_create_nothing(tmp_path: Path) -> None:
    (tmp_path / ADMIN_TOKEN_FILE).write_text("iga_kept")
    configured = settings(tmp_path, admin_token="iga_configured",
                          signing_secret="configured-signing-secret")
    assert admin_token(configured) == "iga_configured"
    assert read_admin_token(configured) == "iga_configured"
    assert signing_secret(configured) == b"configured-signing-secret"
    assert not (tmp_path / SIGNING_KEY_FILE).exists()
    assert (tmp_path / ADMIN_TOKEN_FILE).read_text() == "iga_kept"


def test_the_cli_read_never_creates_the_token(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    assert read_admin_token(settings(data_dir)) is None
    assert not data_dir.exists()
    data_dir.mkdir()
    assert read_admin_token(settings(data_dir)) is None
    assert list(data_dir.iterdir()) == []


def test_the_cli_reads_the_token_the_server_created(tmp_path: Path) -> None:
    server_side = admin_token(settings(tmp_path))
    assert read_admin_token(settings(tmp_path)) == server_side


def test_an_empty_configured_token_counts_as_unset_on_both_sides(tmp_path: Path) -> None:
    empty = settings(tmp_path, admin_token="")
    assert read_admin_token(empty) is None
    kept = admin_token(empty)
    assert kept.startswith("iga_") and read_admin_token(empty) == kept


def test_a_racing_writer_loses_to_the_file_already_there(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Two servers starting on one data dir: the one that links second reads the first's."""
    path = tmp_path / ADMIN_TOKEN_FILE
    real_link = secret_files.os.link

    def link_after_the_other(src: str, dst: str) -> None:
        path.write_text("iga_the-other-process")  # it got there between our check and link
        real_link(src, dst)

    monkeypatch.setattr(secret_files.os, "link", link_after_the_other)
    assert admin_token(settings(tmp_path)) == "iga_the-other-process"
    assert [p.name for p in tmp_path.iterdir()] == [ADMIN_TOKEN_FILE]


def test_private_folders_and_files_whatever_the_umask(tmp_path: Path) -> None:
    with umask(0):  # without explicit modes, mkdir would give 0777 and open 0666
        private_dir(tmp_path / "a" / "b")
        private_file(tmp_path / "a" / "b" / "f")
        private_dir(tmp_path / "a" / "b")  # twice is fine
        private_dir(tmp_path / "a" / "c")  # the parent exists: only the leaf is made
    assert mode(tmp_path / "a") == mode(tmp_path / "a" / "b") == 0o700
    assert mode(tmp_path / "a" / "c") == 0o700
    assert mode(tmp_path / "a" / "b" / "f") == 0o600


def test_what_exists_keeps_its_mode(tmp_path: Path) -> None:
    folder = tmp_path / "made-by-the-operator"
    folder.mkdir()
    folder.chmod(0o750)
    kept = folder / "imagegate.db"
    kept.write_bytes(b"data")
    kept.chmod(0o640)
    private_dir(folder)
    private_file(kept)
    assert (mode(folder), mode(kept), kept.read_bytes()) == (0o750, 0o640, b"data")
