"""`imagegate generate` against a running server: submit, poll, save the files."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.support.e2e import Server, decode_image

pytestmark = pytest.mark.e2e

IMAGEGATE = str(Path(sys.executable).parent / "imagegate")


def _generate(server: Server, out: Path, *args: str, key: str | None = None
              ) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "IMAGEGATE_URL": server.base_url,
           "IMAGEGATE_API_KEY": key if key is not None else server.key}
    return subprocess.run([IMAGEGATE, "generate", *args, "--out", str(out)], env=env,
                          capture_output=True, text=True, timeout=60, check=False)


def test_generate_saves_the_images(basic_server: Server, tmp_path: Path) -> None:
    done = _generate(basic_server, tmp_path, "a red bicycle", "--size", "3:2", "-n", "2",
                     "--resolution", "2k", "--format", "webp")
    assert done.returncode == 0, done.stderr
    paths = [Path(line) for line in done.stdout.split()]
    assert len(paths) == 2 and all(p.suffix == ".webp" for p in paths)
    image = decode_image(paths[0].read_bytes())
    assert (image.width, image.height) == (2048, 1360)


def test_generate_reports_errors(basic_server: Server, tmp_path: Path) -> None:
    bad = _generate(basic_server, tmp_path, "x", "--size", "1000x1000")
    assert bad.returncode == 1 and "multiples of 16" in bad.stderr
    unauth = _generate(basic_server, tmp_path, "x", key="ig_wrong")
    assert unauth.returncode == 1 and "401" in unauth.stderr
    assert not list(tmp_path.iterdir())
