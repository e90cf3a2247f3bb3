"""The input of `imagegate batch`: a `.txt` file, one prompt per line (blank lines and lines
starting with `#` skipped), or a `.jsonl` file, one JSON object per line with `prompt` and
any other fields (`model`, `size`, `resolution`, `n`, `output_format` or `format`,
`quality`, `background`, any field the service takes; `image` / `images` and `mask` as
paths, relative to the file, or URLs). Every line is read and checked before anything is
sent, so a typo on line 90 costs nothing."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from imagegate.client import InputError
from imagegate.client.inputs import URL_PREFIXES

SUFFIXES = (".txt", ".jsonl")


@dataclass(frozen=True)
class BatchLine:
    number: int  # the line in the file, from 1
    prompt: str
    fields: dict[str, Any]  # everything but the prompt and the images
    images: list[str]  # paths (resolved) or URLs; non-empty makes it an edit
    mask: str | None
    key: str  # identifies the request: a rerun with an edited line is a new request

    @property
    def label(self) -> str:
        return f"line {self.number}"


def read_batch(path: Path, defaults: Mapping[str, Any]) -> list[BatchLine]:
    suffix = path.suffix.lower()
    if suffix not in SUFFIXES:
        raise InputError(f"{path}: a batch file is .txt (one prompt per line) or .jsonl "
                         "(one JSON object per line)")
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise InputError(f"cannot read {path}: {getattr(exc, 'strerror', None) or exc}"
                         ) from None
    base = {k: v for k, v in defaults.items() if v is not None}
    lines = []
    for number, raw in enumerate(text.splitlines(), 1):
        stripped = raw.strip()
        if not stripped or (suffix == ".txt" and stripped.startswith("#")):
            continue
        where = f"{path}:{number}"
        fields = {"prompt": stripped} if suffix == ".txt" else _object(stripped, where)
        lines.append(_line(number, {**base, **fields}, path.parent, where))
    if not lines:
        raise InputError(f"{path} has no prompts")
    return lines


def _object(text: str, where: str) -> dict[str, Any]:
    try:
        value = json.loads(text)
    except json.JSONDecodeError as exc:
        raise InputError(f"{where}: not JSON ({exc.msg})") from None
    if not isinstance(value, dict):
        raise InputError(f"{where}: each line must be a JSON object")
    return value


def _line(number: int, fields: dict[str, Any], folder: Path, where: str) -> BatchLine:
    fields = dict(fields)
    prompt = fields.pop("prompt", None)
    if not isinstance(prompt, str) or not prompt.strip():
        raise InputError(f"{where}: a `prompt` is needed")
    if "format" in fields:
        fields["output_format"] = fields.pop("format")
    written: list[Any] = []
    for name in ("image", "images"):
        value = fields.pop(name, None)
        written += value if isinstance(value, list) else [value] if value else []
    images = [_reference(value, folder, where) for value in written]
    mask_value = fields.pop("mask", None)
    mask = _reference(mask_value, folder, where) if mask_value else None
    if mask and not images:
        raise InputError(f"{where}: a `mask` needs an `image`")
    # The key hashes the line as written (paths relative to the file), so a batch folder
    # that moves keeps its manifest's keys.
    canonical = json.dumps({"prompt": prompt, "fields": fields, "images": written,
                            "mask": mask_value}, sort_keys=True, ensure_ascii=False)
    key = hashlib.sha256(canonical.encode()).hexdigest()[:16]
    return BatchLine(number, prompt, fields, images, mask, key)


def _reference(value: Any, folder: Path, where: str) -> str:
    if not isinstance(value, str) or not value:
        raise InputError(f"{where}: an image is a path or a URL")
    if value.startswith(URL_PREFIXES):
        return value
    path = (folder / value).resolve()
    if not path.is_file():
        raise InputError(f"{where}: cannot read {value}: no such file")
    return str(path)
