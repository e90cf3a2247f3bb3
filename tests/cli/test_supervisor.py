"""The supervisor of `imagegate serve --processes N`, with real processes: a small driver
runs `Supervisor` in a process of its own (it owns that process's signals) over tiny
Python children that write down what happens to them. Every wait is bounded."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import psutil
import pytest

DRIVER = """
import json, logging, subprocess, sys
from imagegate.cli.supervisor import Supervisor, SupervisorConfig
logging.basicConfig(level=logging.INFO, format="%(levelname)s %(message)s")
config, child, where = json.loads(sys.argv[1]), sys.argv[2], sys.argv[3]
spawn = lambda slot: subprocess.Popen([sys.executable, "-c", child, where, str(slot)])
sys.exit(Supervisor(spawn, SupervisorConfig(**config)).run())
"""

# Notes its pid; SIGHUP is written down, SIGTERM ends it (the default).
SLEEPER = """
import os, signal, sys, time
where = sys.argv[1]
def hup(sig, frame):
    open(os.path.join(where, f"{os.getpid()}.hup"), "a").write("x")
signal.signal(signal.SIGHUP, hup)
open(os.path.join(where, f"{os.getpid()}.pid"), "w").close()
while True:
    time.sleep(0.05)
"""
CRASHER = """
import os, sys
open(os.path.join(sys.argv[1], f"{os.getpid()}.pid"), "w").close()
sys.exit(7)
"""
STUBBORN = """
import os, signal, sys, time
signal.signal(signal.SIGTERM, signal.SIG_IGN)
open(os.path.join(sys.argv[1], f"{os.getpid()}.pid"), "w").close()
while True:
    time.sleep(0.05)
"""
LIVES_A_WHILE = """
import os, sys, time
open(os.path.join(sys.argv[1], f"{os.getpid()}.pid"), "w").close()
time.sleep(0.6)
sys.exit(1)
"""

BOUND = 30.0


class Driven:
    def __init__(self, tmp_path: Path, child: str, **config: Any) -> None:
        self.where = tmp_path / "children"
        self.where.mkdir()
        self.log = tmp_path / "supervisor.log"
        with self.log.open("w") as out:
            self.proc = subprocess.Popen(
                [sys.executable, "-c", DRIVER, json.dumps(config), child, str(self.where)],
                stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)

    def started(self) -> set[int]:
        """Every child that ever started (each wrote `<pid>.pid`)."""
        return {int(p.stem) for p in self.where.glob("*.pid")}

    def children(self) -> set[int]:
        try:
            return {c.pid for c in psutil.Process(self.proc.pid).children()
                    if c.status() != psutil.STATUS_ZOMBIE}
        except psutil.NoSuchProcess:
            return set()

    def output(self) -> str:
        return self.log.read_text()

    def wait(self) -> int:
        try:
            return self.proc.wait(timeout=BOUND)
        except subprocess.TimeoutExpired:
            pytest.fail(f"the supervisor did not exit within {BOUND:.0f} s:\n{self.output()}")

    def signal(self, sig: int) -> None:
        os.kill(self.proc.pid, sig)

    def stop_everything(self) -> None:
        """Teardown: by pid, the driver and any child it left behind."""
        leftovers = self.children()
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(timeout=BOUND)
        for pid in leftovers | self.started():
            try:
                proc = psutil.Process(pid)
                if proc.ppid() in (self.proc.pid, 1):  # ours (or orphaned), not a reused pid
                    proc.kill()
            except psutil.NoSuchProcess:
                pass


@pytest.fixture
def drive(tmp_path: Path) -> Iterator[Callable[..., Driven]]:
    made: list[Driven] = []

    def start(child: str, **config: Any) -> Driven:
        made.append(Driven(tmp_path, child, **config))
        return made[-1]

    yield start
    for driven in made:
        driven.stop_everything()


def until(what: str, check: Callable[[], bool], driven: Driven) -> None:
    deadline = time.monotonic() + BOUND
    while not check():
        if time.monotonic() > deadline:
            pytest.fail(f"still waiting after {BOUND:.0f} s: {what}\n{driven.output()}")
        time.sleep(0.05)


def test_a_killed_child_is_restarted_and_sigterm_stops_all_with_status_0(
        drive: Callable[..., Driven]) -> None:
    sup = drive(SLEEPER, processes=2, backoff_base=0.05)
    until("two children", lambda: len(sup.children()) == 2 and len(sup.started()) == 2, sup)
    first = sup.children()
    victim = min(first)
    os.kill(victim, signal.SIGKILL)
    until("a replacement", lambda: len(sup.children() - first) == 1
          and len(sup.children()) == 2, sup)
    assert victim not in sup.children()
    running = sup.children()
    sup.signal(signal.SIGTERM)
    assert sup.wait() == 0
    assert not any(psutil.pid_exists(pid) and psutil.Process(pid).status()
                   != psutil.STATUS_ZOMBIE for pid in running)
    out = sup.output()
    assert f"(pid {victim}) exited with signal SIGKILL; restarting it" in out


def test_sigint_stops_like_sigterm(drive: Callable[..., Driven]) -> None:
    sup = drive(SLEEPER, processes=1)
    until("a child", lambda: len(sup.children()) == 1, sup)
    sup.signal(signal.SIGINT)
    assert sup.wait() == 0


def test_children_that_keep_dying_at_start_stop_the_supervisor_with_status_1(
        drive: Callable[..., Driven]) -> None:
    sup = drive(CRASHER, processes=2, max_start_failures=3, backoff_base=0.01)
    assert sup.wait() == 1
    # Each start was a real process; the slot that gave up was started 3 times.
    assert len(sup.started()) >= 3
    assert "exited with status 7 within 10 s of its start, 3 times in a row; stopping" \
        in sup.output()


def test_a_child_that_ran_for_a_while_is_restarted_however_often_it_dies(
        drive: Callable[..., Driven]) -> None:
    # Each run outlives the start window, so no crash counts as a failure to start.
    sup = drive(LIVES_A_WHILE, processes=1, start_window=0.3, max_start_failures=2,
                backoff_base=0.01)
    until("four runs of the one slot", lambda: len(sup.started()) >= 4, sup)
    assert sup.proc.poll() is None, sup.output()
    sup.signal(signal.SIGTERM)
    assert sup.wait() == 0


def test_sighup_is_passed_to_every_child_which_keeps_running(
        drive: Callable[..., Driven]) -> None:
    sup = drive(SLEEPER, processes=2)
    until("two children", lambda: len(sup.children()) == 2 and len(sup.started()) == 2, sup)
    children = sup.children()
    sup.signal(signal.SIGHUP)
    until("each child heard SIGHUP",
          lambda: all((sup.where / f"{pid}.hup").exists() for pid in children), sup)
    assert sup.children() == children
    assert sup.proc.poll() is None
    sup.signal(signal.SIGTERM)
    assert sup.wait() == 0


def test_a_child_that_ignores_sigterm_is_killed_after_the_stop_timeout(
        drive: Callable[..., Driven]) -> None:
    sup = drive(STUBBORN, processes=1, stop_timeout=0.5)
    until("a child", lambda: len(sup.children()) == 1 and len(sup.started()) == 1, sup)
    (child,) = sup.children()
    sup.signal(signal.SIGTERM)
    assert sup.wait() == 0
    assert not psutil.pid_exists(child) or psutil.Process(child).status() == \
        psutil.STATUS_ZOMBIE
    assert f"(pid {child}) did not stop within 0.5 s; killing it" in sup.output()
