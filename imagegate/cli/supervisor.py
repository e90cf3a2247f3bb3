"""Keeping N child processes running: the parent of `imagegate serve --processes N`.

It knows nothing of HTTP: `spawn(slot)` starts the child of a slot (the server passes the
listening socket to it), and the supervisor

- restarts a child that exits while it is not stopping, after a backoff that doubles with
  each quick crash of that slot (logged, with the exit status);
- gives up, stopping every child and returning 1, when one slot's child keeps dying soon
  after it started (`max_start_failures` in a row, each within `start_window` seconds):
  a configuration or environment that cannot work must not spin forever;
- on SIGTERM or SIGINT sends SIGTERM to every child, waits for each to end (their graceful
  shutdown hands leases back), kills what is left after `stop_timeout`, and returns 0;
- forwards SIGHUP to every child (each reloads its moderation lists itself).

Children stay in the parent's process group, so a signal sent to the whole group (a
terminal's Ctrl-C, systemd's stop) reaches them directly too; SIGTERM is forwarded
either way because uvicorn treats a second SIGINT as "exit now, skip the graceful part".
"""

from __future__ import annotations

import logging
import signal
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass
from types import FrameType

log = logging.getLogger("imagegate.supervisor")

Spawn = Callable[[int], "subprocess.Popen[bytes]"]

# How often the supervisor looks at its children and its signal flags: the delay of a
# restart or of forwarding a signal, at most.
_TICK = 0.1


@dataclass
class _Slot:
    index: int
    proc: subprocess.Popen[bytes] | None = None
    started: float = 0.0
    quick_failures: int = 0
    restart_at: float | None = None


@dataclass(frozen=True)
class SupervisorConfig:
    processes: int
    start_window: float = 10.0  # a child that dies sooner than this "crashed at start"
    max_start_failures: int = 5
    backoff_base: float = 0.5
    backoff_max: float = 10.0
    stop_timeout: float = 30.0  # graceful shutdown of every child (uvicorn's own is 10 s)


class Supervisor:
    def __init__(self, spawn: Spawn, config: SupervisorConfig) -> None:
        self._spawn = spawn
        self._config = config
        self._slots = [_Slot(i) for i in range(config.processes)]
        self._stop_requested = False
        self._hangups = 0

    def run(self) -> int:
        """Run until asked to stop (0) or until a slot keeps crashing at start (1)."""
        previous = {sig: signal.signal(sig, self._on_signal)
                    for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP)}
        try:
            for slot in self._slots:
                self._start(slot)
            status = self._watch()
            self._stop_all()
            return status
        finally:
            for sig, handler in previous.items():
                signal.signal(sig, handler)

    # -- signals: the handlers only set flags; the loop acts on them
    def _on_signal(self, sig: int, frame: FrameType | None) -> None:
        if sig == signal.SIGHUP:
            self._hangups += 1
        else:
            self._stop_requested = True

    def _watch(self) -> int:
        while not self._stop_requested:
            if self._hangups:
                self._hangups = 0
                self._send_all(signal.SIGHUP)
            now = time.monotonic()
            for slot in self._slots:
                if slot.restart_at is not None:
                    if now >= slot.restart_at:
                        self._start(slot)
                    continue
                assert slot.proc is not None
                code = slot.proc.poll()
                if code is None:
                    continue
                if self._stop_requested:  # the signal landed while looking: not a crash
                    break
                if not self._crashed(slot, code, now):
                    return 1
            time.sleep(_TICK)
        return 0

    def _crashed(self, slot: _Slot, code: int, now: float) -> bool:
        """Schedule the restart of a slot whose child exited; False to give up."""
        lived = now - slot.started
        slot.quick_failures = slot.quick_failures + 1 if lived < self._config.start_window else 1
        pid = slot.proc.pid if slot.proc is not None else 0
        slot.proc = None
        if (lived < self._config.start_window
                and slot.quick_failures >= self._config.max_start_failures):
            log.error("server process %d (pid %d) exited with %s within %g s of its start, "
                      "%d times in a row; stopping", slot.index + 1, pid, _describe(code),
                      self._config.start_window, slot.quick_failures)
            return False
        delay = min(self._config.backoff_max,
                    self._config.backoff_base * 2 ** (slot.quick_failures - 1))
        log.warning("server process %d (pid %d) exited with %s; restarting it in %.1f s",
                    slot.index + 1, pid, _describe(code), delay)
        slot.restart_at = now + delay
        return True

    def _start(self, slot: _Slot) -> None:
        slot.restart_at = None
        slot.started = time.monotonic()
        slot.proc = self._spawn(slot.index)
        log.info("server process %d started (pid %d)", slot.index + 1, slot.proc.pid)

    def _send_all(self, sig: int) -> None:
        for slot in self._slots:
            if slot.proc is not None and slot.proc.poll() is None:
                try:
                    slot.proc.send_signal(sig)
                except ProcessLookupError:  # it ended between the poll and the signal
                    pass

    def _stop_all(self) -> None:
        for slot in self._slots:
            slot.restart_at = None
        self._send_all(signal.SIGTERM)
        deadline = time.monotonic() + self._config.stop_timeout
        for slot in self._slots:
            if slot.proc is None:
                continue
            try:
                slot.proc.wait(timeout=max(0.0, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                log.error("server process %d (pid %d) did not stop within %g s; killing it",
                          slot.index + 1, slot.proc.pid, self._config.stop_timeout)
                slot.proc.kill()
                slot.proc.wait()


def _describe(code: int) -> str:
    if code < 0:
        try:
            return f"signal {signal.Signals(-code).name}"
        except ValueError:
            return f"signal {-code}"
    return f"status {code}"
