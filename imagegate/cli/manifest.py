"""`manifest.jsonl`, the memory of `imagegate batch` in its output directory: one JSON record
per line appended as each step happens, so a batch killed at any moment can be rerun and
skip what is done and resume what is in flight.

    {"batch": "b_…", "source": "prompts.txt"}                        the first record
    {"line": 3, "key": "…", "attempt": 1, "idempotency_key": "…", "status": "submitting"}
    {"line": 3, "key": "…", "attempt": 1, "task_id": "img_…", "status": "submitted"}
    {"line": 3, "key": "…", "attempt": 1, "task_id": "img_…", "status": "succeeded",
     "files": ["img_…_0.png"]}

`submitting` is written *before* the create with the `Idempotency-Key` it will use, so a
batch killed between the server's answer and the next record sends the same key again on
the rerun and gets the same task back (imagegate deduplicates by it) instead of a second,
paid one. Records are whole lines written at once and flushed to disk; a torn last line of
a killed run is ended and ignored.
"""

from __future__ import annotations

import json
import os
import secrets
from pathlib import Path
from typing import Any

from imagegate.client import InputError

NAME = "manifest.jsonl"


class Manifest:
    def __init__(self, path: Path, batch_id: str, lines: dict[int, dict[str, Any]],
                 attempts: dict[int, int]) -> None:
        self.path = path
        self.batch_id = batch_id
        self._lines = lines
        self._attempts = attempts

    @classmethod
    def open(cls, out: Path, source: Path) -> Manifest:
        path = out / NAME
        lines: dict[int, dict[str, Any]] = {}
        attempts: dict[int, int] = {}
        batch_id = None
        try:
            text = path.read_text(encoding="utf-8")
        except FileNotFoundError:
            text = ""
        except OSError as exc:
            raise InputError(f"cannot read {path}: {exc.strerror or exc}") from None
        for raw in text.splitlines():
            try:
                record = json.loads(raw)
            except json.JSONDecodeError:
                continue  # the torn last line of a run that was killed
            if not isinstance(record, dict):
                continue
            if "batch" in record and batch_id is None:
                batch_id = str(record["batch"])
            line, attempt = record.get("line"), record.get("attempt")
            if not isinstance(line, int) or not isinstance(attempt, int):
                continue
            if attempt > attempts.get(line, 0):
                attempts[line], lines[line] = attempt, {}
            if attempt == attempts[line]:
                lines[line].update(record)
        manifest = cls(path, batch_id or f"b_{secrets.token_hex(8)}", lines, attempts)
        if text and not text.endswith("\n"):
            manifest._write(b"\n")  # end the torn line, so the next record stands alone
        if batch_id is None:
            try:
                out.mkdir(parents=True, exist_ok=True)
            except OSError as exc:
                raise InputError(f"cannot create {out}: {exc.strerror or exc}") from None
            manifest._append({"batch": manifest.batch_id, "source": source.name})
        return manifest

    def state(self, line: int) -> dict[str, Any]:
        """What the manifest knows of the line's latest attempt (empty: nothing)."""
        return dict(self._lines.get(line, {}))

    def next_attempt(self, line: int) -> int:
        return self._attempts.get(line, 0) + 1

    def idempotency_key(self, line: int, attempt: int) -> str:
        return f"{self.batch_id}_l{line}_a{attempt}"

    def record(self, line: int, attempt: int, **fields: Any) -> None:
        if attempt > self._attempts.get(line, 0):
            self._attempts[line], self._lines[line] = attempt, {}
        record = {"line": line, "attempt": attempt, **fields}
        self._lines[line].update(record)
        self._append(record)

    def _append(self, record: dict[str, Any]) -> None:
        self._write((json.dumps(record, ensure_ascii=False) + "\n").encode())

    def _write(self, data: bytes) -> None:
        try:
            fd = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
            try:
                os.write(fd, data)  # one write: a record is a whole line or nothing
                os.fsync(fd)
            finally:
                os.close(fd)
        except OSError as exc:
            raise InputError(f"cannot write {self.path}: {exc.strerror or exc}") from None
