"""What `imagegate serve --processes N` accepts, says and starts its children with (the
processes themselves run in tests/e2e/test_serve_processes.py and
tests/cli/test_supervisor.py)."""

from __future__ import annotations

import asyncio
import logging
import os
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from imagegate.cli import cli
from imagegate.cli.processes import child_command, notes, refusal, watch_parent
from imagegate.config import Settings
from tests.support.cli import Cli

PG = "postgresql://imagegate@127.0.0.1:5432/imagegate"


def test_one_process_is_the_default_and_always_allowed(tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path)
    assert settings.processes == 1
    assert refusal(settings) is None and notes(settings) == []


def test_sqlite_refuses_more_than_one_process(tmp_path: Path) -> None:
    message = refusal(Settings(data_dir=tmp_path, processes=2)) or ""
    assert message.startswith("--processes 2 needs PostgreSQL: SQLite has one writer")
    assert refusal(Settings(data_dir=tmp_path, processes=2, database_url=PG)) is None


def test_a_memory_blob_store_refuses_more_than_one_process(tmp_path: Path) -> None:
    message = refusal(Settings(data_dir=tmp_path, processes=3, database_url=PG,
                               blob_store="memory")) or ""
    assert "--processes 3 needs a blob store every process reads" in message


def test_without_redis_the_operator_is_told_what_stays_per_process(tmp_path: Path) -> None:
    (note,) = notes(Settings(data_dir=tmp_path, processes=2, database_url=PG))
    assert "without redis_url" in note and "rate limits" in note and "polling" in note
    assert notes(Settings(data_dir=tmp_path, processes=2, database_url=PG,
                          redis_url="redis://127.0.0.1:6379/0")) == []


def test_serve_refuses_before_creating_anything(run: Cli, tmp_path: Path) -> None:
    handlers = logging.getLogger().handlers[:]
    result = run("serve", "--processes", "2", code=2)
    assert "configuration error: --processes 2 needs PostgreSQL" in result.output
    assert not (tmp_path / "imagegate.db").exists()
    # Nor is logging set up (onto this runner's stream, closed once it returns).
    assert logging.getLogger().handlers == handlers


def test_the_setting_comes_from_the_environment_too(tmp_path: Path) -> None:
    result = CliRunner().invoke(cli, ["serve", "--data-dir", str(tmp_path)],
                                env={"IMAGEGATE_PROCESSES": "2"})
    assert result.exit_code == 2, result.output
    assert "--processes 2 needs PostgreSQL" in result.output


def test_a_process_count_below_one_is_a_configuration_error(run: Cli) -> None:
    assert "configuration error" in run("serve", "--processes", "0", code=2).output


def test_a_child_is_the_same_interpreter_with_the_parents_flags_and_the_socket() -> None:
    args = child_command(7, config=Path("ig.toml"), host=None, port=8001, data_dir=None)
    assert args == [sys.executable, "-m", "imagegate", "serve", "--child-fd", "7",
                    "--parent-pid", str(os.getpid()), "--config", "ig.toml", "--port", "8001"]


def test_a_child_stops_when_its_parent_is_gone() -> None:
    gone: list[bool] = []

    async def watch(parent: int) -> None:
        async with asyncio.timeout(10):
            await watch_parent(parent, lambda: gone.append(True), interval=0.01)

    # Any pid but our parent's reads as "we were reparented": the parent is gone.
    asyncio.run(watch(os.getppid() + 1 if os.getppid() != 1 else 2))
    assert gone == [True]


def test_a_child_keeps_serving_while_its_parent_lives() -> None:
    gone: list[bool] = []

    async def watch() -> None:
        task = asyncio.create_task(watch_parent(os.getppid(), lambda: gone.append(True),
                                                interval=0.01))
        await asyncio.sleep(0.1)  # several looks at the parent
        assert not task.done()
        task.cancel()

    asyncio.run(watch())
    assert gone == []


@pytest.mark.parametrize("flag", ["--child-fd", "--parent-pid"])
def test_the_child_options_are_not_shown(flag: str) -> None:
    out = CliRunner().invoke(cli, ["serve", "--help"], env={"COLUMNS": "200"})
    assert out.exit_code == 0 and "--processes" in out.stdout and flag not in out.stdout
