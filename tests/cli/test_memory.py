"""`cli/memory.py`: the malloc setting the server and worker processes start with."""

from __future__ import annotations

import platform
import subprocess
import sys

import pytest


@pytest.mark.skipif(platform.system() != "Linux" or platform.libc_ver()[0] != "glibc",
                    reason="mallopt is glibc's")
def test_glibc_takes_the_fixed_threshold() -> None:
    # In a child: the setting lasts for the process, and this one runs every other test.
    code = "from imagegate.cli.memory import return_large_frees as r; print(r())"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True, timeout=60)
    assert out.stdout.strip() == "True"

