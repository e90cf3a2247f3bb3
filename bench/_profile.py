"""Optional server profiles with py-spy (`--profile-dir`): a speedscope file per profiled run
(open it at https://www.speedscope.app) and a plain-text summary of the hottest frames.

py-spy is not a project dependency; install it anywhere (e.g. `pipx install py-spy`, or a
throwaway venv) and pass `--py-spy PATH` or put it on PATH. Profiling needs ptrace rights
over the server (root, or kernel.yama.ptrace_scope=0)."""

from __future__ import annotations

import json
import subprocess
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

# Frames every sample of the server carries (the CLI, uvicorn's and asyncio's runners): they
# say nothing about where time goes, so the inclusive list leaves them out.
_BORING = ("typer/", "click/", "imagegate/cli/", "uvicorn/main.py", "uvicorn/server.py",
           "uvicorn/_compat.py", "asyncio/runners.py", "asyncio/base_events.py",
           "threading.py", "<module>")


class Recording:
    """`py-spy record` of one process for `seconds`, started in the background."""

    def __init__(self, py_spy: str, pid: int, seconds: float, out: Path, *, gil: bool = False,
                 rate: int = 100) -> None:
        self.out = out
        argv = [py_spy, "record", "--pid", str(pid), "--duration", str(max(1, round(seconds))),
                "--rate", str(rate), "--nonblocking", "--format", "speedscope",
                "--output", str(out)]
        if gil:  # only the thread holding the GIL: where the Python-level CPU goes
            argv.append("--gil")
        self._proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                                      text=True)

    def finish(self, timeout: float = 60.0) -> str | None:
        """Wait for py-spy; returns an error message, or None when the file was written."""
        try:
            _, err = self._proc.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            self._proc.kill()
            _, err = self._proc.communicate()
            return "py-spy did not finish in time"
        if self._proc.returncode != 0 or not self.out.exists():
            return f"py-spy failed ({self._proc.returncode}): {err.strip()[-500:]}"
        return None


@dataclass
class Hotspots:
    samples: int
    self_pct: list[tuple[str, float]]
    inclusive_pct: list[tuple[str, float]]


def _frame_name(frame: dict[str, object]) -> str:
    file = str(frame.get("file") or "")
    if "site-packages/" in file:
        file = file.split("site-packages/", 1)[1]
    elif "/imagegate/" in file:
        file = "imagegate/" + file.rsplit("/imagegate/", 1)[1]
    elif "/lib/python3" in file:  # the standard library: asyncio/..., threading.py
        file = file.split("/lib/python3", 1)[1].partition("/")[2]
    line = frame.get("line")
    return f"{frame.get('name')} ({file}:{line})" if line else f"{frame.get('name')} ({file})"


def summarize(path: Path, top: int = 15) -> Hotspots:
    """Self and inclusive shares of all sampled (non-idle) thread stacks in a speedscope file."""
    data = json.loads(path.read_text())
    names = [_frame_name(f) for f in data["shared"]["frames"]]
    self_count: Counter[str] = Counter()
    incl_count: Counter[str] = Counter()
    total = 0.0
    samples = 0
    for profile in data["profiles"]:  # one per thread
        for stack, weight in zip(profile["samples"], profile["weights"], strict=True):
            if not stack:
                continue
            samples += 1
            total += weight
            self_count[names[stack[-1]]] += weight
            for name in {names[i] for i in stack}:
                incl_count[name] += weight
    if total == 0:
        return Hotspots(0, [], [])
    inclusive = [(n, c) for n, c in incl_count.most_common()
                 if not any(b in n for b in _BORING)]
    return Hotspots(
        samples=samples,
        self_pct=[(n, 100 * c / total) for n, c in self_count.most_common(top)],
        inclusive_pct=[(n, 100 * c / total) for n, c in inclusive[:top]],
    )


def render(title: str, path: Path, spots: Hotspots, *, gil: bool = False) -> str:
    which = "the thread holding the GIL" if gil else "all non-idle threads"
    lines = [f"### profile: {title}", f"{spots.samples} samples ({which}), file: {path}",
             "(self time in `Runner.run` is uvloop's C code: socket I/O and callbacks"
             + ("" if gil else "; in `concurrent/futures/thread.py` `_worker` it is the "
                "SQLite writer thread woken up and waiting for the GIL") + ")", "",
             "self time (where the CPU was when sampled):"]
    lines += [f"  {pct:5.1f}%  {name}" for name, pct in spots.self_pct]
    lines += ["", "inclusive (time under this frame; runner frames left out):"]
    lines += [f"  {pct:5.1f}%  {name}" for name, pct in spots.inclusive_pct]
    return "\n".join(lines)
