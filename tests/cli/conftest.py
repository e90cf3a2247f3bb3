"""CLI fixtures: `run`, the `imagegate` command in process on a fresh data directory (SQLite,
no server running); see tests/support/cli.py."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.support.cli import Cli


@pytest.fixture
def run(tmp_path: Path) -> Cli:
    return Cli(tmp_path)
