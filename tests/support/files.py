"""File-mode helpers: what a test sees on disk, and a process umask that hides nothing."""

from __future__ import annotations

import os
import stat
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


@contextmanager
def umask(value: int) -> Iterator[None]:
    """Run with this umask (0 lets every default mode through unmasked), then restore it."""
    before = os.umask(value)
    try:
        yield
    finally:
        os.umask(before)
