"""Where the client commands connect: flags, then the profile named by --profile, then the
environment, then the file's default profile, then the local server; and the exit code each
kind of failure ends with."""

from __future__ import annotations

from pathlib import Path

import pytest
import typer

from imagegate.cli.connection import (
    SERVER,
    TASK_FAILED,
    USAGE,
    connection,
    exit_code,
    resume_command,
)
from imagegate.client import (
    APIConnectionError,
    InputError,
    Task,
    TaskFailedError,
    TaskTimeoutError,
    UnsupportedError,
)
from imagegate.client.errors import api_error

FILE = """default = "home"
[profiles.home]
url = "http://home:8000"
api_key = "ig_home"
[profiles.dimi]
url = "https://dimi.example"
api_key = "sk-dimi"
dialect = "dimilinks"
"""


@pytest.fixture
def profiles(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    path = tmp_path / "client.toml"
    path.write_text(FILE)
    monkeypatch.setenv("IMAGEGATE_CLIENT_CONFIG", str(path))
    for name in ("IMAGEGATE_URL", "IMAGEGATE_API_KEY", "IMAGEGATE_PROFILE"):
        monkeypatch.delenv(name, raising=False)
    return path


def test_the_default_profile_then_the_environment_then_flags(
        profiles: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    conn = connection(None, None, None, None)
    assert (conn.url, conn.api_key, conn.dialect) == ("http://home:8000", "ig_home",
                                                      "imagegate")
    monkeypatch.setenv("IMAGEGATE_URL", "http://env:1")
    monkeypatch.setenv("IMAGEGATE_API_KEY", "ig_env")
    conn = connection(None, None, None, None)
    assert (conn.url, conn.api_key) == ("http://env:1", "ig_env")
    conn = connection("http://flag:2", "ig_flag", None, "apimart")
    assert (conn.url, conn.api_key, conn.dialect) == ("http://flag:2", "ig_flag", "apimart")
    assert conn.flags == ("--url", "http://flag:2", "--dialect", "apimart")


def test_a_named_profile_beats_the_environment(profiles: Path,
                                               monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("IMAGEGATE_URL", "http://env:1")
    conn = connection(None, None, "dimi", None)
    assert (conn.url, conn.api_key, conn.dialect) == ("https://dimi.example", "sk-dimi",
                                                      "dimilinks")
    assert resume_command(conn, "tasks", "wait", "img_1") == (
        "imagegate tasks wait img_1 --profile dimi")
    monkeypatch.setenv("IMAGEGATE_PROFILE", "dimi")
    assert connection(None, None, None, None).dialect == "dimilinks"


def test_no_file_means_the_local_server(monkeypatch: pytest.MonkeyPatch,
                                        tmp_path: Path) -> None:
    monkeypatch.setenv("IMAGEGATE_CLIENT_CONFIG", str(tmp_path / "none.toml"))
    for name in ("IMAGEGATE_URL", "IMAGEGATE_API_KEY", "IMAGEGATE_PROFILE"):
        monkeypatch.delenv(name, raising=False)
    conn = connection(None, None, None, None)
    assert (conn.url, conn.api_key, conn.dialect) == ("http://127.0.0.1:8000", None,
                                                      "imagegate")


def test_an_unknown_profile_is_a_usage_error(profiles: Path,
                                             capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(typer.Exit) as stopped:
        connection(None, None, "work", None)
    assert stopped.value.exit_code == USAGE
    err = capsys.readouterr().err
    assert err.startswith("error: no profile 'work' in ") and err.count("\n") == 1


def test_exit_codes() -> None:
    task = Task(id="img_1", status="failed", error={"code": "upstream_error", "message": "x"})
    assert exit_code(TaskFailedError(task)) == TASK_FAILED
    assert exit_code(InputError("x")) == USAGE
    assert exit_code(UnsupportedError("x")) == USAGE
    for status in (400, 401, 402, 403, 404, 409):
        assert exit_code(api_error(status, b"", {})) == USAGE
    for status in (429, 500, 502, 503):
        assert exit_code(api_error(status, b"", {})) == SERVER
    assert exit_code(APIConnectionError("http://x", "refused")) == SERVER
    assert exit_code(TaskTimeoutError(task, 5)) == SERVER
