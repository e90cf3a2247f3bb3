"""CLI fixtures: `run`, the `imagegate` command in process on a fresh data directory (SQLite,
no server running); see cli_support.py."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

# The test modules import `cli_support` by bare name; under --import-mode=importlib no test
# directory is on sys.path.
sys.path.insert(0, str(Path(__file__).parent))

from cli_support import Cli


@pytest.fixture
def run(tmp_path: Path) -> Cli:
    return Cli(tmp_path)
