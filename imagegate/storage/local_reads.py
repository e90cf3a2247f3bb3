"""Streaming a local file's bytes to the event loop without a thread hop per piece.

obstore streams a local file by handing every piece to a thread of its runtime and back:
measured on a 2.2 MB image in 96 KiB pieces, 2.85 ms of CPU and ~1,150 context switches per
file, against 0.09 ms for the same `pread`s made directly — a third of what answering a 2 MiB
image as `b64_json` cost. A just-written result sits in the page cache, where a read is a
memory copy; so each piece is first read with `RWF_NOWAIT` (the kernel answers only from
the page cache, never waiting on the disk) on the event loop, and only a piece the kernel
would have to fetch from the disk is read in a thread. Where `RWF_NOWAIT` does not exist
(not Linux) or the file system refuses it, every piece is read in a thread.
"""

from __future__ import annotations

import asyncio
import errno
import os
from collections.abc import AsyncIterator
from pathlib import Path

_NOWAIT: int | None = getattr(os, "RWF_NOWAIT", None) if hasattr(os, "preadv") else None
# What a file system that cannot honour RWF_NOWAIT answers: read in a thread from then on.
_UNSUPPORTED = frozenset({errno.EOPNOTSUPP, errno.EINVAL, errno.ENOSYS})


def open_range(path: Path, start: int, end: int | None, chunk: int) -> AsyncIterator[bytes]:
    """Bytes `start` to `end` (exclusive; None: to the end) of the file at `path`, in pieces
    of at most `chunk` bytes. The file is opened here, so a missing one raises
    FileNotFoundError before any byte; it is closed when the iterator ends or is closed."""
    fd = os.open(path, os.O_RDONLY | getattr(os, "O_CLOEXEC", 0))
    try:
        size = os.fstat(fd).st_size  # blobs are written whole and renamed into place
    except BaseException:
        os.close(fd)
        raise
    return _pieces(fd, start, size if end is None else min(end, size), chunk)


async def _pieces(fd: int, pos: int, stop: int, chunk: int) -> AsyncIterator[bytes]:
    nowait = _NOWAIT
    try:
        while pos < stop:
            size = min(chunk, stop - pos)
            data: bytes | None = None
            if nowait is not None:
                try:
                    data = _cached(fd, size, pos, nowait)
                except OSError as exc:
                    if exc.errno not in _UNSUPPORTED:
                        raise
                    nowait = None
            if data is None:
                data = await asyncio.to_thread(os.pread, fd, size, pos)
            if not data:
                return  # the end of the file
            pos += len(data)
            yield data
    finally:
        os.close(fd)


def _cached(fd: int, size: int, pos: int, flags: int) -> bytes | None:
    """What the page cache holds of the piece (maybe less than asked), b"" at the end of the
    file, None when none of it is cached (the caller reads it in a thread)."""
    buf = bytearray(size)
    try:
        got = os.preadv(fd, [buf], pos, flags)
    except BlockingIOError:
        return None
    return bytes(memoryview(buf)[:got]) if got < size else bytes(buf)
