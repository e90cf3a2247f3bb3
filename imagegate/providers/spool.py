"""Where an upstream answer waits when it does not fit the memory budget: a nameless file.

`ResultBudget` (`providers/holding.py`) bounds the answers a process holds in memory. Before
this, an answer that did not fit waited unread in its socket. A burst of 2,000 sync requests
whose 2 MiB answers come back together then left ~1,900 answers in socket buffers — imagegate's
receive queues and the upstream's send queues, ~1.5 GB on one host — which put the kernel's
TCP memory under pressure: it dropped segments (~30,000 per burst), connections sat in
retransmission backoff for up to two minutes, and the burst took 260 s where the work takes 30.

So an answer that does not fit is read at once into a spool file and waits there, in the
page cache (neither RSS nor socket memory), for its turn; then it is read back in one piece.
The files are opened `O_TMPFILE` where the system has it (`tempfile.TemporaryFile`): they have
no name, and a crash leaves nothing behind. What spool files hold at once is bounded too
(`max_spooled_result_bytes`); past that bound an answer waits in its socket as before.
"""

from __future__ import annotations

import asyncio
import logging
import os
import tempfile
from pathlib import Path
from typing import IO

from imagegate.providers.holding import Holding, ResultBudget

log = logging.getLogger(__name__)


class AnswerSpool:
    """The spool files of one process: their directory and the bound on what they hold."""

    def __init__(self, limit_bytes: int, directory: Path | None = None) -> None:
        self.room = ResultBudget(limit_bytes)
        self.directory = directory
        # Said once per failure streak: a burst would otherwise log it for every answer.
        self._failing = False

    def open(self) -> SpoolFile | None:
        """A new, empty spool file; None when none can be made (the answer then waits in
        its socket, as it would without a spool)."""
        try:
            # Unbuffered: chunks go straight to the page cache, none copied into a buffer.
            file = tempfile.TemporaryFile(dir=self.directory, buffering=0)
        except OSError as exc:
            if not self._failing:
                log.warning("cannot open a spool file in %s (%s); answers wait in their "
                            "sockets until one can be opened",
                            self.directory or tempfile.gettempdir(), exc)
            self._failing = True
            return None
        if self._failing:
            log.warning("spool files can be opened again in %s",
                        self.directory or tempfile.gettempdir())
            self._failing = False
        return SpoolFile(self, file)


class SpoolFile:
    """One answer's bytes on their way through a spool file. Each chunk is written on the
    event loop (a copy into the page cache, tens of microseconds: cheaper than a thread hop
    per chunk); the whole is read back in a thread (`take_out`)."""

    __slots__ = ("_fd", "_file", "_spool", "size")

    def __init__(self, spool: AnswerSpool, file: IO[bytes]) -> None:
        self._spool, self._file = spool, file
        self._fd = file.fileno()  # kept: every chunk's write uses it
        self.size = 0

    async def write(self, chunk: bytes | bytearray | memoryview) -> None:
        """Append `chunk`, first waiting for room in the spool's bound."""
        await self._spool.room.take(len(chunk), self.size)
        self._append(chunk)

    def write_now(self, chunk: bytes | bytearray | memoryview) -> bool:
        """Append `chunk` if the spool's bound has room for it now; False (nothing written)
        if not."""
        if not self._spool.room.try_take(len(chunk), self.size):
            return False
        self._append(chunk)
        return True

    def _append(self, chunk: bytes | bytearray | memoryview) -> None:
        """Write `chunk` (its room taken) after what the file holds. At that offset, not the
        descriptor's: a write that fails halfway (a full disk) leaves nothing in the way of
        the next one."""
        try:
            view = memoryview(chunk)
            offset = self.size
            while view:
                written = os.pwrite(self._fd, view, offset)
                view, offset = view[written:], offset + written
        except BaseException:
            self._spool.room.give(len(chunk))
            raise
        self.size += len(chunk)

    def _read_and_close(self, size: int) -> bytes:
        """The file's `size` bytes as one bytes object (one copy, from the page cache), and
        the file closed (which frees those pages)."""
        try:
            parts: list[bytes] = []
            offset = 0
            while offset < size:
                part = os.pread(self._fd, size - offset, offset)
                if not part:
                    raise OSError(f"spool file ended at {offset} of {size} bytes")
                parts.append(part)
                offset += len(part)
            return parts[0] if len(parts) == 1 else b"".join(parts)
        finally:
            self._file.close()

    async def take_out(self) -> bytes:
        """Everything written, read back and the file closed, in a thread: reading 2.8 MB
        and freeing its page-cache pages took ~5 ms, too long a stall for the event loop
        (the writes stay on the loop: one chunk each, tens of microseconds)."""
        size = self.size
        try:
            return await asyncio.to_thread(self._read_and_close, size)
        finally:
            self._give_back()

    def close(self) -> None:
        """Give the file's bytes back to the bound; the file goes with its last descriptor."""
        self._give_back()
        self._file.close()

    def _give_back(self) -> None:
        size, self.size = self.size, 0
        self._spool.room.give(size)


