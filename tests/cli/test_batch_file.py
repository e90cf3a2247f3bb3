"""The input of `imagegate batch` and its manifest: lines read and checked before anything is
sent, keys that tell a changed line from an unchanged one, and a manifest that survives a
torn last line."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from imagegate.cli.batch_file import read_batch
from imagegate.cli.manifest import Manifest
from imagegate.client import InputError


def test_txt_lines_and_defaults(tmp_path: Path) -> None:
    path = tmp_path / "p.txt"
    path.write_text("  a fox  \n\n# skipped\nan owl\n")
    lines = read_batch(path, {"size": "3:2", "model": None})
    assert [(x.number, x.prompt, x.fields) for x in lines] == [
        (1, "a fox", {"size": "3:2"}), (4, "an owl", {"size": "3:2"})]
    assert lines[0].key != lines[1].key
    assert read_batch(path, {"size": "1:1"})[0].key != lines[0].key  # another request


def test_jsonl_fields_images_and_keys(tmp_path: Path) -> None:
    (tmp_path / "ref.png").write_bytes(b"png")
    path = tmp_path / "p.jsonl"
    path.write_text(json.dumps({"prompt": "x", "format": "webp", "image": "ref.png",
                                "mask": "ref.png", "style": "vivid", "n": 2}) + "\n")
    (line,) = read_batch(path, {"size": "1:1", "n": 1})
    assert line.fields == {"size": "1:1", "n": 2, "output_format": "webp", "style": "vivid"}
    assert line.images == [str(tmp_path / "ref.png")] and line.mask == str(tmp_path / "ref.png")
    moved = tmp_path / "moved"
    moved.mkdir()
    (moved / "ref.png").write_bytes(b"png")
    (moved / "p.jsonl").write_text(path.read_text())
    assert read_batch(moved / "p.jsonl", {"size": "1:1", "n": 1})[0].key == line.key


@pytest.mark.parametrize(("name", "text", "message"), [
    ("p.jsonl", "{\"prompt\": \"x\"}\n[1]\n", r"p\.jsonl:2: each line must be a JSON object"),
    ("p.jsonl", "{\"prompt\": \n", r"p\.jsonl:1: not JSON"),
    ("p.jsonl", "{\"n\": 2}\n", "a `prompt` is needed"),
    ("p.jsonl", "{\"prompt\": \"x\", \"image\": \"nope.png\"}\n", "cannot read nope.png"),
    ("p.jsonl", "{\"prompt\": \"x\", \"mask\": \"https://h/m.png\"}\n", "needs an `image`"),
    ("p.txt", "\n# only comments\n", "has no prompts"),
    ("p.csv", "x\n", "a batch file is .txt"),
])
def test_bad_files_are_refused_whole(tmp_path: Path, name: str, text: str,
                                     message: str) -> None:
    path = tmp_path / name
    path.write_text(text)
    with pytest.raises(InputError, match=message):
        read_batch(path, {})


def test_the_manifest_keeps_each_lines_latest_attempt(tmp_path: Path) -> None:
    out = tmp_path / "out"
    manifest = Manifest.open(out, tmp_path / "p.txt")
    manifest.record(1, 1, key="k", idempotency_key=manifest.idempotency_key(1, 1),
                    status="submitting")
    manifest.record(1, 1, key="k", task_id="img_1", status="failed")
    manifest.record(1, 2, key="k", idempotency_key=manifest.idempotency_key(1, 2),
                    status="submitting")
    with (out / "manifest.jsonl").open("a") as handle:
        handle.write('{"line": 1, "attempt": 2, "task_id": "img_')  # torn by a kill
    again = Manifest.open(out, tmp_path / "p.txt")
    assert again.batch_id == manifest.batch_id
    assert again.state(1) == {"line": 1, "attempt": 2, "key": "k", "status": "submitting",
                              "idempotency_key": f"{manifest.batch_id}_l1_a2"}
    assert again.next_attempt(1) == 3 and again.state(2) == {}
    again.record(1, 2, key="k", task_id="img_2", status="submitted")
    assert Manifest.open(out, tmp_path / "p.txt").state(1)["task_id"] == "img_2"