class AnswerBody:
    """An answer's body as it is read: in memory while the run's holding has room for it,
    else (from the first chunk that does not fit on) in a spool file, where it waits off the
    socket until the holding can take it. Without a holding (API-side calls) it is all kept
    in memory; without a spool, a chunk that does not fit waits for room unread."""

    __slots__ = ("_chunks", "_held", "_spooled", "_taken", "size")

    def __init__(self, held: Holding | None) -> None:
        self._held = held
        self._chunks: list[bytes] = []
        self._spooled: SpoolFile | None = None
        self._taken = 0
        self.size = 0

    async def expect(self, size: int) -> None:
        """Take the `size` bytes an answer says it has (Content-Length) before reading it."""
        await self._take_or_spool(size)

    def add_now(self, chunk: bytes) -> bool:
        """`add` without waiting: the chunk kept (the holding has room) or written to the spool
        file; False, with nothing changed, when it could only wait (no room, no spool file, a
        full spool or disk), which `add` then does."""
        if self._spooled is None and not self._take_or_spool_now(
                self.size + len(chunk) - self._taken):
            return False
        if self._spooled is not None:
            try:
                if not self._spooled.write_now(chunk):
                    return False
            except OSError:
                return False  # `add` says why, and goes on in memory
        else:
            self._chunks.append(chunk)
        self.size += len(chunk)
        return True

    async def add(self, chunk: bytes) -> None:
        self.size += len(chunk)
        if self._spooled is None and self.size > self._taken:
            await self._take_or_spool(self.size - self._taken)
        if self._spooled is not None:
            try:
                await self._spooled.write(chunk)
                return
            except OSError as exc:  # a full disk: go on in memory, as if there were no spool
                log.warning("cannot write a spool file (%s); the answer is read into memory", exc)
                await self._unspool()
                await self._take_all()
        self._chunks.append(chunk)

    def _take_or_spool_now(self, more: int) -> bool:
        """Take `more` bytes from the holding if they fit, else open a spool file for the
        rest of the answer; False when neither can be done now (no spool file)."""
        held = self._held
        if held is None or more <= 0:
            return True
        if held.try_take(more):
            self._taken += more
            return True
        spool = held.budget.spool
        self._spooled = spool.open() if spool is not None else None
        return self._spooled is not None

    async def _take_or_spool(self, more: int) -> None:
        if not self._take_or_spool_now(more) and self._held is not None:
            # No spool: wait for room with the answer in its socket.
            await self._held.take(more)
            self._taken += more

    async def finish(self) -> bytes:
        """The whole body, once the holding has room for all of it."""
        if self._spooled is not None:
            await self._take_all()
            await self._unspool()
        # Handed over whole and let go of here: the pieces, kept until the body itself went,
        # held a second copy of the answer while it was parsed and decoded.
        chunks, self._chunks = self._chunks, []
        return chunks[0] if len(chunks) == 1 else b"".join(chunks)

    async def _take_all(self) -> None:
        if self._held is not None and self.size > self._taken:
            await self._held.take(self.size - self._taken)
            self._taken = self.size

    async def _unspool(self) -> None:
        """Move what the spool file holds into memory, and let the file go."""
        spooled, self._spooled = self._spooled, None
        if spooled is not None:
            self._chunks.append(await spooled.take_out())

    def close(self) -> None:
        """Let go of the spool file, if any (the holding keeps what it took until the run
        ends)."""
        spooled, self._spooled = self._spooled, None
        if spooled is not None:
            spooled.close()
